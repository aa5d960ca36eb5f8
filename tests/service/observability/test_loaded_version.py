"""`aeserve_model_loaded_version` is updated in place: a model no longer loaded leaves, the others
keep their series throughout (it was cleared and refilled, so a scrape meanwhile saw it empty)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from service.observability.metrics import Metrics


@dataclass
class Loaded:
    name: str
    version: int


def _series(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["model"]: sample.value
        for family in metrics.loaded_version.collect()
        for sample in family.samples
    }


def test_loaded_versions_change_without_clearing() -> None:
    metrics = Metrics()
    metrics.record_loaded(cast(Any, [Loaded("a", 1), Loaded("b", 3)]))
    assert _series(metrics) == {"a": 1, "b": 3}
    cleared = []
    original = metrics.loaded_version.clear
    metrics.loaded_version.clear = lambda: (cleared.append(True), original())  # type: ignore[method-assign]
    metrics.record_loaded(cast(Any, [Loaded("b", 4), Loaded("c", 1)]))
    assert _series(metrics) == {"b": 4, "c": 1}
    assert not cleared
