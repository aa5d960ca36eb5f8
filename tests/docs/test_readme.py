"""The README's examples agree with each other and with the command line as it is."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
PAGES = {p.name: p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")]}


def test_key_is_the_raw_key_in_every_example() -> None:
    """`$KEY` is defined one way and always sent as a bearer token, so examples combine."""
    assignments = re.findall(r"^KEY=(.*?)\s*(?:#.*)?$", README, flags=re.M)
    assert assignments and set(assignments) == {'"$AESERVE_API_KEY"'}
    uses = re.findall(r"(.{0,30})\$KEY\b", README)
    assert uses and all(use.endswith("Bearer ") for use in uses), uses


def test_the_command_and_its_options_are_where_the_readme_says() -> None:
    assert ".venv/bin/aeserve" in README
    assert "aeserve --version" in README
    for name, text in PAGES.items():
        # Only named as the old spelling that is still accepted, never in a command line.
        for match in re.finditer("--model-repository", text):
            assert "old" in text[match.start() - 40 : match.start()], f"{name}: {match.start()}"


def test_promotion_is_documented_off_by_default() -> None:
    assert "**`promote` is off by default**" in README
    assert "first version" in PAGES["api.md"] and '"promote": false' in PAGES["api.md"]
