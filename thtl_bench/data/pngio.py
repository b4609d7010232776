"""A minimal PNG writer whose bytes depend only on the pixels.

Pillow's PNG encoder hands the rows to zlib, whose output differs between zlib, zlib-ng and
their versions (Pillow wheels bundle different ones). Here every row gets filter type 0 and
the zlib stream is made of deflate *stored* blocks, so no compressor runs at all; the CRC-32
and Adler-32 checksums (zlib.crc32/adler32) are fixed functions of their input. No metadata
chunks are written. The files are larger than compressed ones (about the raw pixel size) and
decode with any PNG reader.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STORED_MAX = 65535  # deflate stored blocks hold at most 65535 bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _stored_zlib(raw: bytes) -> bytes:
    out = [b"\x78\x01"]  # CMF: deflate, 32 KiB window; FLG: no dictionary, check bits
    n = len(raw)
    for start in range(0, max(n, 1), _STORED_MAX):
        block = raw[start: start + _STORED_MAX]
        final = 1 if start + _STORED_MAX >= n else 0
        out.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block)
    out.append(struct.pack(">I", zlib.adler32(raw) & 0xFFFFFFFF))
    return b"".join(out)


def encode(a: np.ndarray) -> bytes:
    """PNG bytes of a uint8 array: (H, W) greyscale or (H, W, 3) RGB."""
    a = np.ascontiguousarray(a)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"encode needs uint8 (H, W) or (H, W, 3), got {a.dtype} {a.shape}")
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else 2
    rows = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, -1)], axis=1)  # filter byte 0 per row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", _stored_zlib(rows.tobytes())) + _chunk(b"IEND", b"")


def write(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(a))
