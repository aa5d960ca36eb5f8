"""Entry point for uvicorn: `uvicorn --factory service.main:app_from_environment`."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from core.settings import Settings
from service.http.app import create_app


def app_from_environment() -> FastAPI:
    # uvicorn configures only its own loggers; the service's (loads, swaps, refusals) need one too.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    return create_app(Settings())
