"""Bodies on the wire: a JSON header, then the binary tensors that header sizes.

With `Inference-Header-Content-Length: N` the first N bytes of a body are the JSON header and the
rest is the binary section: the bytes of each input that carries `binary_data_size`, in the order
of `inputs`. Without that header the whole body is JSON, whatever its Content-Type (tritonclient
sends none). N = 0 is Triton's raw form: no JSON at all, the body is the model's one input.
Responses follow the same layout when any output is binary.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.responses import Response

from core.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.http.encoding import JSON, dump_json

HEADER = "Inference-Header-Content-Length"
_MOST_DIGITS = 19  # a byte count that fits int64
BINARY = "application/octet-stream"
MAX_DEPTH = 100
"""Deepest JSON nesting accepted, as Triton: a request needs 3 levels plus its tensors' rank."""
_WINDOW_BITS = {"gzip": 31, "deflate": 15}  # zlib's framing for each Content-Encoding


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before `Content-Encoding` (tritonclient's request compression)."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in _WINDOW_BITS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or identity"
        )
    inflater = zlib.decompressobj(_WINDOW_BITS[coding])
    try:
        # Bounded, so a small compressed body cannot expand past the body size limit.
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {coding} data: {exc}") from None
    if len(plain) > limit:
        raise PayloadTooLarge(f"the decompressed body is larger than the limit of {limit} bytes")
    if not inflater.eof:
        raise BadRequest(f"the {coding} body is truncated")
    return plain


def header_length(value: str | None, body_size: int) -> int | None:
    """The JSON header's length in bytes, or None when the whole body is JSON."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"{HEADER} must be a whole number of bytes; got {value!r}")
    if len(text) > _MOST_DIGITS:  # int() of thousands of digits raises, and no body is that big
        raise BadRequest(f"{HEADER} has {len(text)} digits; no body is that big")
    length = int(text)
    if length > body_size:
        raise BadRequest(f"{HEADER} is {length} but the body has only {body_size} bytes")
    return length


def split(body: bytes, header_value: str | None) -> tuple[memoryview | None, memoryview]:
    """(JSON header, binary section); the header is None for the raw form. Views, no copies."""
    view = memoryview(body)
    length = header_length(header_value, len(body))
    if length is None:
        return view, view[len(body) :]
    if length == 0:
        return None, view
    return view[:length], view[length:]


def check_value_count(body: bytes, header_size: int, most: int) -> None:
    """Refuse a JSON header that holds more numbers than any request may, before it is parsed:
    n values need n - 1 commas, and counting them is far cheaper than making n Python floats."""
    # Slack for the commas between the header's other fields, which a request has few of.
    commas = body.count(b",", 0, header_size)
    if commas > most + 1024:
        raise InvalidInput(
            f"the inference request holds more than {most} values, the most a request may "
            "(max_batch rows of the model's widest tensor); send fewer rows per request"
        )


def _deeper_than(document: Any, limit: int) -> bool:
    stack = [(document, 1)] if isinstance(document, list | dict) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            children: Any = value.values()
        elif value and not isinstance(value[0], list | dict):
            # A list of numbers, such as a row of tensor data: no need to visit every value. A
            # container hidden further along such a list is refused later, as ragged data.
            continue
        else:
            children = value
        stack.extend((child, depth + 1) for child in children if isinstance(child, list | dict))
    return False


def parse_json(header: memoryview) -> Any:
    """The JSON header as Python objects; 400 when it is not JSON or nests too deeply."""
    too_deep = f"JSON nesting depth exceeds the limit of {MAX_DEPTH} levels"
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own limit (1024), far beyond ours
            raise BadRequest(too_deep) from None
        raise BadRequest(f"the inference request is not valid JSON: {exc}") from None
    if _deeper_than(document, MAX_DEPTH):
        raise BadRequest(too_deep)
    return document


def response(header: dict[str, Any], buffers: list[bytes]) -> Response:
    """JSON alone, or the JSON header then the binary outputs with the header's length."""
    head = dump_json(header)
    if not buffers:
        return Response(head, media_type=JSON)
    return Response(b"".join([head, *buffers]), media_type=BINARY, headers={HEADER: str(len(head))})
