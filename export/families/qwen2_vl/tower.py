"""Qwen2-VL's vision tower (patch embedding, ViT blocks with 2D rotary positions, the 2x2 patch merger) as one torch
module that exports to ONNX with a dynamic patch axis and the images' ``grid_thw`` as an input.

transformers' tower derives its rotary positions and its per-frame attention spans from ``grid_thw`` in Python loops
(``.tolist()``), which an export would freeze at the example's grids. Here both come from tensor ops on ``grid_thw``
(each patch finds its image by the running patch counts), and attention runs over all patches at once with a mask
that keeps each frame to itself: the same result, for any number of images of any grids in one call. The weights are
the checkpoint's own modules, used as they are.

Qwen2.5-VL's tower (RMSNorm, gated MLPs: its own modules) attends within windows of ``window_units`` merged tokens a
side in every block but its full-attention ones. transformers reorders the patches window by window and back; a mask
that keeps each window to itself gives the same result without reordering (attention does not depend on the order of
its keys, and a window holds whole merge blocks, so the merger sees the same groups).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch


def patch_layout(grid_thw: torch.Tensor, patches: int, merge: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per patch, in the image processor's order (merge blocks of ``merge x merge`` patches, row-major): its
    (row, column) in its frame, ``[patches, 2]``, and the index of its frame's first patch (the attention span),
    ``[patches]``."""
    sizes = grid_thw.prod(-1)
    ends = sizes.cumsum(0)
    index = torch.arange(patches, device=grid_thw.device)
    image = (index[:, None] >= ends[None, :]).sum(-1)
    start = (ends - sizes)[image]
    grid = grid_thw[image]
    area = grid[:, 1] * grid[:, 2]
    local = index - start
    frame, offset = local // area, local % area
    block, column_in, row_in = offset // (merge * merge), offset % merge, (offset // merge) % merge
    blocks_per_row = grid[:, 2] // merge
    rows = (block // blocks_per_row) * merge + row_in
    columns = (block % blocks_per_row) * merge + column_in
    return torch.stack((rows, columns), dim=-1), start + frame * area


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class VisionTower(torch.nn.Module):
    """``(pixel_values [patches, C*T*P*P], image_grid_thw [images, 3]) -> image_embeds [patches / merge^2, hidden]``."""

    def __init__(self, visual: Any, window_units: int = 0, full_blocks: Collection[int] = ()) -> None:
        """``window_units``: a window's side in merged tokens (0: every block attends to the whole frame);
        ``full_blocks``: the blocks that attend to the whole frame all the same."""
        super().__init__()
        self.visual = visual
        self.merge = int(visual.spatial_merge_size)
        self.window_units = window_units
        self.full_blocks = frozenset(full_blocks)

    def rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin ``[patches, head_dim]``: the row's frequencies, then the column's, twice (transformers')."""
        freqs = positions[..., None].float() * self.visual.rotary_pos_emb.inv_freq.float()  # [patches, 2, dim / 4]
        angles = torch.cat((freqs[:, 0], freqs[:, 1]), dim=-1)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    def attention(
        self, attn: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        patches = x.shape[0]
        qkv = attn.qkv(x).reshape(patches, 3, attn.num_heads, -1).permute(1, 2, 0, 3)  # [3, heads, patches, dim]
        q, k, v = qkv[0], qkv[1], qkv[2]
        # Rotated in float32 and cast back, as transformers does: a float16 or bfloat16 tower keeps its positions exact.
        q = (q.float() * cos + _rotate_half(q.float()) * sin).to(x.dtype)
        k = (k.float() * cos + _rotate_half(k.float()) * sin).to(x.dtype)
        scores = torch.matmul(q, k.transpose(1, 2)) * attn.scaling
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [heads, patches, dim]
        return attn.proj(out.transpose(0, 1).reshape(patches, -1))

    def forward(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        positions, span = patch_layout(image_grid_thw, pixel_values.shape[0], self.merge)
        frame = span[:, None] == span[None, :]
        window = frame
        if self.window_units:
            cells = positions // (self.merge * self.window_units)  # each patch's window (row, column) in its frame
            window = frame & (cells[:, None, :] == cells[None, :, :]).all(-1)
        cos, sin = self.rotary(positions)
        hidden = self.visual.patch_embed(pixel_values)
        for index, block in enumerate(self.visual.blocks):
            mask = frame if index in self.full_blocks else window
            hidden = hidden + self.attention(block.attn, block.norm1(hidden), cos, sin, mask)
            hidden = hidden + block.mlp(block.norm2(hidden))
        merged: torch.Tensor = self.visual.merger(hidden)
        return merged
