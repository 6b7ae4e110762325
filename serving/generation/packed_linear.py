"""Linear layers whose weights oneDNN has reordered once into its blocked layout, for float32 on CPU.

``nn.Linear`` on CPU calls MKL's sgemm, which re-reads the plain weight on every call and is slow at the few
rows a decode step has. A weight reordered once by oneDNN (the prepacking PyTorch's own CPU compiler path
uses) runs every bench-llava linear of a decode step at batch 8 in 10.6 ms instead of 14.4 (two threads),
and a 90-token prompt's in 32 ms instead of 42. Results equal ``nn.Linear``'s up to float32 rounding.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

# The rows oneDNN chooses its layout for; any row count runs. Measured on bench-llava's linears (two threads),
# 8 and 16 gave the same times from 4 rows up, and 8 kept batch 1 within 15% of sgemm.
LAYOUT_ROWS = 8


def can_prepack(model: Any) -> bool:
    """Only a float32 model on CPU, with a PyTorch that has oneDNN."""
    parameter = next(model.parameters())
    return parameter.device.type == "cpu" and parameter.dtype == torch.float32 and torch.backends.mkldnn.is_available()


class PrepackedLinear(torch.nn.Module):
    """``nn.Linear``'s forward on a oneDNN-reordered copy of its weight (the plain weight is not kept)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), LAYOUT_ROWS)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(inputs, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def prepack_linear_layers(model: torch.nn.Module) -> int:
    """Replace every ``nn.Linear`` of an inference model by a ``PrepackedLinear`` and copy the remaining parameters;
    how many linears were replaced.

    A linear whose weight another module also uses (an output head tied to the input embeddings) is left as it
    is: its reordered copy would double that memory.
    """
    shared = _shared_weights(model)
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and child.weight.data_ptr() not in shared:
                setattr(parent, name, PrepackedLinear(child))
                replaced += 1
    # Copying the other parameters (embeddings, norms) gives the replaced weights' memory back to the system:
    # bench-llava's language model held 795 MB resident prepacked, 579 MB after the copies and 568 MB unpacked.
    # The old weights were no longer referenced and malloc_trim released nothing, so the allocation that kept
    # their memory was not found; the copies are what measurably frees it.
    for parameter in model.parameters():
        parameter.data = parameter.data.clone()
    return replaced


def _shared_weights(model: torch.nn.Module) -> set[int]:
    """Storage of the parameters that more than one module holds."""
    holders = Counter(p.data_ptr() for _, p in model.named_parameters(remove_duplicate=False))
    return {pointer for pointer, count in holders.items() if count > 1}
