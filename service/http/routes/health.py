"""/healthz, /readyz and /metrics: always open, never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from core.errors import NotReady
from service.http.schemas import ErrorResponse, Health, Readiness
from service.observability.metrics import Metrics

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": ErrorResponse}})
def readyz(request: Request) -> Readiness:
    """Ready when this process can do its job: a configured default model is loaded; with none
    configured, every model with an active version is (an empty repository is ready, and says
    so). The detail says why, either way."""
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        raise NotReady("the model repository has not been read yet")
    ready, reason = registry.readiness()
    if not ready:
        raise NotReady(reason)
    return Readiness(status="ready", detail=reason)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    collected: Metrics = request.app.state.metrics
    registry = getattr(request.app.state, "registry", None)
    if registry is not None:
        collected.record_loaded(registry.loaded())
    return Response(collected.exposition(), media_type=CONTENT_TYPE_LATEST)
