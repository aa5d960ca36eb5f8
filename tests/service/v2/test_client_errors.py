"""Bad requests sent through the real tritonclient: each raises its exception with status 400
(404 for an unknown model or version) and the server's message, word for word."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

ROWS = np.arange(8, dtype=np.float32).reshape(2, 4)


def tensor(
    name: str = "x",
    data: np.ndarray = ROWS,
    datatype: str = "FP32",
    binary: bool = True,
    shape: list[int] | None = None,
) -> triton.InferInput:
    made = triton.InferInput(name, list(data.shape), datatype)
    made.set_data_from_numpy(data, binary_data=binary)
    if shape is not None:  # declared after the data, so the client sends what it was told
        made.set_shape(shape)
    return made


def deeply_nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


Call = Callable[[triton.InferenceServerClient], Any]
CASES: dict[str, tuple[Call, str, str]] = {
    "wrong input name": (
        lambda c: c.infer("tiny", [tensor("y")]),
        "400",
        "model 'tiny' has no input 'y'; it takes 'x'",
    ),
    "decoder fed rows": (
        lambda c: c.infer("tiny.decoder", [tensor()]),
        "400",
        "model 'tiny.decoder' has no input 'x'; it takes 'codes'",
    ),
    "missing input": (
        lambda c: c.infer("tiny", []),
        "400",
        "model 'tiny' v1 needs input 'x'",
    ),
    "input twice": (
        lambda c: c.infer("tiny", [tensor(), tensor()]),
        "400",
        "input 'x' appears twice; send each input once",
    ),
    "wrong width": (
        lambda c: c.infer("tiny", [tensor(data=np.ones((2, 3), np.float32))]),
        "400",
        "input 'x' has shape [2, 3]; model 'tiny' v1 takes [-1, 4]",
    ),
    "wrong rank": (
        lambda c: c.infer("tiny", [tensor(data=np.ones(4, np.float32))]),
        "400",
        "input 'x' has shape [4]; model 'tiny' v1 takes [-1, 4]",
    ),
    "FP64": (
        lambda c: c.infer("tiny", [tensor(data=ROWS.astype(np.float64), datatype="FP64")]),
        "400",
        "input 'x' has datatype 'FP64'; model 'tiny' v1 takes 'FP32' only (send float32 data)",
    ),
    "INT32 as JSON": (
        lambda c: c.infer(
            "tiny", [tensor(data=ROWS.astype(np.int32), datatype="INT32", binary=False)]
        ),
        "400",
        "input 'x' has datatype 'INT32'; model 'tiny' v1 takes 'FP32' only (send float32 data)",
    ),
    "binary size mismatch": (
        lambda c: c.infer("tiny", [tensor(shape=[3, 4])]),
        "400",
        "input 'x' has binary_data_size 32; shape [3, 4] of FP32 needs 48 bytes",
    ),
    "JSON size mismatch": (
        lambda c: c.infer("tiny", [tensor(binary=False, shape=[3, 4])]),
        "400",
        "input 'x' has 8 values; shape [3, 4] needs 12",
    ),
    "negative dimension": (
        lambda c: c.infer("tiny", [tensor(shape=[-2, 4])]),
        "400",
        "input 'x' has shape [-2, 4]; dimensions cannot be negative",
    ),
    "overflowing dimension": (
        lambda c: c.infer("tiny", [tensor(shape=[2**62, 4])]),
        "400",
        "input 'x' has shape [4611686018427387904, 4]: 18446744073709551616 FP32 values "
        "overflow the largest byte size, 2^63 - 1",
    ),
    "empty batch": (
        lambda c: c.infer("tiny", [tensor(data=np.zeros((0, 4), np.float32))]),
        "400",
        "batch is empty",
    ),
    "too many rows": (
        lambda c: c.infer("tiny", [tensor(data=np.zeros((101, 4), np.float32))]),
        "400",
        "batch has 101 rows; the limit is 100",
    ),
    "not finite": (
        lambda c: c.infer("tiny", [tensor(data=np.array([[0, np.nan, 0, 0]], np.float32))]),
        "400",
        "row 0, column 1 is NaN; values must be finite numbers",
    ),
    "unknown output": (
        lambda c: c.infer("tiny", [tensor()], outputs=[triton.InferRequestedOutput("z")]),
        "400",
        "model 'tiny' has no output 'z'; it gives 'codes', 'reconstructions', 'scores', "
        "'feature_errors'",
    ),
    "duplicate output": (
        lambda c: c.infer(
            "tiny",
            [tensor()],
            outputs=[triton.InferRequestedOutput("scores"), triton.InferRequestedOutput("scores")],
        ),
        "400",
        "output 'scores' is asked for twice; name each output once",
    ),
    "classification asked for": (
        lambda c: c.infer(
            "tiny", [tensor()], outputs=[triton.InferRequestedOutput("scores", class_count=2)]
        ),
        "400",
        "output 'scores' sets parameters.classification, but aeserve does not offer the "
        "classification extension",
    ),
    "header length beyond the body": (
        lambda c: c.infer(
            "tiny",
            [tensor(binary=False)],
            headers={"Inference-Header-Content-Length": "100000"},
        ),
        "400",
        "Inference-Header-Content-Length is 100000 but the body has only "
        f"{len(triton.InferenceServerClient.generate_request_body([tensor(binary=False)])[0])} "
        "bytes",
    ),
    "header length not a number": (
        lambda c: c.infer(
            "tiny", [tensor(binary=False)], headers={"Inference-Header-Content-Length": "ten"}
        ),
        "400",
        "Inference-Header-Content-Length must be a whole number of bytes; got 'ten'",
    ),
    "JSON nesting too deep": (
        lambda c: c.infer("tiny", [tensor()], parameters={"deep": deeply_nested(120)}),
        "400",
        "JSON nesting depth exceeds the limit of 100 levels",
    ),
    "unknown model": (
        lambda c: c.infer("nope", [tensor()]),
        "404",
        "model 'nope' not found",
    ),
    "unknown version": (
        lambda c: c.infer("tiny", [tensor()], model_version="9"),
        "404",
        "model 'tiny' has no version 9",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_request_raises_the_servers_message(
    triton_client: triton.InferenceServerClient, case: str
) -> None:
    call, status, message = CASES[case]
    with pytest.raises(InferenceServerException) as raised:
        call(triton_client)
    assert (raised.value.status(), raised.value.message()) == (status, message)
    assert triton_client.is_server_live()
