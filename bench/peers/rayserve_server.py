"""Ray Serve, as its docs show: one deployment, `@serve.batch` for dynamic batching."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import ray
from ray import serve
from starlette.requests import Request

sys.path.insert(0, os.path.dirname(__file__))
from common import batching, open_session, score

MAX_BATCH, DELAY_S = batching()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=256)
class Scorer:
    def __init__(self) -> None:
        self.session = open_session()

    @serve.batch(max_batch_size=max(MAX_BATCH, 1), batch_wait_timeout_s=DELAY_S)
    async def score_batch(self, inputs: list[np.ndarray]) -> list[list[float]]:
        sizes = np.cumsum([len(x) for x in inputs])[:-1]
        scores = score(self.session, np.concatenate(inputs))
        return [part.tolist() for part in np.split(scores, sizes)]

    async def __call__(self, request: Request) -> dict:
        x = np.asarray((await request.json())["vectors"], dtype=np.float32)
        if MAX_BATCH > 1:
            return {"scores": await self.score_batch(x)}
        return {"scores": score(self.session, x).tolist()}


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
    serve.run(Scorer.bind(), route_prefix="/score")
    while True:
        time.sleep(3600)
