"""Time to ready of `aeserve serve` with one model: a folder repository against an s3://
repository on a local S3 API server (moto's, on loopback), with an empty cache (the process
downloads and checks the version) and with the cache a previous start left.

    python -m bench.cold_start [--starts 5]

Writes bench/results/cold_start.md. The S3 server runs on the same machine, so the figures hold
the store's request costs, not a network's latency.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "cold_start"
RESULTS = ROOT / "bench" / "results" / "cold_start.md"
BIN = Path(sys.executable).parent
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, method: str = "GET") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5):
                return time.monotonic() - started
        except Exception:  # not up yet
            time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def time_to_ready(env: dict[str, str], log: Path) -> float:
    port = free_port()
    argv = [str(BIN / "aeserve"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, cwd=WORK, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"aeserve serve exited: {log.read_text()[-2000:]}")
            try:
                url = f"http://127.0.0.1:{port}/readyz"
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except Exception:  # not up yet
                pass
            assert time.monotonic() - started < 120, log.read_text()[-2000:]
            time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=30)


def train(env: dict[str, str], rows: Path) -> None:
    command = [str(BIN / "aeserve"), "train", str(rows), "--name", "sensors", "--promote"]
    command += ["--epochs", "3", "--hidden-dims", "64,16", "--latent-dim", "4", "--seed", "0"]
    subprocess.run(command, env=env, cwd=WORK, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    rows = WORK / "rows.npy"
    np.save(rows, np.random.default_rng(0).normal(size=(2048, 32)).astype(np.float32))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AESERVE_", "AWS_"))}
    base["AESERVE_DEFAULT_MODEL"] = "sensors"

    moto_port = free_port()
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        wait_http(f"{endpoint}/moto-api/", 30)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        wait_http(f"{endpoint}/{bucket}", 10, method="PUT")
        folder_env = {**base, "AESERVE_MODEL_REPOSITORY": str(WORK / "repository")}
        store_env = {
            **base,
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "AESERVE_MODEL_REPOSITORY": f"s3://{bucket}/models",
        }
        train(folder_env, rows)
        train({**store_env, "AESERVE_CACHE_DIR": str(WORK / "train-cache")}, rows)

        times: dict[str, list[float]] = {"folder": [], "s3, empty cache": [], "s3, warm cache": []}
        log = WORK / "serve.log"
        warm = WORK / "warm-cache"
        for start in range(args.starts):  # alternating, so load from elsewhere hits all alike
            times["folder"].append(time_to_ready(folder_env, log))
            cold = WORK / f"cold-cache-{start}"
            times["s3, empty cache"].append(
                time_to_ready({**store_env, "AESERVE_CACHE_DIR": str(cold)}, log)
            )
            times["s3, warm cache"].append(
                time_to_ready({**store_env, "AESERVE_CACHE_DIR": str(warm)}, log)
            )
    finally:
        moto.terminate()
        moto.wait(timeout=10)

    lines = [
        "# Cold start: time to ready on a folder and on an S3 repository",
        "",
        f"`python -m bench.cold_start --starts {args.starts}`: `aeserve serve` with one model "
        "(32 features, hidden 64-16, latent 4), from process start to the first 200 on "
        "/readyz; the starts alternate. The S3 server is moto's, on loopback. The 'warm cache' "
        "start finds the version a previous start downloaded (the first of them downloads it).",
        "",
        f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| repository | median (s) | min (s) | max (s) |",
        "|---|---:|---:|---:|",
    ]
    for label, values in times.items():
        lines.append(
            f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
