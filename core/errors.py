"""One error hierarchy: each class carries its HTTP status; one handler renders them all."""

from __future__ import annotations


class AeserveError(Exception):
    """Base class: a message a client can act on and the HTTP status that goes with it."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Response headers that go with the status (e.g. `Retry-After`)."""
        return {}


class InvalidInput(AeserveError):
    """The request's data cannot be used (wrong shape, non-finite values, too many rows)."""

    status_code = 422


class BadRequest(AeserveError):
    """A malformed request outside the JSON schema layer (e.g. an unreadable binary body)."""

    status_code = 400


class NotFound(AeserveError):
    status_code = 404


class ModelNotFound(NotFound):
    pass


class VersionNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class Conflict(AeserveError):
    """The request contradicts the current state (e.g. deleting the active version)."""

    status_code = 409


class GraphUnavailable(Conflict):
    """The version has no such graph: an imported autoencoder without a separable code output
    has no encoder or decoder, so /encode and /decode cannot answer for it."""


class Unauthorized(AeserveError):
    status_code = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="aeserve"'}


class PayloadTooLarge(AeserveError):
    status_code = 413


class UnsupportedMediaType(AeserveError):
    status_code = 415


class NotAcceptable(AeserveError):
    status_code = 406


class NotReady(AeserveError):
    status_code = 503


class Overloaded(AeserveError):
    """More work is waiting than the server takes on: come back after `retry_after_s`."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class DeadlineExceeded(AeserveError):
    """The request was not answered within the server's deadline; its work was dropped."""

    status_code = 504


class CorruptVersion(AeserveError):
    """A version on disk whose files do not match its manifest: it is never loaded."""

    status_code = 500
