"""simdjson's way and pydantic's way read every body alike; simdjson takes only what it can vouch for.

Each body is read twice: by `read_batch` (simdjson first) and by pydantic alone. Both must give
the same array bit for bit, or the same error message.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

from core.errors import AeserveError
from service.http import json_matrix
from service.http.bodies import parse_json, read_batch, rows_to_array, score_options
from service.http.schemas import (
    DecodeRequest,
    EncodeRequest,
    Request,
    ScoreOptionFields,
    ScoreRequest,
)

JSON = "application/json"
SCORE_FIELDS = frozenset({"vectors", "threshold", "explain"})


def pydantic_way(body: bytes, schema: type[Request], dim: int) -> tuple[str, Any]:
    try:
        request: Any = parse_json(body, schema)
        rows = request.codes if schema is DecodeRequest else request.vectors
        field = "codes" if schema is DecodeRequest else "vectors"
        matrix = rows if isinstance(rows[0], list) else [rows]
        return "array", rows_to_array(matrix, field, dim, "model 'm' v1")
    except AeserveError as exc:
        return "error", exc.message


def served_way(body: bytes, schema: type[Request], dim: int) -> tuple[str, Any]:
    try:
        array, _ = read_batch(body, JSON, schema, dim, "model 'm' v1", 8192)  # type: ignore[arg-type]
        return "array", array
    except AeserveError as exc:
        return "error", exc.message


def assert_same(body: bytes, schema: type[Request] = ScoreRequest, dim: int = 3) -> None:
    expected, served = pydantic_way(body, schema, dim), served_way(body, schema, dim)
    assert served[0] == expected[0], (body, served, expected)
    if expected[0] == "array":
        assert served[1].dtype == np.float32 and served[1].flags.c_contiguous
        assert served[1].tobytes() == expected[1].tobytes(), body
    else:
        assert served[1] == expected[1], body


PLAIN = [
    b'{"vectors": [[1, 2, 3]]}',
    b'{"vectors": [[0.1, -2.5e-3, 3E4], [1e-40, -0.0, 123456789012345678]]}',
    b'{"vectors": [1.5, 2.5, 3.5]}',
    b' \n\t{"vectors":[[1,2,3]]}\r\n',
    b'{"vectors": [[1, 2, 3]], "threshold": 0.5, "explain": true}',
    b'{"explain": false, "vectors": [[1, 2, 3]], "threshold": null}',
    b'{"vectors": [[1, 2, 3]], "threshold": 2}',
    b'{"vectors": [[3.4028235e38, 1e39, -1e39]]}',  # beyond float32: inf, as NumPy casts it
    b'{"vectors": [[9007199254740993, 0.30000000000000004, 1.0000000596046448]]}',
]


@pytest.mark.parametrize("body", PLAIN)
def test_plain_bodies_are_read_by_simdjson_and_match_pydantic(body: bytes) -> None:
    assert json_matrix.decode(body, "vectors", SCORE_FIELDS, 3) is not None
    assert_same(body)


REFUSED = [
    b'{"vectors": [[1, [2], 3]]}',  # a nested array that flattening would hide
    b'{"vectors": [[1, [], 2], [3, [4, 5]]]}',
    b'{"vectors": [[1, {"a": 2}, 3]]}',
    b'{"vectors": [[1, {}, 3]]}',
    b'{"vectors": [[1, "2", 3]]}',
    b'{"vectors": [[1, null, 3]]}',
    b'{"vectors": [[1, true, 3]]}',
    b'{"vectors": [[1, NaN, 3]]}',
    b'{"vectors": [[1, Infinity, 3]]}',
    b'{"vectors": [[1, 1e400, 3]]}',
    b'{"vectors": [[1, 100000000000000000000000000000, 3]]}',
    b'{"vectors": [[1, 2, 3]], "vectors": [[4, 5, 6]]}',  # duplicate key
    b'{"vectors": [[1, 2, 3]], "extra": 1}',
    b'\xef\xbb\xbf{"vectors": [[1, 2, 3]]}',  # byte-order mark
    b"[[1, 2, 3]]",
    b'{"vectors": []}',
    b'{"vectors": [[]]}',
    b'{"vectors": [[1, 2]]}',
    b'{"vectors": [[1, 2, 3], [4, 5]]}',
    b'{"vectors": [[1, 2, 3], 4]}',
    b'{"vectors": [1, 2]}',
    b'{"vectors": [1, [2, 3], 4]}',
    b'{"vectors": [[1, 2, 3]], "explain": "true"}',  # refused: a string is no boolean
    b'{"vectors": [[1, 2, 3]], "explain": 1}',
    b'{"vectors": [[1, 2, 3]], "threshold": "0.5"}',
    b'{"vectors": [[1, 2, 3]], "threshold": [0.5]}',
    b'{"vectors": [[1, 2, 3]], "threshold": {"v": 1}}',
    b'{"vectors": [[1, 2, 3]]} trailing',
    b'{"vectors": [[1, 2, 3]],}',
    b'{"vectors": [[01, 2, 3]]}',
    b'{"vectors": [[1., 2, 3]]}',
    b'{"vectors": [[1, 2, 3]]',
    b'{"vectors": "[[1, 2, 3]]"}',
    b'{"codes": [[1, 2, 3]]}',
    b"",
    b"null",
]


@pytest.mark.parametrize("body", REFUSED)
def test_other_bodies_go_to_pydantic_and_get_its_answer(body: bytes) -> None:
    if b"explain" not in body and b"threshold" not in body:  # options are vetted afterwards
        assert json_matrix.decode(body, "vectors", SCORE_FIELDS, 3) is None
    assert_same(body)


def test_decode_bodies_use_the_codes_field() -> None:
    assert_same(b'{"codes": [[1, 2]]}', DecodeRequest, 2)
    assert_same(b'{"vectors": [[1, 2]]}', DecodeRequest, 2)
    assert_same(b'{"vectors": [[1, 2]], "threshold": 1}', EncodeRequest, 2)


def test_options_of_a_plain_body_are_validated_by_pydantic() -> None:
    _, options = read_batch(
        b'{"vectors": [[1, 2, 3]], "threshold": 2, "explain": true}',
        JSON,
        ScoreRequest,
        3,
        "m",
        8192,
    )
    assert isinstance(options, ScoreOptionFields)
    assert score_options(options, None, False).threshold == 2.0
    assert score_options(options, None, False).explain is True
    # pydantic reads the body strictly: "yes" is no boolean, as the document's schema says.
    with pytest.raises(AeserveError, match=r"^explain: Input should be a valid boolean$"):
        read_batch(b'{"vectors": [[1, 2, 3]], "explain": "yes"}', JSON, ScoreRequest, 3, "m", 8192)


@pytest.mark.parametrize("style", ["repr64", "repr32", "g9", "e", "int"])
def test_random_matrices_read_alike(style: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n, d = int(rng.integers(1, 9)), int(rng.integers(1, 40))
        x = (rng.standard_normal((n, d)) * 10.0 ** rng.integers(-30, 30, (n, d))).astype(np.float32)
        if style == "repr64":
            rows = [[float(v) for v in row] for row in x.astype(np.float64)]
            text = json.dumps({"vectors": rows})
        elif style == "repr32":
            text = (
                '{"vectors": ['
                + ",".join("[" + ",".join(str(v) for v in row) + "]" for row in x)
                + "]}"
            )
        elif style == "g9":
            text = (
                '{"vectors":['
                + ",".join("[" + ",".join(f"{v:.9g}" for v in row) + "]" for row in x)
                + "]}"
            )
        elif style == "e":
            text = (
                '{"vectors":['
                + ",".join("[" + ",".join(f"{v:.20e}" for v in row) + "]" for row in x)
                + "]}"
            )
        else:
            ints = rng.integers(-(2**62), 2**62, (n, d))
            text = json.dumps({"vectors": ints.tolist()})
        body = text.encode()
        assert json_matrix.decode(body, "vectors", SCORE_FIELDS, d) is not None
        assert_same(body, dim=d)


def test_parser_survives_refusals_and_threads() -> None:
    good = b'{"vectors": [[1, 2, 3], [4, 5, 6]]}'
    for body in [*REFUSED, good] * 3:
        json_matrix.decode(body, "vectors", SCORE_FIELDS, 3)
    decoded = json_matrix.decode(good, "vectors", SCORE_FIELDS, 3)
    assert decoded is not None
    np.testing.assert_array_equal(decoded[0], [[1, 2, 3], [4, 5, 6]])

    failures: list[str] = []

    def hammer(k: int) -> None:
        body = json.dumps({"vectors": [[k, k + 1, k + 2]] * (k + 1)}).encode()
        for _ in range(200):
            result = json_matrix.decode(body, "vectors", SCORE_FIELDS, 3)
            if result is None or result[0].shape != (k + 1, 3) or result[0][0, 0] != k:
                failures.append(f"thread {k}")
                return

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_a_large_body_gets_a_parser_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_matrix, "_REUSE_LIMIT", 10)
    body = b'{"vectors": [[1, 2, 3]]}'
    decoded = json_matrix.decode(body, "vectors", SCORE_FIELDS, 3)
    assert decoded is not None and decoded[0].shape == (1, 3)
