"""`.npy` files whose headers lie or cannot be parsed, as an attacker would send them."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np


def npy(header: str, data: bytes = b"") -> bytes:
    """A version 1.0 `.npy` file with `header` verbatim, padded as numpy pads it."""
    text = header.encode("latin1")
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def _header(shape: str) -> str:
    return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }"


CRAFTED = {
    "unterminated-dict": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), "),
    "unterminated-string": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4)} '''"),
    "shape-overflows-int64": npy(_header("(1099511627776, 1099511627776)")),
    "no-rows-huge-width": npy(_header("(0, 4611686018427387904)")),
    "shape-of-400-gb": npy(_header("(10000000, 10000)")),
    "negative-rows": npy(_header("(-1, 4)"), b"\0" * 16),
    "deeply-nested-shape": npy(_header("(" * 200 + ")" * 200)),
    "header-longer-than-the-body": b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'",
    "cut-inside-its-length": b"\x93NUMPY\x02\x00\x10",
}


def zeros_npz_bomb(rows: int, columns: int) -> bytes:
    """A `.npz` whose `X.npy` holds rows × columns float64 zeros, deflated: 12,000,000 × 21 is a
    1.96 MB file that decompresses to 2 GB. Built from one compressed block repeated (each ends
    with a full flush, so it does not depend on what came before) instead of deflating 2 GB."""
    header = io.BytesIO()
    dictionary = {"descr": "<f8", "fortran_order": False, "shape": (rows, columns)}
    np.lib.format.write_array_header_1_0(header, dictionary)
    prefix = header.getvalue()
    block = bytes(1 << 22)
    size = len(prefix) + rows * columns * 8
    blocks, tail = divmod(rows * columns * 8, len(block))
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    parts = [deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)]
    repeated = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    parts.append(repeated * blocks)
    parts.append(deflate.compress(bytes(tail)) + deflate.flush())
    data = b"".join(parts)
    crc = zlib.crc32(prefix)
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(tail), crc)
    return _zip64_one_member(b"X.npy", data, crc, size)


def _zip64_one_member(name: bytes, data: bytes, crc: int, size: int) -> bytes:
    """A zip archive of one deflated member whose sizes go in zip64 extra fields."""
    extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    local = struct.pack(
        "<IHHHHHIIIHH",
        0x04034B50,
        45,
        0,
        8,
        0,
        0x21,
        crc,
        0xFFFFFFFF,
        0xFFFFFFFF,
        len(name),
        len(extra),
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        45,
        45,
        0,
        8,
        0,
        0x21,
        crc,
        0xFFFFFFFF,
        0xFFFFFFFF,
        len(name),
        len(extra),
        0,
        0,
        0,
        0,
        0,
    )
    body = local + name + extra + data
    directory = central + name + extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end
