"""The baseline: FastAPI as its tutorial shows it, in front of one onnxruntime session.

A pydantic `list[list[float]]` body, `session.run` of every output, `.tolist()` back. This is
what the benchmark compares aeserve against; it is deliberately plain, not deliberately slow.
The endpoint is a plain `def`, so FastAPI runs it in its threadpool; THREADS limits that pool,
and so how many `session.run` calls run at once (the benchmark's thread budget). `/readyz`
answers once the app serves, as a server meant for deployment would.

    python -m bench.naive_server MODEL.onnx PORT [THREADS]
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class ScoreRequest(BaseModel):
    vectors: list[list[float]]


class ScoreResponse(BaseModel):
    scores: list[float]


def create_app(model_path: str, threads: int = 40) -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

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
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 40  # anyio's default
    uvicorn.run(create_app(model, threads), host="127.0.0.1", port=port, log_level="warning")
