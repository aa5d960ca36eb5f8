"""/ui: the web console. Plain HTML, CSS and JavaScript shipped in the package
(service/http/static/ui), no build step and nothing fetched from elsewhere; the pages read the
JSON API, so what they show is what the API says."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static" / "ui"

router = APIRouter(include_in_schema=False)


@router.get("/ui")
def console() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
