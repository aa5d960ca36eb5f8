"""`make bench-quality` without its data says where the data goes, rather than an empty table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import quality


def test_missing_data_is_named_with_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AESERVE_ADBENCH_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        quality.main(["--seeds", "1", "--output", str(tmp_path / "quality.md")])
    message = str(exit_.value.code)
    assert message.startswith(f"bench.quality: no ADBench data (.npz files) in {tmp_path}.")
    assert "AESERVE_ADBENCH_DIR=tests/data/adbench" in message
    assert not (tmp_path / "quality.md").exists()
