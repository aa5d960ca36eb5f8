"""Opening an S3-compatible bucket, and the one error that says it cannot be reached.

obstore (Rust's object_store) is the client: one small dependency with native conditional puts
(create-only, and ETag compare-and-swap), sync and async calls, and the lowest per-request
overhead of the Python S3 clients; boto3 has neither async nor an ETag compare-and-swap API.
Credentials, region and the rest come from the usual `AWS_*` variables, which obstore reads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from core.errors import AeserveError

if TYPE_CHECKING:
    from obstore.store import S3Store

SCHEME = "s3://"


class StoreUnavailable(AeserveError):
    """The object store did not answer (or answered with an error that is not about a key)."""

    status_code = 503


def is_store_url(location: str) -> bool:
    return location.startswith(SCHEME)


@dataclass(frozen=True)
class StoreLocation:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> StoreLocation:
        bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
        if not bucket:
            raise ValueError(f"{url!r} names no bucket: use s3://bucket/prefix")
        return cls(bucket, prefix.strip("/"))

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")


def open_store(
    location: StoreLocation, endpoint: str | None, timeout_s: float, prefix: str = ""
) -> S3Store:
    """The bucket, under `location.prefix` (and `prefix` below it), with short timeouts: a store
    that does not answer must fail a call in seconds, not hang the poller or a publish."""
    try:
        from obstore.store import S3Store
    except ImportError:
        raise StoreUnavailable(
            f"{location} is an object store, and obstore is not installed: "
            "pip install 'aeserve[s3]'"
        ) from None

    client_options: dict[str, str | bool] = {
        "timeout": f"{int(timeout_s * 1000)}ms",
        "connect_timeout": f"{int(min(timeout_s, 2.0) * 1000)}ms",
    }
    if endpoint and endpoint.startswith("http://"):
        client_options["allow_http"] = True  # a store on a private network (MinIO, tests)
    full_prefix = "/".join(part for part in (location.prefix, prefix) if part)
    config = {"endpoint": endpoint} if endpoint else {}
    return S3Store(
        location.bucket,
        prefix=full_prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client_options,  # type: ignore[arg-type]
        retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=timeout_s)},
    )


class Reachability:
    """Whether the last call to the store got an answer, and since when it has not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._error = ""

    def ok(self) -> None:
        if self._down_since is not None:
            with self._lock:
                self._down_since = None

    def failed(self, error: str) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.time()
            self._error = error

    @property
    def reachable(self) -> bool:
        return self._down_since is None

    def describe(self) -> str | None:
        """None while reachable; else what failed and for how long."""
        down_since = self._down_since
        if down_since is None:
            return None
        return f"unreachable for {time.time() - down_since:.0f} s ({self._error})"
