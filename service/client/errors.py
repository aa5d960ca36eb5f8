"""What a call to the server can raise: one class per status, each carrying the status and the
server's `detail`, so `except NotFound` reads as the README's list of errors does."""

from __future__ import annotations

import httpx


class ApiError(Exception):
    """An answer with an error status. `status` is the HTTP status, `detail` the server's words."""

    status: int = 0

    def __init__(self, status: int, detail: str, response: httpx.Response | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.response = response


class BadRequest(ApiError, ValueError):
    """400; also a ValueError, as a bad argument is in Python."""

    status = 400


class Unauthorized(ApiError):
    """401: no API key, or the wrong one."""

    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    """404: an unknown model, version, job or dataset."""

    status = 404


class NotAcceptable(ApiError):
    status = 406


class RequestTimeout(ApiError):
    status = 408


class Conflict(ApiError):
    """409: e.g. deleting the active version, cancelling a finished job."""

    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class InvalidInput(ApiError, ValueError):
    """422: the request's rows, config or options; `detail` names the row or field. Also a
    ValueError, so scikit-learn and callers treat it as bad data."""

    status = 422


class ServiceUnavailable(ApiError):
    """503: not ready, or shedding load; `retry_after` (seconds) when the server says."""

    status = 503

    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("retry-after") if self.response is not None else None
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class GatewayTimeout(ApiError):
    """504: the request was not answered within the server's request timeout."""

    status = 504


class ServerError(ApiError):
    """Any other 5xx."""

    status = 500


class JobFailed(Exception):
    """A training job ended `failed` or `cancelled`; `record` is its final record."""

    def __init__(self, record: object, message: str) -> None:
        super().__init__(message)
        self.record = record


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        NotAcceptable,
        RequestTimeout,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidInput,
        ServiceUnavailable,
        GatewayTimeout,
    )
}


def raise_for_status(response: httpx.Response) -> None:
    """Raise the class of the answer's status, with the server's detail; nothing for a 2xx."""
    if response.is_success:
        return
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    raise cls(response.status_code, _detail(response), response)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error"):  # REST routes say `detail`, /v2 says `error`
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text
