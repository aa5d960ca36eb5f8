"""Sizes judged before parsing: a body with more rows or values than any request may have is
refused from a count of its brackets (as it arrives) or commas, never turned into numbers."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from service.http.bodies import RowCount, read_batch
from service.http.json_matrix import count_brackets
from service.http.schemas import ScoreRequest
from service.v2 import wire

JSON = "application/json"


def test_too_many_rows_are_refused_before_the_body_is_parsed() -> None:
    # Not even JSON past its rows: a parser would have said so; the count speaks first.
    body = b'{"vectors": [' + b"[1, 2, 3]," * 11 + b" oops"
    with pytest.raises(InvalidInput) as refused:
        read_batch(body, JSON, ScoreRequest, 3, "model 'm' v1", max_rows=10)
    assert refused.value.message == "batch has 11 rows; the limit is 10"


def test_a_body_within_the_limit_is_parsed_as_before() -> None:
    body = b'{"vectors": [' + b",".join([b"[1, 2, 3]"] * 10) + b"]}"
    array, _ = read_batch(body, JSON, ScoreRequest, 3, "model 'm' v1", max_rows=10)
    assert array.shape == (10, 3)
    with pytest.raises(InvalidInput) as refused:
        read_batch(body[:-1], JSON, ScoreRequest, 3, "model 'm' v1", max_rows=10)
    assert refused.value.message.startswith("Invalid JSON")


def test_a_large_body_stops_being_counted_once_over_the_limit() -> None:
    body = b"[1]," * 2_000_000  # 8 MB, 2 million brackets
    assert count_brackets(body) == 2_000_000
    stopped = count_brackets(body, stop_above=10)
    assert 10 < stopped < 2_000_000


def test_a_v2_header_with_too_many_values_is_refused_before_it_is_parsed() -> None:
    header = b'{"inputs": [{"name": "x", "data": [' + b"1," * 5000 + b" oops"
    with pytest.raises(InvalidInput) as refused:
        wire.check_value_count(header, len(header), most=3000)
    assert refused.value.message == (
        "the inference request holds more than 3000 values, the most a request may (max_batch "
        "rows of the model's widest tensor); send fewer rows per request"
    )
    wire.check_value_count(header, len(header), most=5000)  # within: left to the parser


def test_rows_are_counted_as_the_body_arrives_and_the_excess_is_not_kept() -> None:
    rows = RowCount(max_rows=10)
    assert rows.keep(b'{"vectors": [' + b"[1, 2, 3]," * 5)
    assert not rows.keep(b"[1, 2, 3]," * 6)  # 11 rows: nothing from here on is kept
    assert not rows.keep(b"[1, 2, 3]]}")
    with pytest.raises(InvalidInput) as refused:
        rows.check()
    assert refused.value.message == "batch has 12 rows; the limit is 10"
    within = RowCount(max_rows=10)
    assert within.keep(b'{"vectors": [' + b"[1, 2, 3]," * 9 + b"[1, 2, 3]]}")
    within.check()
