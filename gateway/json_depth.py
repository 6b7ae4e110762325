"""How deeply a JSON text nests, without parsing it: Python's json raises RecursionError on deep nesting (and
tritonserver 2.51's HTTP frontend crashes), so depth is checked before anything parses the body.

Only C-speed byte operations touch the whole body (a multi-megabyte base64 image costs milliseconds): escaped
backslashes and quotes are dropped and every byte but quotes and brackets is deleted; numpy then walks what
remains a bounded chunk at a time, skipping brackets between quotes (inside strings).
"""

from __future__ import annotations

import numpy as np

_QUOTE = ord('"')
_DROP = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_CHUNK = 1 << 22


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects (0 for a scalar). Malformed text gets a number too; the
    parser rejects it afterwards."""
    structure = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    deepest, level, quotes = 0, 0, 0
    for start in range(0, len(structure), _CHUNK):
        chunk = np.frombuffer(structure, dtype=np.uint8, count=min(_CHUNK, len(structure) - start), offset=start)
        seen = np.cumsum(chunk == _QUOTE, dtype=np.int32)
        seen += quotes  # odd: inside a string
        steps = _STEP[chunk]
        steps[(seen & 1).astype(bool)] = 0
        path = np.cumsum(steps, dtype=np.int32)
        path += level
        deepest, level, quotes = max(deepest, int(path.max())), int(path[-1]), int(seen[-1])
    return deepest
