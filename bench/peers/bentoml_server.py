"""BentoML, as its docs show: a service class whose API is batchable (adaptive batching) or not.

bentoml serve bentoml_server:Scorer --port PORT
"""

from __future__ import annotations

import os
import sys

import bentoml
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import batching, open_session, score

MAX_BATCH, DELAY_S = batching()


@bentoml.service(workers=1, traffic={"timeout": 60})
class Scorer:
    def __init__(self) -> None:
        self.session = open_session()

    if MAX_BATCH > 1:

        @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=1000)
        def score(self, vectors: np.ndarray) -> np.ndarray:
            return score(self.session, vectors.astype(np.float32, copy=False))

    else:

        @bentoml.api
        def score(self, vectors: np.ndarray) -> np.ndarray:
            return score(self.session, vectors.astype(np.float32, copy=False))
