"""docs/architecture.md names only modules and folders that exist, and covers every layer."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = (REPO_ROOT / "docs" / "architecture.md").read_text()
PACKAGES = ("core", "models", "service")


def _quoted() -> list[str]:
    return re.findall(r"`([^`\s]+)`", DOC)


def test_every_path_it_names_exists() -> None:
    paths = [q for q in _quoted() if q.split("/")[0] in PACKAGES and "/" in q]
    assert len(paths) > 40
    missing = [p for p in paths if not (REPO_ROOT / p).exists()]
    assert missing == []


def test_every_dotted_module_it_names_exists() -> None:
    modules = [q for q in _quoted() if re.fullmatch(r"(core|models|service)(\.\w+)+", q)]
    assert modules
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    assert missing == []


def test_every_layer_folder_is_described() -> None:
    folders = [
        path.relative_to(REPO_ROOT).as_posix()
        for package in PACKAGES
        for path in (REPO_ROOT / package).iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    ]
    assert folders
    undescribed = [folder for folder in folders if f"`{folder}/" not in DOC]
    assert undescribed == []
