"""The model repository on an S3-compatible object store, with a verified local copy per process.

Same layout as on disk, under the URL's prefix: `<name>/<version>/<files>`, `<name>/active`.
No lock is shared between hosts; every step that two publishers could race is one conditional
request the store arbitrates:

- a version number is claimed by creating `<name>/<version>/.claim` only if absent, so two hosts
  never get the same number, and a number is never reused (the claim outlives a delete);
- the files go under the version's prefix, the manifest last: a version without a manifest
  is invisible, so a publish that fails half-way leaves nothing anyone can see;
- `active` is replaced with a compare-and-swap on its ETag: of two promotions that read the same
  pointer, one wins and the other gets `Conflict`, never a torn or lost update.

Readers get local folders: a version is downloaded into `<cache>/<name>/<version>`, its files
checked against the manifest's sha256 before the folder is renamed into place, and re-checked
by `verify` as on disk. The pointer is read with `If-None-Match`, so following promotions costs
one small request per model per poll, and what is cached keeps serving while the store is down.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import Conflict, CorruptVersion, ModelNotFound, VersionNotFound
from core.manifest import MANIFEST, Manifest, dump_manifest, read_exported_manifest, read_manifest
from core.object_store import Reachability, StoreLocation, StoreUnavailable
from core.repository import (
    ACTIVE,
    NAME_PATTERN,
    STAGING,
    Repository,
    check_files,
    check_name,
    staged_files,
    staging_folder,
    sweep_staging_folders,
)

if TYPE_CHECKING:
    from obstore.store import S3Store

log = logging.getLogger("aeserve.repository")

CLAIM = ".claim"
_VERSION_KEY = re.compile(r"([a-z0-9][a-z0-9_.-]{0,63})/(\d+)/(.+)")
_MANIFESTS = ".manifests"
_PUBLISH_ATTEMPTS = 20
T = TypeVar("T")


class ObjectStoreRepository(Repository):
    """`s3://bucket/prefix` as a model repository; `cache` is this process's local copy."""

    def __init__(self, store: S3Store, location: StoreLocation, cache: Path) -> None:
        self.store = store
        self._location = location
        self.cache = Path(cache)
        self.reachability = Reachability()
        self._pointers: dict[str, tuple[str | None, int | None]] = {}  # name: (ETag, version)
        self._download_lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self._location)

    def unreachable(self) -> str | None:
        problem = self.reachability.describe()
        return None if problem is None else f"the model store {self.location} is {problem}"

    # -- talking to the store ------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One request; a key that is absent raises FileNotFoundError, a store that does not
        answer `StoreUnavailable` naming what was being done."""
        from obstore.exceptions import (
            AlreadyExistsError,
            NotModifiedError,
            PreconditionError,
        )

        try:
            result = call()
        except (FileNotFoundError, AlreadyExistsError, PreconditionError, NotModifiedError):
            self.reachability.ok()  # the store answered; the condition is the caller's business
            raise
        except Exception as exc:
            message = str(exc).split("\n", 1)[0][:300]
            self.reachability.failed(message)
            raise StoreUnavailable(
                f"the model store {self.location} did not answer ({what}): {message}"
            ) from exc
        self.reachability.ok()
        return result

    def _get(self, key: str) -> bytes:
        import obstore

        return self._call(f"reading {key}", lambda: bytes(obstore.get(self.store, key).bytes()))

    def _put(self, key: str, data: bytes | Path, mode: Any = None) -> dict[str, Any]:
        import obstore

        def put() -> dict[str, Any]:
            result: Any = obstore.put(self.store, key, data, mode=mode)
            return dict(result)

        return self._call(f"writing {key}", put)

    def _keys(self, prefix: str) -> list[str]:
        import obstore

        def keys() -> list[str]:
            return [meta["path"] for batch in obstore.list(self.store, prefix) for meta in batch]

        return self._call(f"listing {prefix or 'the repository'}", keys)

    def _delete(self, keys: list[str]) -> None:
        import obstore

        if keys:
            self._call("deleting", lambda: obstore.delete(self.store, keys))

    # -- reading -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        import obstore

        def listing() -> list[str]:
            found = obstore.list_with_delimiter(self.store, None)["common_prefixes"]
            return [prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in found]

        return sorted(n for n in self._call("listing models", listing) if NAME_PATTERN.fullmatch(n))

    def has_model(self, name: str) -> bool:
        return bool(NAME_PATTERN.fullmatch(name)) and name in self.names()

    def _model_keys(self, name: str) -> list[str]:
        if not NAME_PATTERN.fullmatch(name):
            raise ModelNotFound(f"model {name!r} not found")
        keys = self._keys(f"{name}/")
        if not keys:
            raise ModelNotFound(f"model {name!r} not found")
        return keys

    def versions(self, name: str) -> list[int]:
        return sorted(_versions_with(self._model_keys(name), MANIFEST))

    def active_version(self, name: str) -> int | None:
        """The pointer, asked for with `If-None-Match` on the ETag last seen: unchanged, the
        store answers 304 with no body."""
        import obstore
        from obstore.exceptions import NotModifiedError

        if not NAME_PATTERN.fullmatch(name):
            raise ModelNotFound(f"model {name!r} not found")
        etag, version = self._pointers.get(name, (None, None))
        options: Any = {"if_none_match": etag} if etag else None
        try:
            result = self._call(
                f"reading {name}/{ACTIVE}",
                lambda: obstore.get(self.store, f"{name}/{ACTIVE}", options=options),
            )
        except NotModifiedError:
            return version
        except FileNotFoundError:
            self._pointers.pop(name, None)
            self._model_keys(name)  # ModelNotFound for a model that is not there at all
            return None
        body = self._call(f"reading {name}/{ACTIVE}", lambda: bytes(result.bytes()))
        version = int(body.decode().strip())
        self._pointers[name] = (result.meta["e_tag"], version)
        return version

    def _pointer(self, name: str) -> tuple[str | None, int | None]:
        """The pointer's ETag and version, read afresh (None, None when absent)."""
        import obstore

        try:
            result = self._call(
                f"reading {name}/{ACTIVE}", lambda: obstore.get(self.store, f"{name}/{ACTIVE}")
            )
        except FileNotFoundError:
            return None, None
        body = self._call(f"reading {name}/{ACTIVE}", lambda: bytes(result.bytes()))
        return result.meta["e_tag"], int(body.decode().strip())

    def manifest(self, name: str, version: int) -> Manifest:
        """From the local copy when there is one, else the manifest alone, from the store."""
        cached = self._cached_dir(name, version)
        if (cached / MANIFEST).is_file():
            return read_manifest(cached)
        folder = self.cache / _MANIFESTS / name / str(version)
        _write_new(folder / MANIFEST, self._version_object(name, version, MANIFEST))
        return read_manifest(folder)

    def version_dir(self, name: str, version: int) -> Path:
        folder = self._cached_dir(name, version)
        if (folder / MANIFEST).is_file():
            return folder
        return self._download(name, version)

    def verify(self, name: str, version: int) -> Path:
        folder = self.version_dir(name, version)
        check_files(folder, read_manifest(folder), name, version)
        return folder

    def _cached_dir(self, name: str, version: int) -> Path:
        return self.cache / check_name(name) / str(version)

    def _version_object(self, name: str, version: int, file_name: str) -> bytes:
        try:
            return self._get(f"{check_name(name)}/{version}/{file_name}")
        except FileNotFoundError:
            if file_name == MANIFEST:
                self._model_keys(name)  # ModelNotFound first
                raise VersionNotFound(f"model {name!r} has no version {version}") from None
            raise CorruptVersion(f"model {name!r} v{version}: {file_name} is missing") from None

    def _download(self, name: str, version: int) -> Path:
        """Fetch the manifest, then every file it lists; check each sha256, then rename the
        folder into the cache (a cached folder is always a whole, checked version)."""
        with self._download_lock:
            folder = self._cached_dir(name, version)
            if (folder / MANIFEST).is_file():
                return folder
            manifest_bytes = self._version_object(name, version, MANIFEST)
            partial = self.cache / STAGING / f"download-{uuid.uuid4().hex}"
            partial.mkdir(parents=True)
            try:
                (partial / MANIFEST).write_bytes(manifest_bytes)
                manifest = read_manifest(partial)
                for file_name in manifest.files:
                    (partial / file_name).write_bytes(
                        self._version_object(name, version, file_name)
                    )
                check_files(partial, manifest, name, version)
                folder.parent.mkdir(parents=True, exist_ok=True)
                partial.rename(folder)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            log.info("model %r v%d downloaded from %s", name, version, self.location)
            return folder

    # -- writing -------------------------------------------------------------------------------

    def staging(self) -> contextlib.AbstractContextManager[Path]:
        return staging_folder(self.cache)

    def sweep_staging(self, older_than_s: float = 3600.0) -> int:
        return sweep_staging_folders(self.cache, older_than_s)

    def publish(self, name: str, staging_dir: Path, *, promote: bool = False) -> int:
        check_name(name)
        exported = read_exported_manifest(staging_dir)
        files = staged_files(staging_dir)
        self._pass_gate()
        version = self._claim(name)
        try:
            for file_name in files:
                self._put(f"{name}/{version}/{file_name}", staging_dir / file_name)
            manifest = exported.published(name, version, files)
            self._put(f"{name}/{version}/{MANIFEST}", dump_manifest(manifest))
        except Exception:
            # Invisible already (no manifest); tidy up what we can, keep the claim.
            with contextlib.suppress(Exception):
                self._delete([f"{name}/{version}/{file_name}" for file_name in files])
            raise
        etag, active = self._pointer(name)
        if promote or active is None:
            self._swap_pointer(name, version, etag, retry=True)
        return version

    def _claim(self, name: str) -> int:
        """The next version number, claimed with a create-only write."""
        from obstore.exceptions import AlreadyExistsError

        try:
            keys = self._keys(f"{name}/")
        except FileNotFoundError:
            keys = []
        version = max(_versions_with(keys, CLAIM) | _versions_with(keys, MANIFEST), default=0) + 1
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                self._put(f"{name}/{version}/{CLAIM}", b"", mode="create")
                return version
            except AlreadyExistsError:
                version += 1  # another publisher got there first
        raise Conflict(f"model {name!r}: could not claim a version number; too many publishers")

    def _swap_pointer(self, name: str, version: int, etag: str | None, *, retry: bool) -> None:
        """Replace `active` if it still has `etag` (create it if None); with `retry`, read it
        again and retry on a lost race (publishing with promote: the newest publish wins)."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        for _ in range(_PUBLISH_ATTEMPTS):
            mode: Any = "create" if etag is None else {"e_tag": etag}
            try:
                result = self._put(f"{name}/{ACTIVE}", f"{version}\n".encode(), mode=mode)
                self._pointers[name] = (result.get("e_tag"), version)
                return
            except (AlreadyExistsError, PreconditionError):
                if not retry:
                    raise Conflict(
                        f"model {name!r}: the active version changed while v{version} was being "
                        "promoted; read it again and retry"
                    ) from None
                etag, _ = self._pointer(name)
        raise Conflict(f"model {name!r}: the active version keeps changing; retry")

    def promote(self, name: str, version: int) -> None:
        """Verify (download and check every file), then compare-and-swap the pointer on the
        ETag read before verifying: a promotion that raced another gets `Conflict`."""
        etag, _ = self._pointer(name)
        self.verify(name, version)
        self._swap_pointer(name, version, etag, retry=False)

    def delete(self, name: str, version: int) -> None:
        keys = [k for k in self._model_keys(name) if k.startswith(f"{name}/{version}/")]
        if f"{name}/{version}/{MANIFEST}" not in keys:
            raise VersionNotFound(f"model {name!r} has no version {version}")
        if self.active_version(name) == version:
            raise Conflict(
                f"model {name!r} v{version} is the active version; promote another first"
            )
        # The manifest first: the version vanishes at once; the claim stays so that the number is
        # never handed out again.
        self._delete([f"{name}/{version}/{MANIFEST}"])
        self._delete([k for k in keys if not k.endswith(f"/{MANIFEST}") and not k.endswith(CLAIM)])
        shutil.rmtree(self._cached_dir(name, version), ignore_errors=True)


def _versions_with(keys: list[str], file_name: str) -> set[int]:
    versions = set()
    for key in keys:
        match = _VERSION_KEY.fullmatch(key)
        if match and match.group(3) == file_name:
            versions.add(int(match.group(2)))
    return versions


def _write_new(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    tmp.replace(path)
