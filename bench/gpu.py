"""GPU: onnxruntime's CUDA provider, plain and with IO binding, vs its CPU provider and PyTorch.

    python -m bench.gpu VERSION_FOLDER [--seconds S]

VERSION_FOLDER is an exported model version (autoencoder.onnx and autoencoder.pt, as
`aeserve train` writes them; `make bench` leaves one at bench/.work/repository/mnist784/1). Each
way scores the same float32 rows in this process, no HTTP, and fetches the scores only, the n
floats a /score needs; rows start on the host and scores end there, as in a server:

- onnxruntime, CPU provider: `session.run` on NumPy arrays, every core;
- onnxruntime, CUDA provider: `session.run` on NumPy arrays;
- onnxruntime, CUDA provider with IO binding: the input bound from the host, the scores bound on
  the device and copied back alone;
- PyTorch, CUDA: the TorchScript export on the device with the manifest's scaling and loss around
  it, rows copied up and scores down.

The table goes into bench/results/serving.md, between the markers that `make bench` keeps when
it rewrites the file, with the GPU named. Without a CUDA provider this script stops before
writing: onnxruntime-gpu must shadow the CPU build (../shared/gpu/ONNXRUNTIME_GPU.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.report import GPU_END, GPU_START, RESULTS, replace_gpu_section

BATCHES = (1, 64, 1024, 16384)


def vectors_per_s(call: Callable[[], object], rows: int, seconds: float) -> float:
    """Rows scored per second by repeating `call`, after a warm-up; the best of three rounds."""
    for _ in range(3):
        call()
    best = 0.0
    for _ in range(3):
        runs = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / 3:
            call()
            runs += 1
        best = max(best, runs * rows / elapsed)
    return best


def ort_session(path: Path, provider: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=[provider])


def ort_plain(session: ort.InferenceSession, x: np.ndarray) -> Callable[[], object]:
    return lambda: session.run(["scores"], {"x": x})


def ort_io_binding(session: ort.InferenceSession, x: np.ndarray) -> Callable[[], object]:
    binding = session.io_binding()

    def call() -> object:
        binding.bind_cpu_input("x", x)
        binding.bind_output("scores", "cuda")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return call


def torch_cuda(folder: Path, x: np.ndarray) -> Callable[[], object]:
    """The TorchScript export (the bare network, on scaled rows) with the manifest's scaling and
    loss around it, as autoencoder.onnx computes its scores."""
    import torch

    # Plain JSON, not core.manifest.read_manifest: the device image has PyTorch and onnxruntime
    # but not aeserve's dependencies (pydantic); these keys are core/manifest.py's.
    manifest = json.loads((folder / "manifest.json").read_text())
    scaling = manifest["scaling"]
    offset = torch.tensor(scaling["offset"], dtype=torch.float32, device="cuda")
    scale = torch.tensor(scaling["scale"], dtype=torch.float32, device="cuda")
    module = torch.jit.load(str(folder / "autoencoder.pt"), map_location="cuda").eval()
    host = torch.from_numpy(x).pin_memory()

    def call() -> object:
        with torch.inference_mode():
            s = (host.to("cuda", non_blocking=True) - offset) / scale
            if scaling["clip"]:
                s = s.clamp(0.0, 1.0)
            s_hat = module(s)
            if manifest["loss"] == "bce":
                p = s_hat.clamp(1e-7, 1 - 1e-7)
                errors = -(s * p.log() + (1 - s) * (1 - p).log())
            else:
                errors = (s - s_hat) ** 2
            return errors.mean(dim=1).cpu()

    return call


def gpu_name() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        import torch

        return torch.cuda.get_device_name(0)


def measure(folder: Path, seconds: float) -> dict[str, dict[int, float]]:
    rng = np.random.default_rng(0)
    onnx = folder / "autoencoder.onnx"
    cpu = ort_session(onnx, "CPUExecutionProvider")
    cuda = ort_session(onnx, "CUDAExecutionProvider")
    dim = cpu.get_inputs()[0].shape[1]
    table: dict[str, dict[int, float]] = {}
    for n in BATCHES:
        x = rng.random((n, dim), dtype=np.float32)
        ways = {
            "onnxruntime, CPU provider": ort_plain(cpu, x),
            "onnxruntime, CUDA provider": ort_plain(cuda, x),
            "onnxruntime, CUDA provider, IO binding": ort_io_binding(cuda, x),
            "PyTorch, CUDA (TorchScript export)": torch_cuda(folder, x),
        }
        expected = np.asarray(cpu.run(["scores"], {"x": x})[0]).reshape(-1)
        for label, call in ways.items():
            got = np.asarray(call()).reshape(-1)
            np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5, err_msg=label)
            table.setdefault(label, {})[n] = vectors_per_s(call, n, seconds)
            print(f"{label}, batch {n}: {table[label][n]:,.0f} vectors/s", flush=True)
    return table


def section(table: dict[str, dict[int, float]], device: str, folder: Path, seconds: float) -> str:
    base = table["onnxruntime, CPU provider"]
    lines = [
        GPU_START,
        "## GPU",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- GPU: {device}; onnxruntime {ort.__version__}",
        f"- command: `python -m bench.gpu {folder} --seconds {seconds:g}`",
        "- in-process, no HTTP; rows start on the host and the scores end there; every way's "
        "scores are checked against the CPU provider's first.",
        "",
        "| way | " + " | ".join(f"batch {n}" for n in BATCHES) + " |",
        "|---|" + "---:|" * len(BATCHES),
    ]
    for label, speeds in table.items():
        cells = [f"{speeds[n]:,.0f} ({speeds[n] / base[n]:.2f}×)" for n in BATCHES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Vectors/s; in brackets, the ratio to the CPU provider.", GPU_END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an exported model version folder")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # the CUDA libraries that came with PyTorch's nvidia-* packages
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit(
            "onnxruntime has no CUDA provider here "
            f"({', '.join(ort.get_available_providers())}); see ../shared/gpu/ONNXRUNTIME_GPU.md"
        )
    table = measure(args.folder, args.seconds)
    text = section(table, gpu_name(), args.folder, args.seconds)
    RESULTS.write_text(replace_gpu_section(RESULTS.read_text() if RESULTS.exists() else "", text))
    print(text)


if __name__ == "__main__":
    main()
