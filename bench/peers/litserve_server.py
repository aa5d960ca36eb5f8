"""LitServe, as its docs show: a LitAPI with decode/predict/encode, batching via max_batch_size."""

from __future__ import annotations

import os
import sys

import litserve as ls
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import batching, open_session, score


class ScoreAPI(ls.LitAPI):
    def setup(self, device):
        self.session = open_session()

    def decode_request(self, request):
        return np.asarray(request["vectors"], dtype=np.float32)

    def batch(self, inputs):
        # Requests carry several rows each: merge them, remember where each one ends.
        return np.concatenate(inputs), [len(x) for x in inputs]

    def predict(self, x):
        if isinstance(x, tuple):
            rows, sizes = x
            return np.split(score(self.session, rows), np.cumsum(sizes)[:-1])
        return score(self.session, x)

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        return {"scores": output.tolist()}


if __name__ == "__main__":
    max_batch, delay = batching()
    api = ScoreAPI(max_batch_size=max_batch, batch_timeout=delay)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=60)
    server.run(
        port=int(sys.argv[1]), host="127.0.0.1", generate_client_file=False, log_level="warning"
    )
