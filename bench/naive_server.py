"""The baseline: FastAPI as its tutorial shows it, in front of one onnxruntime session.

A pydantic `list[list[float]]` body, `session.run` of every output, `.tolist()` back. This is
what the benchmark compares aeserve against; it is deliberately plain, not deliberately slow.

    python -m bench.naive_server MODEL.onnx PORT
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class ScoreRequest(BaseModel):
    vectors: list[list[float]]


class ScoreResponse(BaseModel):
    scores: list[float]


def create_app(model_path: str) -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.post("/score")
    def score(request: ScoreRequest) -> ScoreResponse:
        x = np.array(request.vectors, dtype=np.float32)
        outputs = dict(
            zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True)
        )
        return ScoreResponse(scores=outputs["scores"].reshape(-1).tolist())

    return app


if __name__ == "__main__":
    model, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(create_app(model), host="127.0.0.1", port=port, log_level="warning")
