"""The README's walkthrough, re-run: every command of the shell blocks marked `<!-- walkthrough`
runs against a real server serving a freshly trained default model (`digits`, as `make run`
trains it), and every output shown after `# →` matches what it prints now.

Training the default model takes minutes of CPU, more than the suite's budget, so the test runs
when asked: AESERVE_WALKTHROUGH=train trains it here; AESERVE_WALKTHROUGH=/path/to/repository
uses a repository where `make default-model` trained it. Otherwise it skips and says so.
Lines with `...` placeholders are shown, not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.service.client.conftest import serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # training takes minutes

REPO = Path(__file__).resolve().parents[2]
AESERVE = Path(sys.executable).with_name("aeserve")
KEY = "walkthrough-key"
MARK = "<!-- walkthrough"


def marked_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks right after a walkthrough mark (its comment may span
    lines)."""
    blocks = []
    for match in re.finditer(re.escape(MARK), text):
        rest = text[match.start() :]
        fence = re.search(r"-->\s*\n```\w*\n(.*?)\n```", rest, flags=re.S)
        assert fence is not None and fence.start() < 400, "a walkthrough mark without a block"
        blocks.append(fence.group(1))
    return blocks


def steps(block: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs: a command's continued lines joined, then the `# →`
    lines after it. Comments and placeholder commands are left out."""
    found: list[tuple[str, str]] = []
    command: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("# →"):
            expected = [line.split("# →", 1)[1].strip()]
            while i + 1 < len(lines) and re.match(r"^#\s{2,}\S", lines[i + 1]):
                i += 1
                expected.append(lines[i][1:].strip())
            if found:
                found[-1] = (found[-1][0], " ".join(expected))
        elif line.strip() and not line.lstrip().startswith("#"):
            command.append(line.rstrip("\\").rstrip())
            if not line.rstrip().endswith("\\"):
                text = " ".join(command)
                command = []
                if "..." not in text and "…" not in text:
                    found.append((text, ""))
        i += 1
    return found


def flatten(value: Any, into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each key of a JSON answer to its first scalar (the first score of `scores`, say)."""
    into = {} if into is None else into
    if isinstance(value, dict):
        for key, item in value.items():
            while isinstance(item, list) and item:
                item = item[0]
            if isinstance(item, dict):
                flatten(item, into)
            else:
                into.setdefault(key, item)
    return into


def check_output(command: str, expected: str, actual: str) -> None:
    if expected.startswith("["):  # a Python value printed
        assert actual.strip() == expected, command
        return
    if expected.startswith("{"):
        shown = dict(re.findall(r'"(\w+)": \[?("[^"]*"|[-\d.e]+|true|false)', expected))
        got = flatten(json.loads(actual))
        for key, text in shown.items():
            assert key in got, f"{command}: no {key!r} in {actual[:300]}"
            if text.startswith('"') or text in ("true", "false"):
                assert json.dumps(got[key]) == text, (command, key, got[key])
            else:  # shown rounded: compare at the digits shown
                digits = len(text.split(".")[1]) if "." in text else 0
                assert round(float(got[key]), digits) == float(text), (command, key, got[key])
        return
    flat = " ".join(actual.split())  # the README wraps what a terminal prints on two lines
    for part in re.split(r"…", expected):  # prose with elided parts
        part = " ".join(part.strip(" /").split())
        if part:
            assert part in flat, (command, part, actual)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    asked = os.environ.get("AESERVE_WALKTHROUGH", "")
    if not asked:
        pytest.skip(
            "the walkthrough needs the default model trained (minutes of CPU): run with "
            "AESERVE_WALKTHROUGH=train, or AESERVE_WALKTHROUGH=<repository with digits>"
        )
    root = tmp_path_factory.mktemp("walkthrough") / "model-repository"
    if asked == "train":
        # The Makefile's default-model target, as `make run` runs it.
        command = [str(AESERVE), "train", "builtin:digits", "--name", "digits", "--loss", "bce"]
        result = subprocess.run(
            [*command, "--promote", "--repository", str(root)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
    else:
        shutil.copytree(Path(asked) / "digits", root / "digits")
    return root


def test_every_walkthrough_command_runs_and_shows_what_the_readme_says(
    repository: Path, tmp_path: Path
) -> None:
    blocks = marked_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 2
    log = tmp_path / "server.log"
    with serve(repository, log, api_key=KEY, default_model="digits") as url:
        port = url.rsplit(":", 1)[1]
        env = {
            **os.environ,
            "AESERVE_API_KEY": KEY,
            "AESERVE_MODEL_REPOSITORY": str(repository),
            "PATH": f"{AESERVE.parent}:{os.environ['PATH']}",
        }
        ran = 0
        for block in blocks:
            for command, expected in steps(block):
                command = command.replace("localhost:8000", f"127.0.0.1:{port}")
                result = subprocess.run(
                    ["bash", "-c", f'KEY="$AESERVE_API_KEY"; {command}'],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert result.returncode == 0, (command, result.stderr)
                if expected:
                    check_output(command, expected, result.stdout + result.stderr)
                ran += 1
        assert ran >= 8


def test_the_walkthrough_parser_reads_the_readme() -> None:
    """Without a model: the marked blocks hold the commands and outputs the test checks."""
    blocks = marked_blocks((REPO / "README.md").read_text())
    pairs = [pair for block in blocks for pair in steps(block)]
    commands = [command for command, _ in pairs]
    assert any(c.startswith("curl -s localhost:8000/score -H") for c in commands)
    assert any(c.startswith("aeserve score rows.npy") for c in commands)
    shown = dict(pairs)
    score = next(c for c in commands if c.startswith("curl -s localhost:8000/score -H"))
    assert '"threshold": 2.6622' in shown[score]
