"""`aeserve ARGS` run in this very process, with the resident memory that each imported package
adds, and what building the app and loading each model add (bench/memory.py reads it).

    python -m bench.memory_probe OUT serve --port 8000 …

SIGUSR1 writes one JSON record to OUT. Standard library only, and started before anything else,
so that every module the server imports is counted. A module is charged what the process grew
while its own code ran, its nested imports charged to their own packages: exact in sum,
approximate for small packages (a module that grows the heap is charged for room the next ones
use). A phase (the app's build, a model's load) is charged what the process grew during it, less
what imports inside it added.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
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


class Probe:
    def __init__(self, out: str) -> None:
        self.out = out
        self.start_mb = rss_mb()
        self.packages: dict[str, float] = {}  # _package → MB, in first-import order
        self.imports_mb = 0.0  # what the outermost imports added, nested ones included
        self.phases: dict[str, float] = {}
        self._local = threading.local()  # per thread: MB added by imports nested in each open one

    def imported(self, name: str, run: Callable[[ModuleType], None], module: ModuleType) -> None:
        package = _package(name)
        self.packages.setdefault(package, 0.0)
        open_imports: list[float] = self._local.__dict__.setdefault("open", [])
        start = rss_mb()
        open_imports.append(0.0)
        try:
            run(module)
        finally:
            nested = open_imports.pop()
            grown = rss_mb() - start
            self.packages[package] += grown - nested
            if open_imports:
                open_imports[-1] += grown
            else:
                self.imports_mb += grown
        self._wrap_phases(name, module)

    def phase(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            rss, imports = rss_mb(), self.imports_mb
            try:
                return function(*args, **kwargs)
            finally:
                grown = rss_mb() - rss - (self.imports_mb - imports)
                self.phases[label] = self.phases.get(label, 0.0) + grown

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
