"""SigLIP2's NaFlex position embeddings as a graph that holds for any image's patch grid.

``Siglip2VisionEmbeddings`` resizes its learned position grid to each image's grid in a Python loop
(``spatial_shapes[i].tolist()`` then an antialiased bilinear ``interpolate``): traced, the loop and the sizes would
be baked into the graph. The resize is linear and separable, so here each patch's position embedding is the source
grid weighted by the outer product of two rows of interpolation weights, computed from the image's grid size with
tensor arithmetic: PyTorch's antialiased bilinear filter (a triangle as wide as the scale when shrinking, plain
bilinear when enlarging, normalised over the source positions). Padding patches get the first patch's embedding, as
Hugging Face gives them (the attention mask hides them).
"""

from __future__ import annotations

import torch


def interpolation_weights(target: torch.Tensor, index: torch.Tensor, source: int) -> torch.Tensor:
    """[..., source] weights of the source positions for output position ``index`` of ``target`` (both [...])."""
    scale = source / target.to(torch.float32)
    stretch = torch.clamp(scale, min=1.0)  # the filter widens only when shrinking
    centre = scale * (index.to(torch.float32) + 0.5)
    positions = torch.arange(source, dtype=torch.float32, device=target.device) + 0.5
    distance = (positions - centre.unsqueeze(-1)) / stretch.unsqueeze(-1)
    weights = torch.clamp(1.0 - distance.abs(), min=0.0)
    return weights / weights.sum(dim=-1, keepdim=True)


def resized_positions(grid: torch.Tensor, spatial_shapes: torch.Tensor, max_patches: int) -> torch.Tensor:
    """``grid`` [side, side, dim] resized to each image's (height, width) in ``spatial_shapes`` [batch, 2], laid out
    row by row and padded to ``max_patches``: [batch, max_patches, dim]."""
    side = grid.shape[0]
    height, width = spatial_shapes[:, 0:1], spatial_shapes[:, 1:2]  # [batch, 1]
    patch = torch.arange(max_patches, device=spatial_shapes.device).unsqueeze(0)  # [1, max_patches]
    patch = torch.where(patch < height * width, patch, torch.zeros_like(patch))  # padding: the first patch's
    rows = interpolation_weights(height, torch.div(patch, width, rounding_mode="floor"), side)
    columns = interpolation_weights(width, torch.remainder(patch, width), side)
    weights = (rows.unsqueeze(-1) * columns.unsqueeze(-2)).flatten(-2)  # [batch, max_patches, side * side]
    return weights @ grid.reshape(side * side, -1).to(torch.float32)
