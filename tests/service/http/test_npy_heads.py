"""`.npy` heads are parsed once per distinct head: the cached reading gives each body its own
data, and numpy's verdicts on a head stay the same however often it is sent."""

from __future__ import annotations

import io

import numpy as np
import pytest

from core.errors import BadRequest
from service.http.encoding import decode_npy
from tests.crafted_npy import CRAFTED


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_bodies_with_the_same_head_decode_to_their_own_rows(version: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for _ in range(3):
        rows = rng.random((5, 4), dtype=np.float32)
        out = io.BytesIO()
        header = np.lib.format.header_data_from_array_1_0(rows)
        if version == (2, 0):
            np.lib.format.write_array_header_2_0(out, header)
        else:
            np.lib.format.write_array_header_1_0(out, header)
        body = out.getvalue() + rows.tobytes()
        np.testing.assert_array_equal(decode_npy(body), rows)
    fortran = np.asfortranarray(rng.random((3, 2)))
    np.testing.assert_array_equal(decode_npy(_npy(fortran)), fortran)


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_head_is_refused_every_time(case: str) -> None:
    for _ in range(2):
        with pytest.raises(BadRequest):
            decode_npy(CRAFTED[case])
