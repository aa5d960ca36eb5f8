"""A Python client for an aeserve server: `Client` (blocking) and `AsyncClient` (asyncio), both
on httpx, covering every route; and `AutoencoderDetector`, a scikit-learn/PyOD-style estimator
that trains through /train and scores through /score (service/client/estimator.py).

It imports neither torch, onnxruntime nor FastAPI: `pip install aeserve` on a laptop is enough
to call a server.
"""

from service.client.asynchronous import AsyncClient
from service.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    GatewayTimeout,
    InvalidInput,
    JobFailed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from service.client.sync import Client
from service.client.types import Dataset, JobEvent, ModelInfo, Rows, Scores, Submitted

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "Dataset",
    "GatewayTimeout",
    "InvalidInput",
    "JobEvent",
    "JobFailed",
    "ModelInfo",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "Rows",
    "Scores",
    "ServerError",
    "ServiceUnavailable",
    "Submitted",
    "Unauthorized",
    "UnsupportedMediaType",
]
