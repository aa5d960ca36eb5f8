"""Wire formats for arrays: `.npy` bodies (decoded without copying) and orjson for JSON."""

from __future__ import annotations

import functools
import io
import math
import struct
from typing import Any

import numpy as np
import orjson

from core.errors import BadRequest

NPY = "application/x-npy"
NPZ = "application/x-npz"
JSON = "application/json"
_NPY_MAGIC = b"\x93NUMPY"


def _header_end(body: bytes) -> int:
    """Where the `.npy` header ends and the data starts; 0 if the body is too short to say."""
    major = body[6] if len(body) > 6 else 0
    size, length = ("<H", 2) if major == 1 else ("<I", 4)
    start = len(_NPY_MAGIC) + 2 + length
    if len(body) < start:
        return 0
    header_length: int = struct.unpack_from(size, body, start - length)[0]
    return start + header_length


@functools.lru_cache(maxsize=64)
def _read_header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """numpy's reading of a `.npy` head (magic, version, length, header). Cached: a client sends
    the same head with every batch of a shape, and numpy's parse (`ast.literal_eval`) cost
    15 µs, the most of any step of decoding a batch of 64 rows."""
    stream = io.BytesIO(head)
    major, minor = np.lib.format.read_magic(stream)
    reader = (
        np.lib.format.read_array_header_1_0
        if (major, minor) == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = reader(stream)
    if stream.tell() != len(head):
        raise ValueError("the header's length does not match its content")
    return shape, fortran_order, dtype


def decode_npy(body: bytes) -> np.ndarray:
    """A 2-D numeric array from `.npy` bytes; the array views the body's buffer, no copy."""
    if not body.startswith(_NPY_MAGIC):
        raise BadRequest("body is not a .npy array (missing the \\x93NUMPY magic string)")
    offset = _header_end(body)
    try:
        if not 0 < offset <= len(body):
            raise ValueError("the body ends inside its header")
        shape, fortran_order, dtype = _read_header(body[:offset])
    # numpy parses the header with ast and tokenize: SyntaxError, tokenize.TokenError,
    # RecursionError... all mean the same to a client.
    except Exception as exc:
        raise BadRequest(f"body is not a valid .npy array: {exc}") from None
    if dtype.hasobject or dtype.kind not in "fiub":
        raise BadRequest(f".npy array has dtype {dtype}; send a numeric array (float32 is best)")
    if len(shape) != 2:
        raise BadRequest(f".npy array has shape {shape}; send a 2-D array (rows × values)")
    if any(n < 0 for n in shape):
        raise BadRequest(f".npy array has shape {shape}; dimensions cannot be negative")
    count = math.prod(shape)  # Python ints: np.prod would wrap (2**40, 2**40) to 0
    if len(body) - offset != count * dtype.itemsize:
        raise BadRequest(
            f".npy header says {shape} of {dtype} ({count * dtype.itemsize} bytes) but the body "
            f"carries {len(body) - offset} bytes of data"
        )
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    try:
        return flat.reshape(shape, order="F" if fortran_order else "C")
    except ValueError as exc:  # e.g. (0, 2**62): no data, yet too big for numpy to shape
        raise BadRequest(f".npy array has shape {shape}: {exc}") from None


def encode_npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def encode_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed `.npz` archive: `np.load` gives the arrays back by name."""
    out = io.BytesIO()
    named: dict[str, Any] = dict(arrays)  # typed loosely: numpy's stub reserves `allow_pickle`
    np.savez(out, **named)
    return out.getvalue()


def dump_json(content: Any) -> bytes:
    """JSON bytes; NumPy arrays are written by orjson directly, without `.tolist()`."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
