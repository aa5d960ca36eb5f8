"""API-key checks: management calls always, inference when the settings say so."""

from __future__ import annotations

import hmac

from core.errors import Unauthorized
from core.settings import Settings


def check_key(settings: Settings, authorization: str | None) -> None:
    """Raise 401 unless `Authorization: Bearer <key>` matches (compared in constant time)."""
    if settings.api_key is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.api_key.get_secret_value().strip().encode()
    # An empty key matches no request: `Authorization: Bearer` with no token must not pass.
    # (`aeserve serve` refuses to start with one; an app built by other means stays closed.)
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), expected)
    ):
        raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'")
