"""The images install and start aeserve exactly as the Makefile and the tests do.

The pip requirements (torch pin, project extras) and the `aeserve …` command lines of the
Dockerfile and docker-compose.yml are compared with the Makefile's and pyproject.toml's, and every
command line is parsed by the real CLI, so a green test suite means the images would start.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from packaging.requirements import Requirement

from service.cli import app
from tests.deploy.parsing import (
    REPO_ROOT,
    Dockerfile,
    compose_default,
    make_commands,
    make_variables,
)

PROJECT_INSTALLS = {
    "serve-deps": set(),
    "serve-build": set(),
    "worker-deps": {"train"},
    "worker-build": {"train"},
    "worker-gpu-deps": {"train"},
    "worker-gpu-build": {"train"},
    "serve-gpu-deps": {"gpu"},
    "serve-gpu-build": {"gpu"},
}


def _pip_installs(dockerfile: Dockerfile, stage: str) -> list[list[str]]:
    return [c[2:] for c in dockerfile.commands(stage) if c[:2] == ["pip", "install"]]


def _project_extras(requirement: str, root: str) -> set[str] | None:
    """`{"train"}` for `/src[train]` (root `/src`) or `.[train]` (root `.`); None otherwise."""
    match = re.fullmatch(re.escape(root) + r"(?:\[([\w,]+)\])?", requirement)
    if match is None:
        return None
    return set(match.group(1).split(",")) if match.group(1) else set()


def test_makefile_installs_pinned_torch_then_the_project() -> None:
    """What the comparisons below take as the reference; fails loudly if the Makefile moves."""
    makefile = REPO_ROOT / "Makefile"
    assert make_variables(makefile)["TORCH"] == "torch==2.13.0"
    installs = [c[2:] for c in make_commands(makefile, "pip") if c[:2] == ["pip", "install"]]
    assert ["--quiet", "torch==2.13.0"] in installs
    assert ["--quiet", "-e", ".[train,dev]"] in installs


@pytest.mark.parametrize(
    ("stage", "index"),
    [
        ("worker-deps", "https://download.pytorch.org/whl/cpu"),
        ("worker-gpu-deps", "https://download.pytorch.org/whl/cu130"),
    ],
)
def test_torch_pin_is_the_makefiles_and_pyprojects(
    dockerfile: Dockerfile, pyproject: dict[str, Any], stage: str, index: str
) -> None:
    pin = make_variables(REPO_ROOT / "Makefile")["TORCH"]
    assert pin in pyproject["project"]["optional-dependencies"]["train"]
    torch_lines = [
        words for words in _pip_installs(dockerfile, stage) if words[0].startswith("torch")
    ]
    assert torch_lines == [[pin, "--index-url", index]]


@pytest.mark.parametrize(("stage", "extras"), PROJECT_INSTALLS.items())
def test_project_install_uses_the_makefiles_extras(
    dockerfile: Dockerfile, pyproject: dict[str, Any], stage: str, extras: set[str]
) -> None:
    """Each stage installs the project from its source folder with the extras the tests install
    (`train`, never `dev`), or `gpu` in place of the CPU onnxruntime."""
    root = "/src"
    assert dockerfile.stages["base"].all("WORKDIR")[-1].value == root
    found = [
        _project_extras(word, root)
        for words in _pip_installs(dockerfile, stage)
        for word in words
        if _project_extras(word, root) is not None
    ]
    assert found == [extras]
    make_install = next(
        c for c in make_commands(REPO_ROOT / "Makefile", "pip") if c[-1].startswith(".[")
    )
    tested = _project_extras(make_install[-1], ".")
    assert tested is not None
    assert extras - {"gpu"} <= tested - {"dev"}
    assert extras <= set(pyproject["project"]["optional-dependencies"])


def test_gpu_extra_is_onnxruntime_gpu(pyproject: dict[str, Any]) -> None:
    gpu = [Requirement(r).name for r in pyproject["project"]["optional-dependencies"]["gpu"]]
    assert gpu == ["onnxruntime-gpu"]


def test_default_model_is_trained_as_make_default_model_does(
    services: dict[str, dict[str, Any]],
) -> None:
    """The first-run service trains what `make default-model` trains, only into an empty
    repository (`--if-empty`), at `docker compose up` rather than at `docker build`."""
    (make_train,) = [
        c for c in make_commands(REPO_ROOT / "Makefile", "aeserve") if c[:2] == ["aeserve", "train"]
    ]
    assert services["default-model"]["command"] == [*make_train, "--if-empty"]


def test_console_script_is_the_typer_app(pyproject: dict[str, Any]) -> None:
    assert pyproject["project"]["scripts"] == {"aeserve": "service.cli:app"}


def _parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse an `aeserve …` command line with the real CLI, running nothing."""
    program, name, *rest = argv
    assert program == "aeserve"
    commands = typer.main.get_command(app).commands
    assert name in commands, f"`aeserve {name}` is not a command; there are {sorted(commands)}"
    with commands[name].make_context(name, rest) as context:
        return name, dict(context.params)


def _image_and_compose_commands(
    dockerfile: Dockerfile, services: dict[str, dict[str, Any]]
) -> dict[str, list[str]]:
    commands = {
        f"Dockerfile {target} CMD": dockerfile.last(target, "CMD").exec_form()
        for target in ["serve", "worker", "serve-gpu", "worker-gpu"]
    }
    for name, service in services.items():
        if "command" in service and "build" in service:
            commands[f"compose {name}"] = [compose_default(word) for word in service["command"]]
    return commands


def test_every_command_line_parses(
    dockerfile: Dockerfile, services: dict[str, dict[str, Any]]
) -> None:
    commands = _image_and_compose_commands(dockerfile, services)
    assert set(commands) == {
        "Dockerfile serve CMD",
        "Dockerfile worker CMD",
        "Dockerfile serve-gpu CMD",
        "Dockerfile worker-gpu CMD",
        "compose api",
        "compose worker",
        "compose default-model",
        "compose api-gpu",
        "compose worker-gpu",
    }
    parsed = {where: _parse(argv) for where, argv in commands.items()}
    assert parsed["compose api"] == (
        "serve",
        {**parsed["compose api"][1], "host": "0.0.0.0", "port": 8000, "workers": 1},
    )
    assert parsed["compose worker"][0] == "worker"
    name, params = parsed["compose default-model"]
    assert (name, params["data"], params["name"], params["loss"], params["promote"]) == (
        "train",
        "builtin:digits",
        "digits",
        "bce",
        True,
    )
    assert params["if_empty"] is True
