"""What every `aeserve` command shares: `--version`, defaults in `--help`, one spelling of
`--repository` (the old `--model-repository` still taken, unlisted), and where `serve` points."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from core import __version__
from service.cli import app
from service.cli.options import repository_root
from service.cli.serving import startup_line

COMMAND = typer.main.get_command(app)
assert isinstance(COMMAND, TyperGroup)
NAMES = sorted(COMMAND.commands)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"aeserve {__version__}\n")


@pytest.mark.parametrize("name", NAMES)
def test_every_option_shows_its_default(name: str) -> None:
    missing = [
        option.opts[0]
        for option in COMMAND.commands[name].params
        if isinstance(option, TyperOption)
        and not option.hidden
        and not option.required
        and option.opts[0] != "--help"
        and not isinstance(option.show_default, str)
        and option.default is None
    ]
    assert missing == [], f"aeserve {name}: no default shown for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_one_spelling_of_the_repository(name: str) -> None:
    spellings = {
        opt
        for option in COMMAND.commands[name].params
        if not getattr(option, "hidden", False)
        for opt in option.opts
        if "repository" in opt
    }
    assert spellings <= {"--repository"}


@pytest.mark.parametrize("name", ["serve", "worker"])
def test_the_old_spelling_is_still_taken_but_not_listed(name: str) -> None:
    command = COMMAND.commands[name]
    with command.make_context(name, ["--model-repository", "old"]) as context:
        assert context.params["model_repository"] == "old"
    assert repository_root(None, "old") == str(Path("old").resolve())
    help_text = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}).stdout
    assert "--repository" in help_text
    assert "--model-repository" not in help_text


def test_the_repository_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AESERVE_MODEL_REPOSITORY", "models")
    assert repository_root(None) == str(tmp_path / "models")
    assert repository_root("elsewhere") == str(tmp_path / "elsewhere")
    assert repository_root("s3://bucket/models") == "s3://bucket/models"


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://localhost:8000"),
        ("::1", "http://[::1]:8000"),
    ],
)
def test_serve_says_where_the_docs_are(host: str, base: str) -> None:
    assert startup_line(Path("/srv/models"), host, 8000) == (
        f"aeserve: serving /srv/models on {base} (interactive docs: {base}/docs)"
    )
