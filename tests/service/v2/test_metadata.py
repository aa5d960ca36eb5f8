"""Per-model routes: metadata, readiness and configuration, by name and pinned to a version."""

from __future__ import annotations

import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from core.settings import Settings

AUTOENCODER_OUTPUTS = [
    {"name": "codes", "datatype": "FP32", "shape": [-1, 2]},
    {"name": "reconstructions", "datatype": "FP32", "shape": [-1, 4]},
    {"name": "scores", "datatype": "FP32", "shape": [-1]},
    {"name": "feature_errors", "datatype": "FP32", "shape": [-1, 4]},
]


@pytest.mark.parametrize("version", ["", "1", "2"])
def test_autoencoder_metadata(triton_client: triton.InferenceServerClient, version: str) -> None:
    assert triton_client.get_model_metadata("tiny", version) == {
        "name": "tiny",
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": AUTOENCODER_OUTPUTS,
    }


def test_decoder_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.get_model_metadata("tiny.decoder") == {
        "name": "tiny.decoder",
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "codes", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "reconstructions", "datatype": "FP32", "shape": [-1, 4]}],
    }


@pytest.mark.parametrize(
    ("name", "version", "ready"),
    [
        ("tiny", "", True),
        ("tiny", "2", True),
        ("tiny.decoder", "", True),
        ("tiny.decoder", "1", True),
        ("tiny", "3", False),
        ("tiny", "latest", False),
        ("nope", "", False),
    ],
)
def test_model_ready(
    triton_client: triton.InferenceServerClient, name: str, version: str, ready: bool
) -> None:
    assert triton_client.is_model_ready(name, version) is ready


def test_model_ready_body(client: TestClient) -> None:
    response = client.get("/v2/models/tiny/versions/2/ready")
    assert response.status_code == 200
    assert response.json() == {"name": "tiny", "version": "2", "ready": True}


def test_model_config(triton_client: triton.InferenceServerClient, settings: Settings) -> None:
    assert triton_client.get_model_config("tiny") == {
        "name": "tiny",
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": settings.max_batch,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [
            {"name": "codes", "data_type": "TYPE_FP32", "dims": [2]},
            {"name": "reconstructions", "data_type": "TYPE_FP32", "dims": [4]},
            {"name": "scores", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}},
            {"name": "feature_errors", "data_type": "TYPE_FP32", "dims": [4]},
        ],
        "dynamic_batching": {
            "preferred_batch_size": [min(settings.max_batch_rows, settings.max_batch)],
            "max_queue_delay_microseconds": settings.max_queue_delay_us,
        },
    }
    assert triton_client.get_model_config("tiny.decoder", "2")["input"] == [
        {"name": "codes", "data_type": "TYPE_FP32", "dims": [2]}
    ]


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("nope", "", "model 'nope' not found"),
        ("nope.decoder", "", "model 'nope.decoder' not found"),
        ("Not A Name", "", "model 'Not A Name' not found"),
        ("tiny", "3", "model 'tiny' has no version 3"),
        ("tiny.decoder", "7", "model 'tiny.decoder' has no version 7"),
        ("tiny", "0", "model 'tiny' has no version '0'; versions are whole numbers from 1"),
        ("tiny", "v1", "model 'tiny' has no version 'v1'; versions are whole numbers from 1"),
    ],
)
def test_unknown_model_or_version_is_404(
    triton_client: triton.InferenceServerClient, name: str, version: str, message: str
) -> None:
    with pytest.raises(InferenceServerException) as raised:
        triton_client.get_model_metadata(name, version)
    assert raised.value.status() == "404"
    assert raised.value.message() == message
