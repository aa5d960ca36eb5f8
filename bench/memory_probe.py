"""`aeserve ARGS` run in this very process, with the resident memory and the time that each
imported package adds, and what building the app and loading each model add (bench/memory.py
reads it).

    python -m bench.memory_probe OUT serve --port 8000 …

SIGUSR1 writes one JSON record to OUT. Standard library only, and started before anything else,
so that every module the server imports is counted. A module is charged what the process grew
while its own code ran, its nested imports charged to their own packages: exact in sum,
approximate for small packages (a module that grows the heap is charged for room the next ones
use). A phase (the app's build, a model's load) is charged what the process grew during it, less
what imports inside it added. Time is charged the same way, in seconds of the wall clock.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")
# Where start-up does its work: the app factory uvicorn calls, and each version's load.
PHASES = {
    "service.main": ("app_from_environment", "app"),
    "service.inference.registry": ("load_runtime", "model"),
}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def _package(module: str) -> str:
    """The row a module is counted in: its top-level package; aeserve's `service` by part."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "service" and len(parts) > 1 else parts[0]


def _now() -> tuple[float, float]:
    """(MB resident, seconds of the wall clock): what a step is charged in."""
    return rss_mb(), time.monotonic()


class Probe:
    def __init__(self, out: str) -> None:
        self.out = out
        self.start_mb = rss_mb()
        self.packages: dict[str, float] = {}  # _package → MB, in first-import order
        self.package_s: dict[str, float] = {}  # _package → seconds
        self.imports_mb = 0.0  # what the outermost imports added, nested ones included
        self.imports_s = 0.0
        self.phases: dict[str, float] = {}
        self.phase_s: dict[str, float] = {}
        # Per thread: (MB, s) added by imports nested in each open one.
        self._local = threading.local()

    def imported(self, name: str, run: Callable[[ModuleType], None], module: ModuleType) -> None:
        package = _package(name)
        self.packages.setdefault(package, 0.0)
        self.package_s.setdefault(package, 0.0)
        open_imports: list[list[float]] = self._local.__dict__.setdefault("open", [])
        start_mb, start_s = _now()
        open_imports.append([0.0, 0.0])
        try:
            run(module)
        finally:
            nested_mb, nested_s = open_imports.pop()
            end_mb, end_s = _now()
            grown, took = end_mb - start_mb, end_s - start_s
            self.packages[package] += grown - nested_mb
            self.package_s[package] += took - nested_s
            if open_imports:
                open_imports[-1][0] += grown
                open_imports[-1][1] += took
            else:
                self.imports_mb += grown
                self.imports_s += took
        self._wrap_phases(name, module)

    def phase(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            (rss, started), imports_mb, imports_s = _now(), self.imports_mb, self.imports_s
            try:
                return function(*args, **kwargs)
            finally:
                end_mb, end_s = _now()
                grown = end_mb - rss - (self.imports_mb - imports_mb)
                took = end_s - started - (self.imports_s - imports_s)
                self.phases[label] = self.phases.get(label, 0.0) + grown
                self.phase_s[label] = self.phase_s.get(label, 0.0) + took

        return measured

    def _wrap_phases(self, name: str, module: ModuleType) -> None:
        if name in PHASES:
            attribute, label = PHASES[name]
            setattr(module, attribute, self.phase(label, getattr(module, attribute)))

    def dump(self, signum: int = 0, frame: FrameType | None = None) -> None:
        record = {
            "start_mb": self.start_mb,
            "packages": self.packages,
            "imports_mb": self.imports_mb,
            "phases": self.phases,
            "package_s": self.package_s,
            "imports_s": self.imports_s,
            "phase_s": self.phase_s,
        }
        with open(f"{self.out}.part", "w") as f:
            json.dump(record, f)
        os.replace(f"{self.out}.part", self.out)  # whole, for the reader waiting on it


class _MeasuredLoader(Loader):
    def __init__(self, loader: Loader, name: str, probe: Probe) -> None:
        self._loader, self._name, self._probe = loader, name, probe

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader, attribute)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._probe.imported(self._name, self._loader.exec_module, module)


class _MeasuringFinder(MetaPathFinder):
    """Finds each module as the other finders do, and measures its loader's `exec_module`."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _MeasuredLoader(spec.loader, name, self._probe)
            return spec
        return None


def install(out: str) -> Probe:
    probe = Probe(out)
    sys.meta_path.insert(0, _MeasuringFinder(probe))
    signal.signal(signal.SIGUSR1, probe.dump)
    return probe


if __name__ == "__main__":
    install(sys.argv[1])
    from service.cli import app  # what the `aeserve` script runs

    sys.argv = ["aeserve", *sys.argv[2:]]
    app()
