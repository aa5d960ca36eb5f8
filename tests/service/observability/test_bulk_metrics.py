"""The bulk collectors expose exactly what prometheus_client's own would, for the same observations."""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.observability.bulk_metrics import BulkCounter, BulkHistogram

BOUNDS = (0.001, 0.01, 0.1, 1.0, 10.0)


def exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_histogram_and_counter_match_prometheus_client() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([10.0 ** rng.uniform(-4, 2, 500), list(BOUNDS), [0.0, np.inf]])
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    hist = Histogram("h", "a histogram", ["route", "model"], buckets=BOUNDS, registry=theirs)
    count = Counter("c", "a counter", ["model"], registry=theirs)
    bulk_hist = BulkHistogram("h", "a histogram", ["route", "model"], BOUNDS, fold_every=7)
    bulk_count = BulkCounter("c", "a counter", ["model"], fold_every=7)
    ours.register(bulk_hist)
    ours.register(bulk_count)
    for i, v in enumerate(values):
        labels = ("/score", "a" if i % 3 else "b")
        hist.labels(*labels).observe(v)
        bulk_hist.observe(labels, float(v))
        count.labels(labels[1]).inc(i % 4)
        bulk_count.inc((labels[1],), i % 4)
    mine, reference = exposition(ours), exposition(theirs)
    assert len(mine) == len(reference)
    for a, b in zip(mine, reference, strict=True):
        if "_sum{" in a:  # summed in another order: equal to rounding
            name_a, value_a = a.rsplit(" ", 1)
            name_b, value_b = b.rsplit(" ", 1)
            assert name_a == name_b
            assert np.isclose(float(value_a), float(value_b), rtol=1e-12)
        else:
            assert a == b


def test_an_array_counts_each_of_its_values() -> None:
    bulk = BulkHistogram("s", "scores", ["model"], BOUNDS)
    bulk.observe_many(("m",), np.array([0.005, 0.5, 50.0], dtype=np.float32))
    bulk.observe(("m",), 0.5)
    (family,) = bulk.collect()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("s_count", None)] == 4
    assert samples[("s_bucket", "0.01")] == 1
    assert samples[("s_bucket", "1.0")] == 3
    assert samples[("s_bucket", "+Inf")] == 4
    assert abs(samples[("s_sum", None)] - 51.005) < 1e-4


def test_pending_observations_are_bounded_and_none_is_lost_across_threads() -> None:
    bulk = BulkCounter("c", "a counter", ["k"], fold_every=100)
    hist = BulkHistogram("h", "a histogram", ["k"], BOUNDS, fold_every=100)

    def hammer(k: int) -> None:
        for _ in range(5000):
            bulk.inc((str(k % 2),))
            hist.observe((str(k % 2),), 0.5)
            assert len(bulk._pending) <= 100 + 8  # each thread may add one while another folds

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bulk.value(("0",)) + bulk.value(("1",)) == 40_000
    (family,) = hist.collect()
    counts = [s.value for s in family.samples if s.name == "h_count"]
    assert sum(counts) == 40_000


def test_queued_arrays_are_folded_by_their_rows() -> None:
    bulk = BulkHistogram("s", "scores", ["model"], BOUNDS, fold_rows=1000)
    for _ in range(5):
        bulk.observe_many(("m",), np.full(300, 0.5, dtype=np.float32))
    assert len(bulk._pending) < 4  # folded once 1,000 values were waiting
    (family,) = bulk.collect()
    assert [s.value for s in family.samples if s.name == "s_count"] == [1500]
