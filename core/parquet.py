"""Whether .parquet data can be read here: pyarrow is the optional `parquet` extra (the `train`
extra includes it; the serve image leaves it out, 170 MiB it would otherwise carry)."""

from __future__ import annotations

import importlib.util

MISSING = (
    "this server cannot read .parquet files (pyarrow is not installed: "
    "pip install 'aeserve[parquet]'); send the rows as .csv, .npy or .npz"
)


def available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None
