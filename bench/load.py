"""Load generation with wrk: one thread, a Lua script POSTing a fixed body, a JSON summary back."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# wrk's `done` hook writes the numbers we need as one JSON line (latencies in microseconds).
_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
{accept}
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests":%d,"duration_us":%d,"errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    """One measured workload: `rows` vectors per request, `connections` clients at once."""

    requests_per_s: float
    vectors_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    command: str


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package when it is missing (the bench runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    return found


def write_script(
    folder: Path, name: str, body: Path, content_type: str, accept: str | None = None
) -> Path:
    accept_line = f'wrk.headers["Accept"] = "{accept}"' if accept else ""
    script = folder / f"{name}.lua"
    script.write_text(
        _LUA.format(content_type=content_type, accept=accept_line, body=body.resolve())
    )
    return script


def run_wrk(
    url: str, script: Path, rows: int, connections: int, seconds: float, timeout_s: int = 10
) -> Load:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((s for s in done.stdout.splitlines() if s.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {done.stdout[-500:]} {done.stderr[-500:]}")
    result = json.loads(line.removeprefix("RESULT "))
    seconds_run = result["duration_us"] / 1e6
    ok = result["requests"] - result["non_2xx"]
    return Load(
        requests_per_s=ok / seconds_run,
        vectors_per_s=ok * rows / seconds_run,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=result["errors"] + result["non_2xx"],
        command=" ".join([*command[:-3], script.name, url]),
    )
