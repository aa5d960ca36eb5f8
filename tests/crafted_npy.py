"""`.npy` files whose headers lie or cannot be parsed, as an attacker would send them."""

from __future__ import annotations

import struct


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
}
