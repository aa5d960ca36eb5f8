"""The console in a real browser: train a model from the page and watch its loss curve grow,
find the new version, check that its charts are drawn from the manifest's numbers, watch live
traffic; the screenshots the README shows are saved under docs/screenshots/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.http.browser.conftest import Offline, Server
from tests.service.jobs.helpers import API_KEY, AUTH
from tests.tiny_model import sample_vectors

SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
EPOCHS = 12


def training_csv(folder: Path) -> Path:
    """Correlated rows (a rank-3 signal plus noise), with a header naming the columns."""
    rng = np.random.default_rng(0)
    # Enough rows that the job lasts a few seconds: the page must see it while it runs.
    rows = 4000
    data = rng.normal(size=(rows, 3)) @ rng.normal(size=(3, 8)) + 0.1 * rng.normal(size=(rows, 8))
    path = folder / "sensors.csv"
    header = ",".join(f"sensor_{i}" for i in range(8))
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.5f")
    return path


def count(page: Any, selector: str) -> int:
    return int(page.eval_on_selector_all(selector, "nodes => nodes.length"))


def test_train_from_the_page_and_inspect_the_new_version(
    server: Server, page: Any, offline: Offline, tmp_path: Path
) -> None:
    page.goto(f"{server.base}/ui")
    page.fill("#api-key", API_KEY)
    page.click("#key-form button")
    page.wait_for_selector("tr[data-model='tiny'][data-version='1']")

    # Start a job from the form.
    page.click("nav >> text=Jobs")
    page.fill("#train-form input[name=name]", "sensors")
    page.set_input_files("#train-form input[name=file]", str(training_csv(tmp_path)))
    page.fill("#train-form input[name=epochs]", str(EPOCHS))
    page.fill("#train-form input[name=batch_size]", "16")
    page.fill("#train-form input[name=hidden_dims]", "16")
    page.fill("#train-form input[name=latent_dim]", "3")
    page.click("#train-form button[type=submit]")
    page.wait_for_url("**/ui#/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]

    # The loss curve gains points while the job runs.
    seen_while_running: list[int] = []
    deadline = time.monotonic() + 240
    while page.inner_text("#job-state") in ("queued", "running"):
        points = count(page, "#job-loss-chart circle.series-train")
        running = page.inner_text("#job-state") == "running"
        if points and running and (not seen_while_running or points != seen_while_running[-1]):
            seen_while_running.append(points)
            if len(seen_while_running) == 4:
                page.screenshot(path=str(SCREENSHOTS / "console-job.png"))
        assert time.monotonic() < deadline, "the job did not finish in time"
        time.sleep(0.05)
    assert page.inner_text("#job-state") == "succeeded"
    assert len(seen_while_running) >= 2, seen_while_running
    assert seen_while_running == sorted(seen_while_running)
    record = httpx.get(f"{server.base}/jobs/{job_id}", headers=AUTH).json()
    assert count(page, "#job-loss-chart circle.series-train") == len(record["history"])

    # The new version is listed, active.
    page.click("nav >> text=Models")
    row = page.wait_for_selector("tr[data-model='sensors'][data-version='1']")
    assert "active" in row.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "console-models.png"), full_page=True)

    # Its page: loss per epoch and the calibration histogram, from the manifest's numbers.
    page.click("tr[data-model='sensors'][data-version='1'] >> text=v1")
    page.wait_for_selector("#calibration-chart rect.bar", state="attached")  # a bar may be empty
    manifest = httpx.get(f"{server.base}/models/sensors/versions/1", headers=AUTH).json()
    calibration = httpx.get(
        f"{server.base}/models/sensors/versions/1/calibration", headers=AUTH
    ).json()

    history = manifest["training"]["history"]
    drawn = page.eval_on_selector_all(
        "#loss-chart circle[data-series=train]", "ns => ns.map(n => [+n.dataset.x, +n.dataset.y])"
    )
    assert drawn == [[e["epoch"], e["train_loss"]] for e in history]

    bars = page.eval_on_selector_all(
        "#calibration-chart rect.bar",
        "ns => ns.map(n => ({count: +n.dataset.count, lo: +n.dataset.lo, hi: +n.dataset.hi,"
        " x: +n.getAttribute('x'), width: +n.getAttribute('width'), height: +n.getAttribute('height')}))",
    )
    assert [bar["count"] for bar in bars] == calibration["counts"]
    assert sum(bar["count"] for bar in bars) == manifest["calibration"]["n"]
    tallest = max(bars, key=lambda bar: bar["count"])
    for bar in bars:  # heights in proportion to the counts
        assert bar["height"] == pytest.approx(tallest["height"] * bar["count"] / tallest["count"])

    line = page.eval_on_selector(
        "#calibration-chart line.threshold",
        "n => ({value: +n.dataset.value, x: +n.getAttribute('x1')})",
    )
    threshold = manifest["threshold"]
    assert line["value"] == threshold
    holding = next(bar for bar in bars if bar["lo"] <= threshold < bar["hi"])
    assert holding["x"] - 1 <= line["x"] <= holding["x"] + holding["width"] + 1
    layers = page.inner_text(".architecture .layers")
    assert layers == "8 → 16 → 3 → 16 → 8"
    page.screenshot(path=str(SCREENSHOTS / "console-version.png"), full_page=True)

    # Live traffic: normal rows, then shifted ones, scored against `tiny`.
    tiny = server.repository.manifest("tiny", 1)
    normal = sample_vectors(tiny, 600, seed=5)
    shifted = sample_vectors(tiny, 1500, seed=6) + np.asarray(tiny.scaling.scale, dtype=np.float32)
    for rows in (normal, shifted):
        response = httpx.post(f"{server.base}/score", json={"vectors": rows.tolist()}, headers=AUTH)
        assert response.status_code == 200, response.text
    page.click("nav >> text=Live traffic")
    panel = page.wait_for_selector(".traffic[data-model='tiny'] .psi:not(:has-text('–'))")
    assert float(panel.inner_text().split()[0]) > 0.25
    page.wait_for_selector(".traffic[data-model='tiny'] .anomaly-rate circle")
    page.screenshot(path=str(SCREENSHOTS / "console-traffic.png"), full_page=True)
    assert offline.refused == []
