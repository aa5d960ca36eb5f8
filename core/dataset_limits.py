"""How large an uploaded dataset may be once decoded, judged from what its file declares (a .npy
header, a zip member's size, parquet metadata, a count of .csv lines) before anything that large
is allocated: a 2 MB .npz of zeros decompresses to gigabytes."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import PayloadTooLarge

DEFAULT_MAX_ROWS = 5_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
CSV_VALUE_BYTES = 8
"""A .csv or .parquet value decodes to a float64 before it is stored as float32."""


class DatasetTooLarge(PayloadTooLarge):
    """An upload that decodes to more rows or bytes than the server takes (413)."""


@dataclass(frozen=True)
class DatasetLimits:
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES

    def check_rows(self, rows: int, where: str) -> None:
        if rows > self.max_rows:
            raise DatasetTooLarge(
                f"{where}: holds {rows:,} rows; an upload may hold at most {self.max_rows:,} "
                "(AESERVE_MAX_DATASET_ROWS)"
            )

    def check(self, rows: int, decoded_bytes: int, where: str) -> None:
        """Refuse data of `rows` rows that decodes to `decoded_bytes` bytes."""
        self.check_rows(rows, where)
        if decoded_bytes > self.max_bytes:
            raise DatasetTooLarge(
                f"{where}: decodes to {decoded_bytes:,} bytes; an upload may decode to at most "
                f"{self.max_bytes:,} (AESERVE_MAX_DATASET_BYTES)"
            )
