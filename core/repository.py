"""The model repository: what every backend offers, and the filesystem backend.

`Repository` is the interface: versions `<name>/<version>/…` with a manifest written last (a
version without one does not exist), numbers never reused, an `active` pointer per model that
only moves to a version whose files match their checksums. Readers get local folders: the
repository's own (`ModelRepository`, here) or a verified local copy (core/object_repository.py,
an S3-compatible store).

On disk, a version becomes visible only by an atomic rename of a fully written, fsynced folder, so
a crash at any point leaves either the whole version or nothing. Version numbers are handed out
under a file lock and never reused, so two publishers never collide and a cached version never
changes meaning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import Conflict, CorruptVersion, InvalidInput, ModelNotFound, VersionNotFound
from core.manifest import MANIFEST, Manifest, dump_manifest, read_exported_manifest, read_manifest

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
ACTIVE = "active"
_HIGH_WATER = ".last_version"
_LOCK = ".lock"
STAGING = ".staging"


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"model name {name!r} is invalid: use 1-64 characters from a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def staged_files(staging_dir: Path) -> dict[str, str]:
    """The sha256 of every file of a staging folder but its manifest, by name."""
    return {
        p.name: sha256_of(p)
        for p in sorted(staging_dir.iterdir())
        if p.is_file() and p.name != MANIFEST
    }


def check_files(folder: Path, manifest: Manifest, name: str, version: int) -> None:
    """Every file the manifest lists is in `folder` with its sha256; `CorruptVersion` naming the
    first that is not."""
    if not manifest.files:
        raise CorruptVersion(f"model {name!r} v{version}: manifest lists no files")
    for file_name, expected in manifest.files.items():
        path = folder / file_name
        if not path.is_file():
            raise CorruptVersion(f"model {name!r} v{version}: {file_name} is missing")
        if sha256_of(path) != expected:
            raise CorruptVersion(
                f"model {name!r} v{version}: {file_name} does not match its sha256 checksum"
            )


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Repository(ABC):
    """Model versions and their active pointers, wherever they are kept."""

    publish_gate: Callable[[], None] | None = None
    """Called right before a version number is claimed (a training job: from then on it can no
    longer be cancelled); raising there publishes nothing."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the versions are, as a user would write it (a folder, `s3://bucket/prefix`)."""

    @abstractmethod
    def names(self) -> list[str]:
        """Every model, sorted."""

    @abstractmethod
    def has_model(self, name: str) -> bool: ...

    @abstractmethod
    def versions(self, name: str) -> list[int]:
        """Published versions (those with a manifest), ascending; `ModelNotFound`."""

    @abstractmethod
    def active_version(self, name: str) -> int | None: ...

    @abstractmethod
    def version_dir(self, name: str, version: int) -> Path:
        """A local folder holding the version's files; `VersionNotFound`."""

    @abstractmethod
    def manifest(self, name: str, version: int) -> Manifest:
        """The version's manifest; `CorruptVersion` when it breaks the contract."""

    @abstractmethod
    def verify(self, name: str, version: int) -> Path:
        """Check every file against the manifest's sha256; return the version's local folder."""

    @abstractmethod
    def staging(self) -> contextlib.AbstractContextManager[Path]:
        """A fresh local folder to write a version into, removed afterwards."""

    @abstractmethod
    def sweep_staging(self, older_than_s: float = 3600.0) -> int:
        """Remove staging folders a killed publisher left behind; they were never visible."""

    @abstractmethod
    def publish(self, name: str, staging_dir: Path, *, promote: bool = False) -> int:
        """Publish a fully written staging folder as the next version of `name`.

        The repository fills the manifest's `name`, `version` and `files` (sha256 of every other
        file). The first version of a model always becomes active. A staging manifest that breaks
        the contract (core/manifest.py) raises `CorruptVersion` and publishes nothing.
        """

    @abstractmethod
    def promote(self, name: str, version: int) -> None:
        """Point `active` at a version whose files match their checksums, and only then."""

    @abstractmethod
    def delete(self, name: str, version: int) -> None:
        """Remove a version that is not active (`Conflict` if it is)."""

    def unreachable(self) -> str | None:
        """None when the repository answered its last call; else why it did not, in words."""
        return None

    def version_location(self, name: str, version: int) -> str:
        """Where a version is, as a user would write it (for messages)."""
        return f"{self.location}/{name}/{version}"

    def _pass_gate(self) -> None:
        if self.publish_gate is not None:
            self.publish_gate()


class ModelRepository(Repository):
    """Folders of exported model versions, with an active-version pointer per model."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def version_location(self, name: str, version: int) -> str:
        return str(self.version_dir(name, version))

    # -- reading ----------------------------------------------------------------------------

    def has_model(self, name: str) -> bool:
        return bool(NAME_PATTERN.fullmatch(name)) and (self.root / name).is_dir()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and NAME_PATTERN.fullmatch(p.name)
        )

    def model_dir(self, name: str) -> Path:
        path = self.root / name
        if not NAME_PATTERN.fullmatch(name) or not path.is_dir():
            raise ModelNotFound(f"model {name!r} not found")
        return path

    def versions(self, name: str) -> list[int]:
        return sorted(
            int(p.name)
            for p in self.model_dir(name).iterdir()
            if p.name.isdigit() and (p / MANIFEST).is_file()
        )

    def active_version(self, name: str) -> int | None:
        pointer = self.model_dir(name) / ACTIVE
        try:
            return int(pointer.read_text().strip())
        except FileNotFoundError:
            return None

    def version_dir(self, name: str, version: int) -> Path:
        path = self.model_dir(name) / str(version)
        if not (path / MANIFEST).is_file():
            raise VersionNotFound(f"model {name!r} has no version {version}")
        return path

    def manifest(self, name: str, version: int) -> Manifest:
        return read_manifest(self.version_dir(name, version))

    def verify(self, name: str, version: int) -> Path:
        folder = self.version_dir(name, version)
        check_files(folder, self.manifest(name, version), name, version)
        return folder

    # -- writing ----------------------------------------------------------------------------

    def staging(self) -> contextlib.AbstractContextManager[Path]:
        """A fresh folder on the repository's filesystem to write a version into."""
        return staging_folder(self.root)

    def sweep_staging(self, older_than_s: float = 3600.0) -> int:
        """Remove staging folders a killed publisher left behind; they were never visible."""
        return sweep_staging_folders(self.root, older_than_s)

    @contextlib.contextmanager
    def _locked(self, name: str, *, create: bool = False) -> Iterator[Path]:
        """Hold the model's lock; only publishing creates a model (a lookup that fails must not
        leave a folder behind, or a 404 would add a model to the listing)."""
        if create:
            model_dir = self.root / check_name(name)
            model_dir.mkdir(parents=True, exist_ok=True)
        else:
            model_dir = self.model_dir(name)
        with (model_dir / _LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield model_dir
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def publish(self, name: str, staging_dir: Path, *, promote: bool = False) -> int:
        """Move a fully written staging folder into place as the next version of `name`."""
        manifest_path = staging_dir / MANIFEST
        exported = read_exported_manifest(staging_dir)
        files = staged_files(staging_dir)
        self._pass_gate()
        for file_name in files:
            _fsync_file(staging_dir / file_name)
        with self._locked(name, create=True) as model_dir:
            high_water = model_dir / _HIGH_WATER
            last = int(high_water.read_text()) if high_water.is_file() else 0
            version = max([last, *self.versions(name)]) + 1
            while True:
                manifest = exported.published(name, version, files)
                _write_atomically(manifest_path, dump_manifest(manifest))
                try:
                    os.rename(staging_dir, model_dir / str(version))
                    break
                except OSError as exc:  # a publisher that does not take the lock got there first
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    version += 1
            _fsync_dir(model_dir)
            _write_atomically(high_water, str(version).encode())
            if promote or self.active_version(name) is None:
                _write_atomically(model_dir / ACTIVE, f"{version}\n".encode())
        return version

    def promote(self, name: str, version: int) -> None:
        """Point `active` at a version whose files match their checksums, and only then.

        `CorruptVersion` (naming the file) leaves the pointer where it was: a restart must never
        find `active` on a version that cannot load. Loading it (the graphs) is the caller's part.
        """
        with self._locked(name) as model_dir:
            self.verify(name, version)
            _write_atomically(model_dir / ACTIVE, f"{version}\n".encode())

    def delete(self, name: str, version: int) -> None:
        with self._locked(name) as model_dir:
            folder = self.version_dir(name, version)
            if self.active_version(name) == version:
                raise Conflict(
                    f"model {name!r} v{version} is the active version; promote another first"
                )
            # Renaming first makes the version vanish at once; the slow removal comes after.
            trash = model_dir / f".deleted-{version}-{uuid.uuid4().hex}"
            os.rename(folder, trash)
            _fsync_dir(model_dir)
        shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(parent: Path) -> Iterator[Path]:
    """A fresh folder under `parent`'s staging area, removed when the block ends."""
    path = parent / STAGING / uuid.uuid4().hex
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_staging_folders(parent: Path, older_than_s: float) -> int:
    """Remove staging folders under `parent` older than `older_than_s`; how many went."""
    staging = parent / STAGING
    if not staging.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    stale = [p for p in staging.iterdir() if p.stat().st_mtime < cutoff]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
