"""pyarrow is optional (the `parquet` extra): without it, .parquet data gets a message naming the
extra, and an upload a 415, never an ImportError. "Without it" is an import system that finds no
pyarrow, as in the serve image, where tests/deploy/test_containers.py checks the same for real."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core import parquet
from core.data import DataError, load_array
from core.datasets import DatasetStore
from core.errors import UnsupportedMediaType
from core.settings import Settings
from service.http.app import create_app

KEY = "parquet-test-key"


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": [0.5, 1.5], "b": [1.0, 2.0]}), buffer)
    return buffer.getvalue()


@pytest.fixture
def without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    assert not parquet.available()


def test_pyarrow_is_found_where_installed() -> None:
    assert parquet.available()


@pytest.mark.usefixtures("without_pyarrow")
def test_loading_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    path.write_bytes(parquet_bytes())
    with pytest.raises(DataError) as caught:
        load_array(path)
    assert str(caught.value) == f"{path}: {parquet.MISSING}"
    assert "pip install 'aeserve[parquet]'" in str(caught.value)


@pytest.mark.usefixtures("without_pyarrow")
def test_storing_parquet_without_pyarrow_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaType):
        DatasetStore(tmp_path).add_file(io.BytesIO(parquet_bytes()), "rows.parquet")
    csv = DatasetStore(tmp_path).add_file(io.BytesIO(b"1,2\n3,4\n"), "rows.csv")
    assert (csv.rows, csv.dim) == (2, 2)


@pytest.mark.usefixtures("without_pyarrow")
def test_a_parquet_upload_without_pyarrow_gets_415(tmp_path: Path) -> None:
    settings = Settings(model_repository=tmp_path / "repository", api_key=KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            "/datasets",
            files={"file": ("rows.parquet", parquet_bytes())},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 415
    assert response.json() == {"detail": f"file 'rows.parquet': {parquet.MISSING}"}
