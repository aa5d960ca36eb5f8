"""Loaded models, and how a newly promoted version replaces the one serving without a restart.

Every model's active version lives in a dict that is never mutated, only replaced: `refresh()`
loads new versions first, then rebinds the attribute in one assignment. A request that already
holds the old runtime finishes on it, the next one gets the new one, and the hot path (`get`
of an active version) takes no lock.

Watching is a daemon thread rather than an asyncio task: loading is blocking work (sha256 of every
file, onnxruntime session builds), so a task would hand it to a thread anyway; a thread keeps the
event loop out of it entirely and works the same under uvicorn, the CLI and plain tests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict

from core import heap
from core.errors import (
    AeserveError,
    CorruptVersion,
    InvalidInput,
    ModelNotFound,
    NotFound,
    NotReady,
    VersionNotFound,
)
from core.repository import NAME_PATTERN, Repository
from service.inference.loading import load_runtime
from service.inference.options import RuntimeOptions
from service.inference.runtime import ModelRuntime

logger = logging.getLogger("aeserve.registry")

CACHE_SIZE = 4
"""Non-active versions kept loaded for requests that name a version (least recently used go)."""
CACHE_IDLE_S = 120.0
"""A cached version no request has named for this long is unloaded (None: kept until the cache
needs its place)."""


class ModelRegistry:
    def __init__(
        self,
        repository: Repository,
        options: RuntimeOptions,
        default_model: str | None,
        *,
        cache_size: int = CACHE_SIZE,
        cache_idle_s: float | None = CACHE_IDLE_S,
    ) -> None:
        self.repository = repository
        self.options = options
        self.default_model = default_model
        self.cache_size = cache_size
        self.cache_idle_s = cache_idle_s
        self._active: dict[str, ModelRuntime] = {}  # replaced whole, never mutated
        self._names: tuple[str, ...] = ()  # every model in the repository at the last refresh
        # Models with an active version that serve none, as of the last refresh; None before it.
        self._unloaded: tuple[str, ...] | None = None
        self._cache: OrderedDict[tuple[str, int], ModelRuntime] = OrderedDict()
        self._used: dict[tuple[str, int], float] = {}  # when a request last named each, monotonic
        self._cache_lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time: no version is loaded twice
        self._refresh_lock = threading.Lock()
        self._refused: dict[tuple[str, int], CorruptVersion] = {}
        # Why a model's active version is not served, as of the last refresh (for readiness).
        self._load_errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- reading --------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """See `readiness`."""
        return self.readiness()[0]

    def readiness(self) -> tuple[bool, str]:
        """Whether this process can do its job, and why (not), in words.

        A configured default model must be loaded. With none configured, every model that had an
        active version at the last refresh must be serving; an empty repository is ready (there
        is nothing to wait for, and a model published later is loaded by the next refresh).
        A repository whose store does not answer leaves readiness as it was, and says so: what
        is loaded keeps serving from the local copy.
        """
        ready, reason = self._readiness()
        problem = self.repository.unreachable()
        if problem is not None:
            reason = f"{reason}; {problem}: serving from the local cache"
        return ready, reason

    def _readiness(self) -> tuple[bool, str]:
        active = self._active
        if self.default_model:
            if self.default_model in active:
                return True, f"the default model {self.default_model!r} is loaded"
            error = self._load_errors.get(self.default_model)
            if error is not None:
                return False, f"the default model {self.default_model!r} cannot be loaded: {error}"
            return False, f"the default model {self.default_model!r} is not loaded yet"
        unloaded = self._unloaded
        if unloaded is None:
            return False, "the model repository has not been read yet"
        if unloaded:
            errors = self._load_errors
            reasons = [errors[name] for name in unloaded if name in errors]
            pending = [name for name in unloaded if name not in errors]
            if pending:
                reasons.append(f"model(s) not loaded yet: {', '.join(pending)}")
            return False, "; ".join(reasons)
        if not active:
            if not self._names:
                return True, "the model repository has no models yet"
            return True, "no model in the repository has an active version yet"
        return True, f"{len(active)} model(s) loaded: {', '.join(sorted(active))}"

    def loaded(self) -> list[ModelRuntime]:
        """The active runtime of every loaded model, by name."""
        active = self._active
        return [active[name] for name in sorted(active)]

    def served_versions(self) -> set[tuple[str, str]]:
        """Every (model, version) this registry serves without a load: the active ones and
        the cached ones, versions as text (the metrics' `version` label)."""
        with self._cache_lock:
            cached = list(self._cache)
        active = [(runtime.name, runtime.version) for runtime in self._active.values()]
        return {(name, str(version)) for name, version in [*active, *cached]}

    def get(self, name: str | None = None, version: int | None = None) -> ModelRuntime:
        """The runtime for a request: `name` None is the default model, `version` None the active.

        A version that is not active is loaded on demand and kept in a small LRU cache.
        """
        active = self._active
        is_default = name is None
        if name is None:
            name = self._default_name(active)
        runtime = active.get(name)
        if runtime is not None and version in (None, runtime.version):
            return runtime
        try:
            if not NAME_PATTERN.fullmatch(name):
                raise ModelNotFound(f"model {name!r} not found")
            if version is None:  # a model that appeared, or failed, since the last refresh
                version = self._active_on_disk(name)
            return self._cached_or_load(name, version, check_exists=True)
        except ModelNotFound:
            if is_default:
                raise NotReady(f"the default model {name!r} is not loaded") from None
            raise

    async def get_async(self, name: str | None = None, version: int | None = None) -> ModelRuntime:
        """`get` for coroutines: an active version answers at once, anything else (which may read
        or load from disk) is looked up in a worker thread."""
        active = self._active
        runtime = active.get(self._default_name(active) if name is None else name)
        if runtime is not None and version in (None, runtime.version):
            return runtime
        return await asyncio.to_thread(self.get, name, version)

    def _default_name(self, active: dict[str, ModelRuntime]) -> str:
        if self.default_model:
            return self.default_model
        names = self._names or tuple(active)
        if len(names) == 1:
            return names[0]
        if not names:
            raise NotReady("no model is loaded yet")
        raise InvalidInput(
            f"the server has {len(names)} models ({', '.join(names)}) and no default one; "
            "pick one with ?model=NAME"
        )

    def _active_on_disk(self, name: str) -> int:
        version = self.repository.active_version(name)
        if version is None:
            raise NotReady(f"model {name!r} has no active version yet")
        return version

    # -- loading --------------------------------------------------------------------------------

    def _cached_or_load(self, name: str, version: int, *, check_exists: bool) -> ModelRuntime:
        key = (name, version)
        with self._cache_lock:
            runtime = self._cache.get(key)
            if runtime is not None:
                self._cache.move_to_end(key)
                self._used[key] = time.monotonic()
        if runtime is not None:
            # A deleted version must stop answering at once, not at the next refresh.
            if check_exists and not (runtime.folder / "manifest.json").is_file():
                self._evict(key)
                raise self._not_found(name, version)
            return runtime
        with self._load_lock:
            with self._cache_lock:
                runtime = self._cache.get(key)
            if runtime is None:
                runtime = self._load(name, version)
                self._remember(runtime)
            return runtime

    def _load(self, name: str, version: int) -> ModelRuntime:
        """Verify checksums, build sessions; refusals are remembered, as versions never change."""
        refused = self._refused.get((name, version))
        if refused is not None:
            raise refused
        try:
            folder = self.repository.verify(name, version)
            runtime = load_runtime(folder, self.options)
        except NotFound:
            raise self._not_found(name, version) from None
        except CorruptVersion as exc:
            logger.error("refused %s", exc.message)
            self._refused[(name, version)] = exc
            raise
        except (OSError, ValueError) as exc:  # e.g. an unreadable manifest; may be transient
            logger.error("could not load model %r v%d: %s", name, version, exc)
            raise CorruptVersion(f"model {name!r} v{version} cannot be read: {exc}") from exc
        if runtime.name != name or runtime.version != version:
            error = CorruptVersion(
                f"model {name!r} v{version}: its manifest says {runtime.name!r} v{runtime.version}"
            )
            logger.error("refused %s", error.message)
            self._refused[(name, version)] = error
            raise error
        logger.info(
            "loaded model %r v%d (providers: %s)", name, version, ", ".join(runtime.providers)
        )
        heap.trim()  # what building the sessions allocated and freed, and versions let go
        return runtime

    def _not_found(self, name: str, version: int) -> NotFound:
        if not self.repository.has_model(name):
            return ModelNotFound(f"model {name!r} not found")
        return VersionNotFound(f"model {name!r} has no version {version}")

    def _remember(self, runtime: ModelRuntime) -> None:
        with self._cache_lock:
            key = (runtime.name, runtime.version)
            self._cache[key] = runtime
            self._cache.move_to_end(key)
            self._used[key] = time.monotonic()
            while len(self._cache) > self.cache_size:
                oldest, _ = self._cache.popitem(last=False)
                self._used.pop(oldest, None)

    def _evict(self, key: tuple[str, int]) -> None:
        with self._cache_lock:
            self._cache.pop(key, None)
            self._used.pop(key, None)

    # -- promoting -----------------------------------------------------------------------------

    def promote(self, name: str, version: int) -> ModelRuntime:
        """Verify, then point, then serve: `version` is loaded (or, if cached, its files are
        re-hashed) before `active` moves, and this process serves it when this returns.

        `CorruptVersion` naming the file leaves `active` and what is served as they were.
        """
        key = (name, version)
        serving = self._active.get(name)
        if serving is not None and serving.version == version:
            runtime = serving
        else:
            self._refused.pop(key, None)  # an operator may have put the files right since
            runtime = self._cached_or_load(name, version, check_exists=True)
        try:
            self.repository.promote(name, version)  # re-hashes every file under the model's lock
        except CorruptVersion as exc:
            self._evict(key)  # a cached runtime whose files changed on disk is not kept
            self._refused[key] = exc
            logger.error("refused to promote %s", exc.message)
            raise
        with self._refresh_lock:
            current = self._active
            previous = current.get(name)
            if previous is not runtime:
                self._evict(key)
                if previous is not None:
                    self._remember(previous)
                self._active = {**current, name: runtime}
                logger.info("model %r: v%d promoted", name, version)
        self.refresh()  # names, readiness and any other model, as a poll would
        return runtime

    # -- reloading ------------------------------------------------------------------------------

    def load_all(self) -> None:
        """Verify and load the active version of every model (at startup)."""
        self.refresh()
        active = self._active
        logger.info(
            "serving %d model(s): %s",
            len(active),
            ", ".join(f"{r.name} v{r.version}" for r in self.loaded()) or "none",
        )

    def refresh(self) -> None:
        """Follow every model's active pointer; load what changed, then swap in one assignment.

        A version that fails to load is logged and skipped; the one already serving keeps serving.
        """
        with self._refresh_lock:
            current = self._active
            names = tuple(self.repository.names())
            updated: dict[str, ModelRuntime] = {}
            unloaded: list[str] = []
            errors: dict[str, str] = {}
            for name in names:
                runtime = self._follow(name, current.get(name), errors)
                if runtime is not None:
                    updated[name] = runtime
                elif self._has_active_version(name):
                    unloaded.append(name)
            for name in current.keys() - updated.keys():
                logger.info("model %r is gone from the repository; unloaded", name)
            self._names = names
            self._unloaded = tuple(unloaded)
            self._load_errors = errors
            self._active = updated  # the swap: one atomic rebinding
            self._purge_cache(names)

    def _follow(
        self, name: str, serving: ModelRuntime | None, errors: dict[str, str]
    ) -> ModelRuntime | None:
        """What `name` serves next: its active version, or `serving` if that cannot be loaded
        (why goes into `errors`)."""
        try:
            version = self.repository.active_version(name)
        except NotFound:  # deleted while we were looking
            return None
        except (OSError, ValueError) as exc:
            logger.error("cannot read the active version of model %r: %s", name, exc)
            errors[name] = f"its active pointer cannot be read: {exc}"
            return serving
        if version is None or (serving is not None and serving.version == version):
            return serving
        known_bad = (name, version) in self._refused  # logged once, not at every refresh
        try:
            runtime = self._cached_or_load(name, version, check_exists=False)
        except (CorruptVersion, NotFound) as exc:
            errors[name] = exc.message
            if serving is not None and not known_bad:
                logger.warning(
                    "model %r keeps serving v%d: v%d cannot be loaded (%s)",
                    name,
                    serving.version,
                    version,
                    exc.message,
                )
            return serving
        self._evict((name, version))
        if serving is not None:
            self._remember(serving)  # still answers requests that name its version
            logger.info("model %r: v%d replaces v%d", name, version, serving.version)
        return runtime

    def _has_active_version(self, name: str) -> bool:
        """Whether `name` has an active version to serve (an unreadable pointer counts)."""
        try:
            return self.repository.active_version(name) is not None
        except NotFound:
            return False
        except (OSError, ValueError):
            return True

    def _purge_cache(self, names: tuple[str, ...]) -> None:
        """Drop cached versions whose model or files are gone, and those idle past
        `cache_idle_s`: each holds its sessions' memory (the periodic heap trim returns it)."""
        idle_since = None if not self.cache_idle_s else time.monotonic() - self.cache_idle_s
        with self._cache_lock:
            for key, runtime in list(self._cache.items()):
                gone = key[0] not in names or not (runtime.folder / "manifest.json").is_file()
                idle = idle_since is not None and self._used.get(key, 0.0) < idle_since
                if gone or idle:
                    del self._cache[key]
                    self._used.pop(key, None)
                    if idle:
                        logger.info("model %r v%d: unloaded, idle in the cache", *key)

    def start_watching(self, interval_s: float) -> None:
        """Refresh every `interval_s` seconds in a daemon thread until `stop_watching()`."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, args=(interval_s,), name="aeserve-model-watcher", daemon=True
        )
        self._watcher.start()

    def stop_watching(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout_s)
            self._watcher = None

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except AeserveError as exc:  # e.g. the model store did not answer: said in one line
                logger.warning("model refresh failed: %s", exc.message)
            except Exception:  # the watcher must outlive any one bad refresh
                logger.exception("model refresh failed")
