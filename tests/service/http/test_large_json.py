"""A JSON body over PYDANTIC_MOST_BYTES that simdjson's fast path declines is judged from
simdjson's document, never by pydantic's full parse (which holds the GIL: a 60 MB body stalled
every other request for seconds), and gets pydantic's answer all the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from service.http.bodies import PYDANTIC_MOST_BYTES
from service.http.schemas import DecodeRequest, ScoreRequest
from tests.service.http.test_json_matrix import PLAIN, REFUSED, pydantic_way, served_way

PAD = b" " * (PYDANTIC_MOST_BYTES + 1)  # JSON whitespace: the body is large, its meaning the same
# Integers beyond 64 bits, NaN and Infinity are not JSON to simdjson: a large body holding one is
# refused as Invalid JSON (pydantic reads the first as a float, refuses the others as not finite).
NOT_JSON_TO_SIMDJSON = (b"100000000000000000000000000000", b"NaN", b"Infinity", b"1e400")


def assert_as_pydantic(body: bytes, schema: type[Any] = ScoreRequest, dim: int = 3) -> None:
    assert len(body) > PYDANTIC_MOST_BYTES
    expected, served = pydantic_way(body, schema, dim), served_way(body, schema, dim)
    if served[0] == "error" and "more than once" in served[1]:
        field = served[1].split("'")[1].encode()
        assert body.count(b'"' + field + b'"') > 1, served  # pydantic would keep the last
        return
    if any(word in body for word in NOT_JSON_TO_SIMDJSON) or (
        expected[0] == "error" and expected[1].startswith("Invalid JSON")
    ):
        assert served[0] == "error" and served[1].startswith("Invalid JSON: "), served
    else:
        assert served[0] == expected[0], (body[:200], served, expected)
        if expected[0] == "array":
            assert served[1].dtype == np.float32 and served[1].flags.c_contiguous
            assert served[1].tobytes() == expected[1].tobytes()
        else:
            assert served[1] == expected[1]


@pytest.mark.parametrize("body", PLAIN + REFUSED)
def test_a_large_body_gets_the_answer_pydantic_gives(body: bytes) -> None:
    assert_as_pydantic(body + PAD)


ROW = b"[" + b",".join([b"0.5"] * 3) + b"]"
MANY = b",".join([ROW] * 5000)


@pytest.mark.parametrize(
    "body",
    [
        b'{"vectors": [' + MANY + b'], "explain": false, "explain": true}',
        b'{"vectors": [[1, 2, 3]], "vectors": [' + MANY + b"]}",
        b'{"vectors": [' + MANY + b'], "vectors": [[1, 2, 3]]}',
        b'{"vectors": [' + MANY + b', [1, "x", 3], [1, 2], [null, true, {}]]}',
        b'{"vectors": [' + MANY + b", [1, [2], 3]]}",
        b'{"vectors": [' + MANY + b", [1, 2]]}",
        b'{"vectors": [' + MANY + b", 4, [1, 2, 3]]}",
        b'{"vectors": [' + MANY + b', 4, [1, "a", 3]]}',
        b'{"vectors": [' + MANY + b'], "threshold": [[1], [2]], "extra": {"a": 1}}',
        b'{"vectors": [' + b",".join([b'[1, "a", "b"]'] * 5000) + b"]}",
        b'{"vectors": [' + b",".join([b"0.25"] * 60000) + b"]}",
        b'{"vectors": [' + b",".join([b"0.25"] * 60000) + b', "x", [1]]}',
        b'{"vectors": "' + b"x" * 300_000 + b'"}',
        b'{"threshold": 1, "x' + b"y" * 300_000 + b'": 1}',
    ],
)
def test_large_bodies_of_many_rows_get_the_answer_pydantic_gives(body: bytes) -> None:
    assert_as_pydantic(body + PAD)


def test_a_long_row_names_its_column() -> None:
    values = [b"1"] * 20000
    values[9000] = b'"x"'
    body = b'{"vectors": [[' + b",".join(values) + b"]]}" + PAD
    assert_as_pydantic(body, dim=20000)
    assert served_way(body, ScoreRequest, 20000)[1] == (
        "vectors: row 0, column 9000: Input should be a valid number"
    )


def test_codes_of_a_large_decode_body() -> None:
    assert_as_pydantic(b'{"codes": [' + MANY + b'], "threshold": 1}' + PAD, DecodeRequest)


def test_a_field_named_twice_is_refused() -> None:
    body = b'{"vectors": [' + MANY + b'], "explain": false, "explain": true}' + PAD
    assert served_way(body, ScoreRequest, 3) == (
        "error",
        f"the body names the field 'explain' more than once; a JSON body over "
        f"{PYDANTIC_MOST_BYTES} bytes must name each field once",
    )


def test_pydantic_never_parses_a_large_body(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    parse = BaseModel.model_validate_json.__func__  # type: ignore[attr-defined]

    def spy(cls: type[BaseModel], data: bytes, **kwargs: Any) -> BaseModel:
        sizes.append(len(data))
        return parse(cls, data, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(ScoreRequest, "model_validate_json", classmethod(spy))
    # Declined by simdjson's fast path ("yes" is no boolean), and judged from a stand-in.
    body = b'{"vectors": [' + MANY + b'], "explain": "yes", "threshold": 1}' + PAD
    assert served_way(body, ScoreRequest, 3) == (
        "error",
        "explain: Input should be a valid boolean",
    )
    assert sizes and max(sizes) < 1000


def test_tens_of_thousands_of_errors_are_worded_in_linear_time() -> None:
    # Below the size limit: pydantic's errors, 60,000 of them, each once compared with all others
    body = b'{"vectors": [' + b",".join([b"1"] * 60000) + b', "x", [1]]}'
    assert len(body) < PYDANTIC_MOST_BYTES
    assert served_way(body, ScoreRequest, 3)[1] == (
        "vectors: row 0, column 60000: Input should be a valid number; "
        "vectors: row 0, column 60001: Input should be a valid number"
    )
