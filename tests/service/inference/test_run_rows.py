"""A request larger than `max_run_rows` runs as consecutive onnxruntime calls: the same outputs,
and memory bounded by the piece, not the request (the scoring graph's neighbour distances take
4 bytes per row and reference point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.manifest import Manifest
from core.repository import ModelRepository
from service.inference.loading import load_runtime
from service.inference.options import RuntimeOptions
from tests.tiny_model import reference_outputs, sample_vectors

ROWS = 8192
"""The default `max_batch`: the largest request a client may send."""

PEAK = """
import json, sys
import numpy as np
from pathlib import Path
from service.inference.loading import load_runtime
from service.inference.options import RuntimeOptions

runtime = load_runtime(Path(sys.argv[1]), RuntimeOptions(max_run_rows=int(sys.argv[2])))
x = np.random.default_rng(1).normal(size=(ROWS, runtime.input_dim)).astype(np.float32)
key = ("autoencoder", ("scores",))


def peak_kb():  # VmHWM: ru_maxrss would carry the forking parent's peak across exec
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])

runtime._run_batch(key, x[:10])
before = peak_kb()
(scores,) = runtime._run_batch(key, x)
print(json.dumps({"grown_mb": (peak_kb() - before) / 1024, "rows": len(scores)}))
""".replace("ROWS", str(ROWS))


def test_pieces_give_the_outputs_of_one_call(
    repository: ModelRepository, tiny_model: Manifest
) -> None:
    folder = repository.verify("tiny", tiny_model.version)
    runtime = load_runtime(folder, RuntimeOptions(max_run_rows=3))
    x = sample_vectors(tiny_model, 10)
    names = ("codes", "reconstructions", "scores", "feature_errors")
    outputs = runtime._run_batch(("autoencoder", names), x)
    expected = reference_outputs(tiny_model, x)
    for name, actual in zip(names, outputs, strict=True):
        assert actual.shape[0] == 10
        np.testing.assert_allclose(actual, expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def manifold_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained version with the default (manifold) score and its 4,000 reference rows."""
    from core.config import TrainConfig
    from models.export import export_model
    from models.training import fit

    X = np.random.default_rng(0).normal(size=(20_000, 8)).astype(np.float32)
    result = fit(X, TrainConfig(epochs=1, device="cpu"))
    assert result.latent is not None and len(result.latent.reference) == 4000
    repository = ModelRepository(tmp_path_factory.mktemp("repository"))
    with repository.staging() as staging:
        export_model(result, staging)
        version = repository.publish("manifold", staging)
    return repository.verify("manifold", version)


def grown_mb(folder: Path, max_run_rows: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(folder), str(max_run_rows)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["rows"] == ROWS
    return float(answer["grown_mb"])


@pytest.mark.slow
def test_the_largest_request_stays_within_a_piece_of_memory(manifold_model: Path) -> None:
    whole = grown_mb(manifold_model, ROWS)  # one call, as before `max_run_rows`
    pieces = grown_mb(manifold_model, RuntimeOptions().max_run_rows)
    # One [8,192, 4,000] float32 matrix ranks the references: 125 MB (measured 127-132 MB;
    # 251 MB before the ranking became one fused product).
    assert whole > 110, whole
    assert pieces < 80, (pieces, whole)  # measured 34 MB
