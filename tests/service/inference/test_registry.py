from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from core.errors import (
    CorruptVersion,
    InvalidInput,
    ModelNotFound,
    NotReady,
    VersionNotFound,
)
from core.repository import ModelRepository
from service.inference.options import RuntimeOptions
from service.inference.registry import ModelRegistry
from tests.tiny_model import publish_tiny_model, reference_outputs, sample_vectors


@pytest.fixture
def make_registry(repository: ModelRepository) -> Iterator[Any]:
    made: list[ModelRegistry] = []

    def make(
        default_model: str | None = None, cache_size: int = 4, cache_idle_s: float | None = None
    ) -> ModelRegistry:
        registry = ModelRegistry(
            repository,
            RuntimeOptions(),
            default_model,
            cache_size=cache_size,
            cache_idle_s=cache_idle_s,
        )
        registry.load_all()
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.stop_watching()


@pytest.fixture
def registry(make_registry: Any, tiny_model: dict[str, Any]) -> ModelRegistry:
    registry: ModelRegistry = make_registry()
    return registry


def corrupt(repository: ModelRepository, name: str, version: int) -> None:
    path = repository.version_dir(name, version) / "decoder.onnx"
    path.write_bytes(path.read_bytes() + b"\0")


def test_load_all_loads_every_active_version(
    repository: ModelRepository, tiny_model: dict[str, Any], make_registry: Any
) -> None:
    publish_tiny_model(repository, "other", seed=1)
    publish_tiny_model(repository, "other", seed=2, promote=False)
    registry = make_registry()
    assert registry.ready
    assert [(r.name, r.version) for r in registry.loaded()] == [("other", 1), ("tiny", 1)]
    assert registry.get("other").version == 1


def test_the_only_model_is_the_default(registry: ModelRegistry) -> None:
    assert registry.get() is registry.get("tiny")


def test_the_default_model_setting_wins(
    repository: ModelRepository, tiny_model: dict[str, Any], make_registry: Any
) -> None:
    publish_tiny_model(repository, "other", seed=1)
    registry = make_registry("other")
    assert registry.get().name == "other"
    assert make_registry().ready
    with pytest.raises(InvalidInput) as caught:
        make_registry().get()
    assert caught.value.message == (
        "the server has 2 models (other, tiny) and no default one; pick one with ?model=NAME"
    )


def test_an_empty_repository_is_ready_but_serves_nothing(make_registry: Any) -> None:
    registry = make_registry()
    assert registry.readiness() == (True, "the model repository has no models yet")
    assert registry.loaded() == []
    with pytest.raises(NotReady, match=r"^no model is loaded yet$"):
        registry.get()


def test_not_ready_before_the_repository_is_read(repository: ModelRepository) -> None:
    registry = ModelRegistry(repository, RuntimeOptions(), None)
    assert registry.readiness() == (False, "the model repository has not been read yet")


def test_ready_once_every_active_version_is_loaded(
    repository: ModelRepository, tiny_model: dict[str, Any], make_registry: Any
) -> None:
    publish_tiny_model(repository, "other", seed=1)
    registry = make_registry()
    assert registry.readiness() == (True, "2 model(s) loaded: other, tiny")
    corrupt(repository, "other", 1)
    assert make_registry().readiness() == (
        False,
        "model 'other' v1: decoder.onnx does not match its sha256 checksum",
    )


def test_a_missing_default_model_is_not_ready(
    tiny_model: dict[str, Any], make_registry: Any
) -> None:
    registry = make_registry("missing")
    assert not registry.ready
    with pytest.raises(NotReady) as caught:
        registry.get()
    assert caught.value.message == "the default model 'missing' is not loaded"
    assert caught.value.status_code == 503


@pytest.mark.parametrize(
    ("name", "version", "error", "message"),
    [
        ("nope", None, ModelNotFound, "model 'nope' not found"),
        ("nope", 1, ModelNotFound, "model 'nope' not found"),
        ("Bad Name!", None, ModelNotFound, "model 'Bad Name!' not found"),
        ("Bad Name!", 1, ModelNotFound, "model 'Bad Name!' not found"),
        ("tiny", 9, VersionNotFound, "model 'tiny' has no version 9"),
        ("tiny", 0, VersionNotFound, "model 'tiny' has no version 0"),
    ],
)
def test_unknown_models_and_versions_are_404(
    registry: ModelRegistry, name: str, version: int | None, error: type, message: str
) -> None:
    with pytest.raises(error) as caught:
        registry.get(name, version)
    assert caught.value.message == message
    assert caught.value.status_code == 404


def test_a_version_that_is_not_active_loads_on_demand(
    repository: ModelRepository, registry: ModelRegistry
) -> None:
    publish_tiny_model(repository, "tiny", seed=5, promote=False)
    active = registry.get("tiny")
    second = registry.get("tiny", 2)
    assert (active.version, second.version) == (1, 2)
    assert registry.get("tiny", 2) is second  # cached
    assert registry.get("tiny", 1) is active
    assert registry.get("tiny") is active
    x = sample_vectors(second.manifest, 3)
    np.testing.assert_allclose(
        asyncio.run(second.score_async(x)).scores,
        reference_outputs(second.manifest, x)["scores"],
        rtol=1e-5,
    )


def test_the_version_cache_forgets_the_least_recently_used(
    repository: ModelRepository, tiny_model: dict[str, Any], make_registry: Any
) -> None:
    for seed in (2, 3, 4):
        publish_tiny_model(repository, "tiny", seed=seed, promote=False)
    registry = make_registry(cache_size=2)
    v2 = registry.get("tiny", 2)
    v3 = registry.get("tiny", 3)
    assert registry.get("tiny", 2) is v2  # v2 is now the most recently used
    registry.get("tiny", 4)  # evicts v3
    assert registry.get("tiny", 2) is v2
    assert registry.get("tiny", 3) is not v3


@pytest.fixture
def idle_after_300_ms(
    repository: ModelRepository, tiny_model: dict[str, Any], make_registry: Any
) -> ModelRegistry:
    """A registry that unloads cached versions after 0.3 s unnamed; tiny v1 active, v2 not."""
    publish_tiny_model(repository, "tiny", seed=2, promote=False)
    registry: ModelRegistry = make_registry(cache_idle_s=0.3)
    return registry


def test_a_cached_version_left_idle_is_unloaded(idle_after_300_ms: ModelRegistry) -> None:
    """A version no request names, a replaced one included, does not hold its memory forever."""
    registry = idle_after_300_ms
    named = registry.get("tiny", 2)
    registry.promote("tiny", 2)  # v1, replaced, goes to the cache
    assert registry.served_versions() == {("tiny", "1"), ("tiny", "2")}
    assert registry.get("tiny") is named
    time.sleep(0.1)
    registry.refresh()
    assert ("tiny", "1") in registry.served_versions()  # not idle yet
    time.sleep(0.3)
    registry.refresh()
    assert registry.served_versions() == {("tiny", "2")}  # the active one is never unloaded
    again = registry.get("tiny", 1)  # loaded again on demand
    assert again.version == 1 and ("tiny", "1") in registry.served_versions()


def test_a_cached_version_in_use_stays_loaded(idle_after_300_ms: ModelRegistry) -> None:
    registry = idle_after_300_ms
    second = registry.get("tiny", 2)
    for _ in range(5):
        time.sleep(0.1)
        assert registry.get("tiny", 2) is second
        registry.refresh()
    assert ("tiny", "2") in registry.served_versions()


def test_a_deleted_version_stops_answering(
    repository: ModelRepository, registry: ModelRegistry
) -> None:
    publish_tiny_model(repository, "tiny", seed=5, promote=False)
    registry.get("tiny", 2)
    repository.delete("tiny", 2)
    with pytest.raises(VersionNotFound, match=r"^model 'tiny' has no version 2$"):
        registry.get("tiny", 2)


def test_refresh_picks_up_a_newly_promoted_version(
    repository: ModelRepository, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    old = registry.get()
    publish_tiny_model(repository, "tiny", seed=5, promote=True)
    assert registry.get() is old  # nothing changes until a refresh
    with caplog.at_level(logging.INFO, logger="aeserve.registry"):
        registry.refresh()
    assert registry.get().version == 2
    assert registry.get("tiny", 1) is old  # kept for requests that name it
    assert "model 'tiny': v2 replaces v1" in caplog.text


def test_refresh_reuses_a_version_already_loaded_on_demand(
    repository: ModelRepository, registry: ModelRegistry
) -> None:
    publish_tiny_model(repository, "tiny", seed=5, promote=False)
    on_demand = registry.get("tiny", 2)
    repository.promote("tiny", 2)
    registry.refresh()
    assert registry.get() is on_demand


def test_a_corrupt_version_is_refused_and_the_old_one_keeps_serving(
    repository: ModelRepository, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    publish_tiny_model(repository, "tiny", seed=5, promote=True)
    corrupt(repository, "tiny", 2)
    registry.refresh()
    registry.refresh()
    assert registry.get().version == 1
    assert registry.ready
    message = "model 'tiny' v2: decoder.onnx does not match its sha256 checksum"
    with pytest.raises(CorruptVersion) as caught:
        registry.get("tiny", 2)
    assert caught.value.message == message
    refusals = [
        r for r in caplog.records if r.name == "aeserve.registry" and "refused" in r.message
    ]
    assert [r.getMessage() for r in refusals] == [f"refused {message}"]  # checked once only
    assert caplog.text.count("model 'tiny' keeps serving v1: v2 cannot be loaded") == 1


def test_a_version_with_a_bad_graph_is_refused(
    repository: ModelRepository, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    publish_tiny_model(repository, "tiny", seed=5, input_dim=5, promote=False)
    manifest_path = repository.version_dir("tiny", 2) / "manifest.json"
    # The graphs' codes are 2 wide; the manifest now says 3 (its first "latent_dim").
    manifest_path.write_text(
        manifest_path.read_text().replace('"latent_dim": 2', '"latent_dim": 3', 1)
    )
    repository.promote("tiny", 2)
    registry.refresh()
    assert registry.get().version == 1
    assert "refused model 'tiny' v2" in caplog.text


def test_a_model_whose_only_version_is_corrupt_is_not_served(
    repository: ModelRepository, tiny_model: dict[str, Any], make_registry: Any
) -> None:
    corrupt(repository, "tiny", 1)
    registry = make_registry()
    assert registry.readiness() == (
        False,
        "model 'tiny' v1: decoder.onnx does not match its sha256 checksum",
    )
    assert registry.loaded() == []
    with pytest.raises(CorruptVersion, match="does not match its sha256 checksum"):
        registry.get()


def test_new_models_appear_and_deleted_ones_disappear(
    repository: ModelRepository, registry: ModelRegistry
) -> None:
    publish_tiny_model(repository, "other", seed=1)
    registry.refresh()
    assert [r.name for r in registry.loaded()] == ["other", "tiny"]
    shutil.rmtree(repository.model_dir("other"))
    registry.refresh()
    assert [r.name for r in registry.loaded()] == ["tiny"]
    with pytest.raises(ModelNotFound):
        registry.get("other")


def test_a_model_published_between_refreshes_loads_on_demand(
    repository: ModelRepository, registry: ModelRegistry
) -> None:
    publish_tiny_model(repository, "late", seed=1)
    late = registry.get("late")
    assert late.name == "late" and late.version == 1
    registry.refresh()
    assert registry.get("late") is late


def test_requests_never_fail_while_a_new_version_is_swapped_in(
    repository: ModelRepository, registry: ModelRegistry
) -> None:
    x = sample_vectors(registry.get().manifest, 8)
    expected = {1: reference_outputs(registry.get().manifest, x)["scores"]}
    answers: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    swapped = threading.Event()
    done = threading.Event()

    def hammer(answers: list[tuple[int, np.ndarray]]) -> None:
        after_swap = 0
        try:
            while after_swap < 20 and not done.is_set():
                runtime = registry.get()
                answers.append((runtime.version, asyncio.run(runtime.score_async(x)).scores))
                after_swap += swapped.is_set()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(a,)) for a in answers]
    for thread in threads:
        thread.start()
    publish_tiny_model(repository, "tiny", seed=5, promote=True)
    registry.refresh()
    swapped.set()
    for thread in threads:
        thread.join(30)
    done.set()

    assert errors == []
    expected[2] = reference_outputs(registry.get().manifest, x)["scores"]
    for thread_answers in answers:
        versions = [version for version, _ in thread_answers]
        assert versions == sorted(versions) and versions[-1] == 2
        for version, scores in thread_answers:
            np.testing.assert_allclose(scores, expected[version], rtol=1e-5)
    assert any(version == 1 for a in answers for version, _ in a)


def test_watching_follows_promotions(repository: ModelRepository, registry: ModelRegistry) -> None:
    registry.start_watching(0.02)
    registry.start_watching(0.02)  # a second start is a no-op
    publish_tiny_model(repository, "tiny", seed=5, promote=True)
    deadline = time.monotonic() + 10
    while registry.get().version != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.get().version == 2
    watchers = [t for t in threading.enumerate() if t.name == "aeserve-model-watcher"]
    assert len(watchers) == 1 and watchers[0].daemon
    registry.stop_watching()
    assert not watchers[0].is_alive()


def test_the_watcher_survives_a_failed_refresh(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def flaky_refresh() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")

    monkeypatch.setattr(registry, "refresh", flaky_refresh)
    registry.start_watching(0.01)
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    registry.stop_watching()
    assert len(calls) >= 3
    assert "model refresh failed" in caplog.text
