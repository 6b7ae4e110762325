"""Keep a python-backend process's resident memory to what it is using.

glibc's malloc serves large blocks with mmap and returns them when freed, but its threshold for "large" adapts:
once a block of some size is freed, blocks up to that size (up to 32 MiB) come from the heap from then on, and
freed heap memory mostly stays resident. An encoder that has run batches of many shapes then holds buffers for
all of them. A fixed threshold keeps large blocks on mmap, so they go back to the system when freed. Measured on
the ViT-B/32 CLIP repository under clip-rank load (ONNX Runtime's arena on, which the encoders keep): text
278 -> 269 MiB, vision 452 -> 439 MiB resident, and no slower in process (18.7 vs 21.4 ms per text at varying
batch shapes). With the arena off as well the saving was 78 MiB, but every new shape then faulted in fresh
pages: 36.7 ms per text.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
LARGE_BLOCK_BYTES = 256 * 1024


def return_large_blocks(threshold_bytes: int = LARGE_BLOCK_BYTES) -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library has no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))
