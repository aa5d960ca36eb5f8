"""What the serving benchmark needs before it measures: models, request bodies, peer venvs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
VENVS = ROOT / "bench" / ".venvs"
CARDIO = ROOT / "tests" / "data" / "adbench" / "6_cardio.npz"
"""ADBench's cardio, kept in the repository for the tests (tests/data/README.md)."""

# Each peer in its own venv, so none of them can change what aeserve or another peer runs on.
PEERS = {
    "litserve": ["litserve", "onnxruntime", "numpy"],
    "bentoml": ["bentoml", "onnxruntime", "numpy"],
    "pytriton": ["nvidia-pytriton", "onnxruntime", "numpy"],
    "rayserve": ["ray[serve]", "onnxruntime", "numpy"],
}


@dataclass(frozen=True)
class BenchModel:
    name: str
    dim: int
    onnx: Path  # the version's autoencoder graph, which every server loads
    data: np.ndarray  # float32 rows the request bodies are cut from
    train_command: str


def _base_python(peer: str) -> str:
    # Triton's Python backend stub embeds the system's libpython; a venv of another build of the
    # same minor version gives it a standard library that does not match (RLock errors at load).
    system = Path("/usr/bin/python3")
    return str(system) if peer == "pytriton" and system.is_file() else sys.executable


def peer_python(peer: str) -> Path | str:
    """The peer venv's python, created on first use; an error message if it cannot be made."""
    venv = VENVS / peer
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.is_file():
        return python
    try:
        subprocess.run(
            [_base_python(peer), "-m", "venv", str(venv)], check=True, capture_output=True
        )
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, capture_output=True, text=True)
        subprocess.run([*pip, *PEERS[peer]], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        return f"pip install {' '.join(PEERS[peer])} failed: {(exc.stderr or '')[-600:]}"
    stamp.touch()
    return python


def mnist_like(n: int, seed: int = 0) -> np.ndarray:
    """784-wide rows shaped like MNIST digits: mostly 0, the rest multiples of 1/255."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 784)).astype(np.float32) / 255
    x[rng.random((n, 784)) < 0.8] = 0.0
    return x


def train(name: str, data: np.ndarray, flags: list[str], repository: Path) -> BenchModel:
    """Train and publish with the real `aeserve train`, once; later runs reuse the version."""
    active = repository / name / "active"
    path = WORK / f"{name}.npy"
    # As the results show it: relative to the repository, run from its root.
    command = ["aeserve", "train", str(path.relative_to(ROOT)), "--name", name, "--promote", *flags]
    if not active.exists():
        np.save(path, data)
        env = {**os.environ, "AESERVE_MODEL_REPOSITORY": str(repository)}
        aeserve = str(Path(sys.executable).parent / "aeserve")
        subprocess.run([aeserve, *command[1:]], check=True, env=env, capture_output=True, cwd=ROOT)
    version = active.read_text().strip()
    manifest = read_manifest(repository / name / version)
    return BenchModel(
        name=name,
        dim=manifest.input_dim,
        onnx=repository / name / version / "autoencoder.onnx",
        data=data,
        train_command=" ".join(command),
    )


def models(repository: Path) -> list[BenchModel]:
    WORK.mkdir(parents=True, exist_ok=True)
    digits = train(
        "mnist784",
        mnist_like(6000),
        ["--hidden-dims", "256", "--latent-dim", "32", "--epochs", "3"],
        repository,
    )
    cardio = np.load(CARDIO)["X"].astype(np.float32)
    return [digits, train("cardio", cardio, ["--epochs", "20"], repository)]


@dataclass(frozen=True)
class Bodies:
    """Request bodies of `rows` rows, as files wrk reads."""

    json: Path  # {"vectors": [[…]]}, as aeserve, the naive server and most peers take it
    npy: Path  # the same rows as a .npy body
    v2: Path  # the KServe v2 request Triton takes
    rows: np.ndarray


def bodies(model: BenchModel, rows: int) -> Bodies:
    x = model.data[np.random.default_rng(rows).integers(0, len(model.data), rows)]
    stem = WORK / f"{model.name}-{rows}"
    stem.with_suffix(".json").write_text(json.dumps({"vectors": x.tolist()}))
    out = io.BytesIO()
    np.save(out, x)
    stem.with_suffix(".npy").write_bytes(out.getvalue())
    v2 = {
        "inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    v2_path = stem.parent / f"{stem.name}.v2.json"
    v2_path.write_text(json.dumps(v2))
    return Bodies(stem.with_suffix(".json"), stem.with_suffix(".npy"), v2_path, x)
