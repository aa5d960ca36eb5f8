"""Inference with the real tritonclient: every output in JSON and in binary, the decoder, pinned
versions; each answer equal to the independent reference and to the REST routes' answer."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from numpy.testing import assert_allclose, assert_array_equal

from core.manifest import Manifest
from tests.tiny_model import reference_decode, reference_outputs, sample_vectors

OUTPUTS = ["codes", "reconstructions", "scores", "feature_errors"]


def x_input(rows: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("x", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def rest_outputs(rest: httpx.Client, rows: np.ndarray, version: int = 1) -> dict[str, np.ndarray]:
    """The same rows through /encode, /reconstruct and /score, as JSON."""
    query = {"model": "tiny", "version": version}
    body = {"vectors": rows.tolist()}
    answers = {
        route: rest.post(f"/{route}", params=query, json=body)
        for route in ("encode", "reconstruct")
    }
    answers["score"] = rest.post("/score", params=query, json={**body, "explain": True})
    assert {route: answer.status_code for route, answer in answers.items()} == {
        "encode": 200,
        "reconstruct": 200,
        "score": 200,
    }
    score = answers["score"].json()
    return {
        "codes": np.array(answers["encode"].json()["codes"], dtype=np.float32),
        "reconstructions": np.array(
            answers["reconstruct"].json()["reconstructions"], dtype=np.float32
        ),
        "scores": np.array(score["scores"], dtype=np.float32),
        "feature_errors": np.array(score["feature_errors"], dtype=np.float32),
    }


@pytest.fixture(scope="module")
def rows(manifests: dict[int, Manifest]) -> np.ndarray:
    return sample_vectors(manifests[1], 5)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("name", OUTPUTS)
def test_each_output(
    triton_client: triton.InferenceServerClient,
    rest: httpx.Client,
    manifests: dict[int, Manifest],
    rows: np.ndarray,
    name: str,
    binary: bool,
) -> None:
    result = triton_client.infer(
        "tiny",
        [x_input(rows, binary)],
        outputs=[triton.InferRequestedOutput(name, binary_data=binary)],
    )
    response = result.get_response()
    assert [output["name"] for output in response["outputs"]] == [name]
    assert ("binary_data_size" in response["outputs"][0].get("parameters", {})) is binary
    got = result.as_numpy(name)
    assert got.dtype == np.float32
    expected_shape = {"codes": (5, 2), "scores": (5,)}.get(name, (5, 4))
    assert got.shape == expected_shape
    assert_allclose(got, reference_outputs(manifests[1], rows)[name], rtol=1e-5, atol=1e-6)
    # The encoder graph behind /encode and the autoencoder graph behind codes may round apart.
    rest_value = rest_outputs(rest, rows)[name]
    if name == "codes":
        assert_allclose(got, rest_value, rtol=1e-6, atol=1e-7)
    else:
        assert_array_equal(got, rest_value)


def test_all_outputs_by_default(
    triton_client: triton.InferenceServerClient, rest: httpx.Client, rows: np.ndarray
) -> None:
    result = triton_client.infer("tiny", [x_input(rows)], request_id="req-7")
    response = result.get_response()
    assert response["model_name"] == "tiny"
    assert response["model_version"] == "1"
    assert response["id"] == "req-7"
    assert [output["name"] for output in response["outputs"]] == OUTPUTS
    # tritonclient asks for binary outputs when it names none.
    assert [output["parameters"]["binary_data_size"] for output in response["outputs"]] == [
        5 * 2 * 4,
        5 * 4 * 4,
        5 * 4,
        5 * 4 * 4,
    ]
    expected = rest_outputs(rest, rows)
    for name in OUTPUTS[1:]:
        assert_array_equal(result.as_numpy(name), expected[name])


def test_mixed_binary_and_json_outputs(
    triton_client: triton.InferenceServerClient, rows: np.ndarray
) -> None:
    both = triton_client.infer("tiny", [x_input(rows)])
    result = triton_client.infer(
        "tiny",
        [x_input(rows, binary=False)],
        outputs=[
            triton.InferRequestedOutput("scores", binary_data=False),
            triton.InferRequestedOutput("reconstructions", binary_data=True),
        ],
    )
    outputs = result.get_response()["outputs"]
    assert [(output["name"], "data" in output) for output in outputs] == [
        ("scores", True),
        ("reconstructions", False),
    ]
    assert_array_equal(result.as_numpy("scores"), both.as_numpy("scores"))
    assert_array_equal(result.as_numpy("reconstructions"), both.as_numpy("reconstructions"))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_decoder(
    triton_client: triton.InferenceServerClient,
    rest: httpx.Client,
    manifests: dict[int, Manifest],
    binary: bool,
) -> None:
    codes = np.array([[0.5, -1.0], [0.0, 0.0], [2.0, 0.25]], dtype=np.float32)
    tensor = triton.InferInput("codes", [3, 2], "FP32")
    tensor.set_data_from_numpy(codes, binary_data=binary)
    result = triton_client.infer(
        "tiny.decoder",
        [tensor],
        outputs=[triton.InferRequestedOutput("reconstructions", binary_data=binary)],
    )
    assert result.get_response()["model_name"] == "tiny.decoder"
    got = result.as_numpy("reconstructions")
    assert got.shape == (3, 4)
    assert_allclose(got, reference_decode(manifests[1], codes), rtol=1e-5, atol=1e-6)
    answer = rest.post("/decode", json={"codes": codes.tolist()})
    assert answer.status_code == 200
    assert_array_equal(got, np.array(answer.json()["reconstructions"], dtype=np.float32))


def test_version_pinned(
    triton_client: triton.InferenceServerClient,
    rest: httpx.Client,
    manifests: dict[int, Manifest],
    rows: np.ndarray,
) -> None:
    pinned = triton_client.infer("tiny", [x_input(rows)], model_version="2")
    active = triton_client.infer("tiny", [x_input(rows)])
    assert pinned.get_response()["model_version"] == "2"
    assert active.get_response()["model_version"] == "1"
    expected = reference_outputs(manifests[2], rows)
    assert_allclose(pinned.as_numpy("scores"), expected["scores"], rtol=1e-5, atol=1e-6)
    assert_array_equal(pinned.as_numpy("scores"), rest_outputs(rest, rows, version=2)["scores"])
    assert not np.allclose(pinned.as_numpy("scores"), active.as_numpy("scores"))


def test_decoder_version_pinned(
    triton_client: triton.InferenceServerClient, manifests: dict[int, Manifest]
) -> None:
    codes = np.array([[0.5, -1.0]], dtype=np.float32)
    tensor = triton.InferInput("codes", [1, 2], "FP32")
    tensor.set_data_from_numpy(codes)
    result = triton_client.infer("tiny.decoder", [tensor], model_version="2")
    assert result.get_response()["model_version"] == "2"
    assert_allclose(
        result.as_numpy("reconstructions"),
        reference_decode(manifests[2], codes),
        rtol=1e-5,
        atol=1e-6,
    )


def test_custom_parameters_are_ignored(
    triton_client: triton.InferenceServerClient, rows: np.ndarray
) -> None:
    plain = triton_client.infer("tiny", [x_input(rows)])
    result = triton_client.infer(
        "tiny", [x_input(rows)], parameters={"note": "from a test", "tries": 3}, priority=2
    )
    assert_array_equal(result.as_numpy("scores"), plain.as_numpy("scores"))


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_request(
    triton_client: triton.InferenceServerClient, rows: np.ndarray, algorithm: str
) -> None:
    plain = triton_client.infer("tiny", [x_input(rows)])
    result = triton_client.infer("tiny", [x_input(rows)], request_compression_algorithm=algorithm)
    assert_array_equal(result.as_numpy("scores"), plain.as_numpy("scores"))


def test_largest_batch(
    triton_client: triton.InferenceServerClient, manifests: dict[int, Manifest]
) -> None:
    rows = sample_vectors(manifests[1], 100, seed=3)
    result = triton_client.infer("tiny", [x_input(rows)])
    assert_allclose(
        result.as_numpy("scores"), reference_outputs(manifests[1], rows)["scores"], rtol=1e-5
    )
