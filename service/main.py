"""Entry point for uvicorn: `uvicorn --factory service.main:app_from_environment`."""

from __future__ import annotations

from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings


def app_from_environment() -> FastAPI:
    return create_app(Settings())
