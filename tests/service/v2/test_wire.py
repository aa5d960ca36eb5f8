"""Bodies as they travel: raw HTTP for what client libraries never send, including the edge
cases of Triton's own HTTP tests. Every one is a 400 (or 413/415) with a message, never a 500."""

from __future__ import annotations

import gzip
import json
import struct
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_array_equal

from tests.tiny_model import reference_outputs

INFER = "/v2/models/tiny/infer"
HEADER = "Inference-Header-Content-Length"
ROWS = [[0.5, 1.0, 1.5, 2.0], [0.0, -0.5, 3.0, 0.25]]


def x(data: Any = ROWS, shape: list[int] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": shape or [2, 4], "data": data, **fields}


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(INFER, content=content, headers=headers or {})


def error_of(response: Any) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()["error"]


def nested(depth: int, value: Any) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def scores_of(response: Any) -> np.ndarray:
    """The JSON `scores` output, as the float32 values the server computed."""
    assert response.status_code == 200
    (output,) = [o for o in response.json()["outputs"] if o["name"] == "scores"]
    return np.array(output["data"], dtype=np.float32)


# -- what real clients send ------------------------------------------------------------------------


def test_json_without_content_type(client: TestClient, manifests: dict[int, Any]) -> None:
    response = post(client, {"inputs": [x()], "outputs": [{"name": "scores"}]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert HEADER.lower() not in response.headers
    body = response.json()
    assert body == {
        "model_name": "tiny",
        "model_version": "1",
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [2], "data": body["outputs"][0]["data"]}
        ],
    }
    expected = reference_outputs(manifests[1], np.array(ROWS, dtype=np.float32))["scores"]
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-5)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/octet-stream", "text/plain"]
)
def test_any_content_type(client: TestClient, content_type: str) -> None:
    plain = scores_of(post(client, {"inputs": [x()]}))
    assert_array_equal(
        scores_of(post(client, {"inputs": [x()]}, {"Content-Type": content_type})), plain
    )


def test_flat_and_nested_data_agree(client: TestClient) -> None:
    flat = [value for row in ROWS for value in row]
    nested_rows = scores_of(post(client, {"inputs": [x()]}))
    assert_array_equal(scores_of(post(client, {"inputs": [x(flat)]})), nested_rows)
    # Read row-major whatever the nesting, as Triton reads it.
    pairs = [flat[:2], flat[2:4], flat[4:6], flat[6:]]
    assert_array_equal(scores_of(post(client, {"inputs": [x(pairs)]})), nested_rows)


def test_nesting_within_the_limit(client: TestClient) -> None:
    deep = nested(50, [ROWS[0]])
    assert_array_equal(
        scores_of(post(client, {"inputs": [x(deep, [1, 4])]})),
        scores_of(post(client, {"inputs": [x([ROWS[0]], [1, 4])]})),
    )


def test_any_parameters(client: TestClient) -> None:
    body = {
        "id": "42",
        "parameters": {"sequence_id": 7, "custom": {"a": [1, 2]}, "binary_data_output": False},
        "inputs": [x(parameters={"note": "rows", "content_type": "np"})],
        "outputs": [{"name": "scores", "parameters": {"anything": True}}],
    }
    response = post(client, body)
    assert response.json()["id"] == "42"
    assert_array_equal(scores_of(response), scores_of(post(client, {"inputs": [x()]})))


def binary_request(
    rows: np.ndarray, outputs: list[dict[str, Any]] | None = None, **parameters: Any
) -> tuple[bytes, dict[str, str]]:
    raw = rows.astype("<f4").tobytes()
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "parameters": parameters,
    }
    if outputs is not None:
        header["outputs"] = outputs
    head = json.dumps(header).encode()
    return head + raw, {HEADER: str(len(head))}


def test_binary_in_and_out_by_hand(client: TestClient) -> None:
    rows = np.array(ROWS, dtype=np.float32)
    body, headers = binary_request(
        rows,
        outputs=[
            {"name": "codes", "parameters": {"binary_data": True}},
            {"name": "scores", "parameters": {"binary_data": False}},
            {"name": "reconstructions"},
        ],
        binary_data_output=True,
    )
    response = post(client, body, headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER])
    header = json.loads(response.content[:length])
    assert [(o["name"], o["shape"], o.get("parameters")) for o in header["outputs"]] == [
        ("codes", [2, 2], {"binary_data_size": 16}),
        ("scores", [2], None),
        ("reconstructions", [2, 4], {"binary_data_size": 32}),
    ]
    section = response.content[length:]
    assert len(section) == 48
    json_answer = {o["name"]: o["data"] for o in post(client, {"inputs": [x()]}).json()["outputs"]}
    assert_array_equal(np.frombuffer(section[:16], "<f4"), np.float32(json_answer["codes"]))
    assert_array_equal(
        np.frombuffer(section[16:], "<f4"), np.float32(json_answer["reconstructions"])
    )
    assert header["outputs"][1]["data"] == json_answer["scores"]


def test_misaligned_binary_data(client: TestClient) -> None:
    rows = np.array(ROWS, dtype=np.float32)
    body, headers = binary_request(rows, outputs=[{"name": "scores"}])
    # One more byte of JSON whitespace moves the floats off a 4-byte boundary.
    head_length = int(headers[HEADER])
    shifted = body[:head_length] + b" " + body[head_length:]
    response = post(client, shifted, {HEADER: str(head_length + 1)})
    assert_array_equal(scores_of(response), scores_of(post(client, {"inputs": [x()]})))


def test_raw_binary_body(client: TestClient) -> None:
    """Triton's raw form: header length 0, the body is the input; all outputs come binary."""
    rows = np.array(ROWS, dtype=np.float32)
    response = post(client, rows.tobytes(), {HEADER: "0"})
    assert response.status_code == 200
    length = int(response.headers[HEADER])
    header = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert [o["name"] for o in header["outputs"]] == [
        "codes",
        "reconstructions",
        "scores",
        "feature_errors",
    ]
    assert sizes == [16, 32, 8, 32]
    scores = np.frombuffer(response.content[length + 48 : length + 56], "<f4")
    assert_array_equal(scores, scores_of(post(client, {"inputs": [x()]})))


def test_gzip_body(client: TestClient) -> None:
    body = gzip.compress(json.dumps({"inputs": [x()]}).encode())
    response = post(client, body, {"Content-Encoding": "gzip"})
    assert_array_equal(scores_of(response), scores_of(post(client, {"inputs": [x()]})))


# -- Triton's own HTTP edge cases ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([2, -5], "input 'x' has shape [2, -5]; dimensions cannot be negative"),
        (
            [16, 2**60 + 2],
            "input 'x' has shape [16, 1152921504606846978]: 18446744073709551648 FP32 values "
            "overflow the largest byte size, 2^63 - 1",
        ),
        (
            [4, 2**60 + 2],
            "input 'x' has shape [4, 1152921504606846978]: 4611686018427387912 FP32 values "
            "overflow the largest byte size, 2^63 - 1",
        ),
        ([2**64, 4], "inputs.0.shape.0: Input should be a valid integer"),
        ([1.5, 4], "inputs.0.shape.0: Input should be a valid integer"),
    ],
)
def test_bad_dimensions(client: TestClient, shape: list[Any], message: str) -> None:
    assert error_of(post(client, {"inputs": [x([1.0], shape)]})) == (400, message)


def test_duplicate_output_names(client: TestClient) -> None:
    body = {"inputs": [x()], "outputs": [{"name": "codes"}, {"name": "codes"}]}
    assert error_of(post(client, body)) == (
        400,
        "output 'codes' is asked for twice; name each output once",
    )
    assert client.get("/v2/health/live").status_code == 200


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9999", "Inference-Header-Content-Length is 9999 but the body has only {size} bytes"),
        ("-1", "Inference-Header-Content-Length must be a whole number of bytes; got '-1'"),
        ("12.5", "Inference-Header-Content-Length must be a whole number of bytes; got '12.5'"),
        ("", "Inference-Header-Content-Length must be a whole number of bytes; got ''"),
    ],
)
def test_malformed_header_length(client: TestClient, value: str, message: str) -> None:
    body = json.dumps({"inputs": [x()]}).encode()
    assert error_of(post(client, body, {HEADER: value})) == (400, message.format(size=len(body)))


def test_header_length_cuts_the_json(client: TestClient) -> None:
    body = json.dumps({"inputs": [x()]}).encode()
    status, message = error_of(post(client, body, {HEADER: "10"}))
    assert status == 400
    assert message.startswith("the inference request is not valid JSON: ")


def test_empty_batch(client: TestClient) -> None:
    assert error_of(post(client, {"inputs": [x([], [0, 4])]})) == (400, "batch is empty")


@pytest.mark.parametrize("depth", [120, 5000])
def test_json_nesting_too_deep(client: TestClient, depth: int) -> None:
    # Written by hand: the json module itself refuses to nest this deep.
    data = "[" * depth + "1.0" + "]" * depth
    body = f'{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": {data}}}]}}'
    assert error_of(post(client, body.encode())) == (
        400,
        "JSON nesting depth exceeds the limit of 100 levels",
    )


# -- other malformed bodies ----------------------------------------------------------------------


BINARY_ROWS = np.array(ROWS, dtype=np.float32).tobytes()


def with_binary(input_fields: dict[str, Any], section: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps({"inputs": [input_fields]}).encode()
    return head + section, {HEADER: str(len(head))}


@pytest.mark.parametrize(
    ("fields", "section", "message"),
    [
        (
            {"parameters": {"binary_data_size": 32}, "data": None},
            BINARY_ROWS[:16],
            "input 'x' needs 32 bytes of binary data but the body has 16 left",
        ),
        (
            {"parameters": {"binary_data_size": 32}, "data": None},
            BINARY_ROWS + b"\0\0\0\0",
            "the body has 4 bytes after the inputs' binary data; binary_data_size must account "
            "for every byte after the JSON header",
        ),
        (
            {"parameters": {"binary_data_size": 32}},
            BINARY_ROWS,
            "input 'x' has both data and parameters.binary_data_size; send one",
        ),
        (
            {"parameters": {"binary_data_size": -4}, "data": None},
            b"",
            "inputs.0.parameters.binary_data_size: Input should be greater than or equal to 0",
        ),
        (
            {"parameters": {"binary_data_size": "32"}, "data": None},
            BINARY_ROWS,
            "inputs.0.parameters.binary_data_size: Input should be a valid integer",
        ),
        (
            {"parameters": {"shared_memory_region": "r0"}, "data": None},
            b"",
            "input 'x' sets parameters.shared_memory_region, but aeserve does not offer the "
            "shared-memory extensions",
        ),
    ],
)
def test_malformed_binary_inputs(
    client: TestClient, fields: dict[str, Any], section: bytes, message: str
) -> None:
    fields = {key: value for key, value in {**x(), **fields}.items() if value is not None}
    body, headers = with_binary(fields, section)
    assert error_of(post(client, body, headers)) == (400, message)


def test_raw_body_of_partial_rows(client: TestClient) -> None:
    assert error_of(post(client, struct.pack("<3f", 1, 2, 3), {HEADER: "0"})) == (
        400,
        "a raw binary body (Inference-Header-Content-Length: 0) must hold whole rows of 4 FP32 "
        "values (16 bytes each); got 12 bytes",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [x(data=None)]}, "input 'x' has neither data nor parameters.binary_data_size"),
        (
            {"inputs": [x([[1, 2], [3]], [1, 3])]},
            "input 'x' has shape [1, 3]; model 'tiny' v1 takes [-1, 4]",
        ),
        (
            {"inputs": [x([[1, 2, 3, 4], [5, 6, 7]])]},
            "input 'x': data must be numbers, flat or nested in equal rows",
        ),
        (
            {"inputs": [x([["1", "2", "3", "4"], [5, 6, 7, 8]])]},
            "input 'x': data must be numbers, flat or nested in equal rows",
        ),
        (
            {"inputs": [x([[True, False, True, True]], [1, 4])]},
            "input 'x': data must be numbers, flat or nested in equal rows",
        ),
        (
            {"inputs": [x([[None, 1, 2, 3]], [1, 4])]},
            "input 'x': data must be numbers, flat or nested in equal rows",
        ),
        (
            {"inputs": [x([[1e39, 0, 0, 0]], [1, 4])]},
            "row 0, column 0 is 1e+39, beyond the float32 range; values must be finite numbers",
        ),
        (
            {"inputs": [x(datatype="BYTES")]},
            "input 'x' has datatype 'BYTES'; model 'tiny' v1 takes 'FP32' only (send float32 data)",
        ),
        ({"inputs": [x()], "model_name": "tiny"}, "model_name: Extra inputs are not permitted"),
        (
            {"inputs": [x()], "parameters": {"binary_data_output": "yes"}},
            "parameters.binary_data_output: Input should be a valid boolean",
        ),
        (
            {"inputs": [x()], "outputs": [{"name": "codes", "parameters": {"binary_data": 1}}]},
            "outputs.0.parameters.binary_data: Input should be a valid boolean",
        ),
        ({"outputs": []}, "inputs: Field required"),
        ([x()], "Input should be a valid dictionary or instance of InferenceRequest"),
    ],
)
def test_malformed_json_requests(client: TestClient, body: Any, message: str) -> None:
    assert error_of(post(client, body)) == (400, message)


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"\xff\xfe"])
def test_not_json(client: TestClient, body: bytes) -> None:
    status, message = error_of(post(client, body))
    assert status == 400
    assert message.startswith("the inference request is not valid JSON: ")


def test_body_over_the_size_limit(client: TestClient) -> None:
    response = post(client, b"{" + b" " * 200_000 + b"}")
    assert error_of(response) == (413, "request body is larger than the limit of 200000 bytes")


def test_decompressed_body_over_the_size_limit(client: TestClient) -> None:
    bomb = gzip.compress(b" " * 300_000)
    assert error_of(post(client, bomb, {"Content-Encoding": "gzip"})) == (
        413,
        "the decompressed body is larger than the limit of 200000 bytes",
    )


@pytest.mark.parametrize(
    ("encoding", "body", "status", "message"),
    [
        (
            "br",
            b"{}",
            415,
            "Content-Encoding 'br' is not supported; send gzip, deflate or identity",
        ),
        (
            "gzip",
            b"{}",
            400,
            "the body is not valid gzip data: Error -3 while decompressing data: incorrect header check",
        ),
        ("gzip", gzip.compress(b'{"inputs": []}')[:-12], 400, "the gzip body is truncated"),
    ],
)
def test_bad_content_encoding(
    client: TestClient, encoding: str, body: bytes, status: int, message: str
) -> None:
    assert error_of(post(client, body, {"Content-Encoding": encoding})) == (status, message)
