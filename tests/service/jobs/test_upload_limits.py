"""POST /datasets beyond the upload limits: 413 naming the limit, judged from the file's header,
zip member, parquet metadata or line count before its data is decoded; nothing stored."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from service.http.app import create_app
from tests.crafted_npy import zeros_npz_bomb
from tests.real_server import serve
from tests.service.jobs.helpers import API_KEY, AUTH

MAX_ROWS = 1000
MAX_BYTES = 64 * 1024
BOMB_ROWS, BOMB_COLUMNS = 12_000_000, 21
"""The issue's upload: a 1.96 MB .npz of zeros that decompresses to 2 GB of float64."""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        model_repository=tmp_path_factory.mktemp("limits"),
        api_key=API_KEY,
        max_dataset_rows=MAX_ROWS,
        max_dataset_bytes=MAX_BYTES,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=array)
    return buffer.getvalue()


def parquet(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    table = pa.table({f"x{j}": array[:, j] for j in range(array.shape[1])})
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def csv(array: np.ndarray) -> bytes:
    return "\n".join(",".join(f"{v:g}" for v in row) for row in array).encode()


ROWS_MESSAGE = (
    f"holds 1,001 rows; an upload may hold at most {MAX_ROWS:,} (AESERVE_MAX_DATASET_ROWS)"
)


@pytest.mark.parametrize(
    ("suffix", "encode", "message"),
    [
        (".npy", npy, ROWS_MESSAGE),
        (".npz", npz, ROWS_MESSAGE),
        (".parquet", parquet, ROWS_MESSAGE),
        (".csv", csv, ROWS_MESSAGE),
    ],
)
def test_too_many_rows_is_a_413(
    client: TestClient, suffix: str, encode: Callable[[np.ndarray], bytes], message: str
) -> None:
    content = encode(np.zeros((MAX_ROWS + 1, 2)))
    response = client.post("/datasets", files={"file": (f"rows{suffix}", content)}, headers=AUTH)
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": f"rows{suffix}: {message}"}
    assert client.get("/datasets", headers=AUTH).json() == []


@pytest.mark.parametrize(
    ("suffix", "encode", "decoded"),
    [
        (".npy", npy, 100 * 90 * 8),
        (".npz", npz, 100 * 90 * 8),
        (".parquet", parquet, 100 * 90 * 8),
        (".csv", csv, 100 * 90 * 8),
    ],
)
def test_too_many_decoded_bytes_is_a_413(
    client: TestClient, suffix: str, encode: Callable[[np.ndarray], bytes], decoded: int
) -> None:
    content = encode(np.zeros((100, 90)))  # a few kB compressed, 72,000 bytes decoded
    response = client.post("/datasets", files={"file": (f"wide{suffix}", content)}, headers=AUTH)
    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": f"wide{suffix}: decodes to {decoded:,} bytes; an upload may decode to at most "
        f"{MAX_BYTES:,} (AESERVE_MAX_DATASET_BYTES)"
    }


def test_within_the_limits_is_stored(client: TestClient) -> None:
    content = npz(np.arange(MAX_ROWS * 2, dtype=np.float64).reshape(MAX_ROWS, 2))
    response = client.post("/datasets", files={"file": ("ok.npz", content)}, headers=AUTH)
    assert response.status_code == 201, response.text
    assert (response.json()["rows"], response.json()["dim"]) == (MAX_ROWS, 2)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    content = zeros_npz_bomb(BOMB_ROWS, BOMB_COLUMNS)
    assert len(content) < 2_000_000
    return content


@pytest.mark.slow
def test_the_npz_bomb_is_a_413_and_the_server_stays_small(bomb: bytes, tmp_path: Path) -> None:
    """The issue's upload took the API from 123 MB to 3.3 GB and stored 1 GB; with the default
    limits it is refused from the member's header, the server's peak RSS staying under 300 MB."""
    import httpx

    root = tmp_path / "repository"
    with serve(root, tmp_path / "serve.log", api_key=API_KEY) as served:
        files = {"file": ("bomb.npz", bomb)}
        response = httpx.post(f"{served.base}/datasets", files=files, headers=AUTH, timeout=60)
        peak = served.peak_rss_bytes()
    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": f"bomb.npz: holds {BOMB_ROWS:,} rows; an upload may hold at most 5,000,000 "
        "(AESERVE_MAX_DATASET_ROWS)"
    }
    assert peak < 300 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"
    assert not list((root / ".datasets").glob("*.npy"))
