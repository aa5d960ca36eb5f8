from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from core import rules
from core.errors import InvalidInput
from core.rules import RuleViolation

ROOT = Path(__file__).resolve().parents[2]
LABEL = rules.model_label("cardio", 2)

# Each rule's message, as it would be written in an f-string: the template itself and any
# hand-made copy of it (other names, other interpolations) match.
TEMPLATES = {
    "row width": r"has \{[^{}]*\}(?: values?)?; (?:(?:row |line )?(?:\d+|\{[^{}]*\}))(?: expects| has)? \{",
    "row is a list": r"is not a list of numbers",
    "two-dimensional": r"expected a 2-D array",
    "batch size": r"batch has \{[^{}]*\} rows; the limit is",
    "empty batch": r"batch is empty",
    "finiteness": r"must be finite numbers",
    "float32 range": r"beyond the float32 range",
    "minimum rows": r"training needs at least",
    "input dimension": r"features;[^\"\n]*\bexpects\b",
    "validation split": r"leaves \{[^{}]*\} validation and",
    "both sides of the split": r"both need at least one",
    "BCE range": r"loss 'bce' needs inputs in \[0, 1\] after scaling",
}


# Adjacent string literals across lines ("... leaves "\n f"{n} validation ...") read as one.
_CONTINUATION = re.compile(r"\"\s*\n\s*f?\"")


def _sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): _CONTINUATION.sub("", path.read_text())
        for top in ("core", "service", "models")
        for path in sorted((ROOT / top).rglob("*.py"))
    }


@pytest.mark.parametrize("rule", TEMPLATES)
def test_each_message_is_written_once_in_core_rules(rule: str) -> None:
    pattern = re.compile(TEMPLATES[rule])
    found = [
        f"{path}: {match.group(0)}"
        for path, text in _sources().items()
        for match in pattern.finditer(text)
    ]
    assert len(found) == 1, found
    assert found[0].startswith("core/rules.py: ")


def message(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(RuleViolation) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_a_violation_is_a_422_and_a_value_error() -> None:
    error = RuleViolation("x")
    assert isinstance(error, InvalidInput) and isinstance(error, ValueError)
    assert error.status_code == 422
    assert error.message == "x"


def test_row_widths() -> None:
    np.testing.assert_array_equal(rules.row_widths([[1, 2], [3], []]), [2, 1, 0])
    assert message(rules.row_widths, [[1.0], 7.0]) == "row 1 is not a list of numbers"
    widths = [21, 21, 21, 12]
    rules.check_row_widths(widths[:3], 21, LABEL)
    assert message(rules.check_row_widths, widths, 21, LABEL) == (
        "row 3 has 12 values; model 'cardio' v2 expects 21"
    )
    assert message(rules.check_row_widths, [1], 2, LABEL, what=" (its latent dimension)") == (
        "row 0 has 1 value; model 'cardio' v2 expects 2 (its latent dimension)"
    )
    # Training data without a model is as wide as its first row.
    assert message(rules.check_row_widths, [6, 6, 3], 6, where="data.vectors") == (
        "data.vectors: row 2 has 3 values; row 0 has 6"
    )
    error = rules.row_width_error("line 3", 2, 3, first_row="line 1", where="a.csv")
    assert str(error) == "a.csv: line 3 has 2 values; line 1 has 3"


def test_two_dimensional() -> None:
    rules.check_two_dimensional((3, 4), 4)
    assert message(rules.check_two_dimensional, (2, 2, 4), 4) == (
        "expected a 2-D array of shape (n, 4); got shape (2, 2, 4)"
    )
    assert message(rules.check_two_dimensional, (4,), where="x.npy") == (
        "x.npy: expected a 2-D array of shape (n, features); got shape (4,)"
    )


def test_batch_size() -> None:
    rules.check_batch_size(1, 16)
    rules.check_batch_size(16, 16)
    assert message(rules.check_batch_size, 0, 16) == "batch is empty"
    assert message(rules.check_batch_size, 17, 16) == "batch has 17 rows; the limit is 16"


def test_as_numbers() -> None:
    ints = np.arange(4).reshape(2, 2)
    assert rules.as_numbers(ints) is ints
    objects = np.array([[1, None]], dtype=object)
    converted = rules.as_numbers(objects)
    assert converted.dtype == np.float64 and np.isnan(converted[0, 1])
    assert message(rules.as_numbers, np.array([[1, "x"]], dtype=object)) == (
        "values must be finite numbers"
    )
    assert message(rules.as_numbers, np.array([["a"]]), where="x.npy") == (
        "x.npy: values must be finite numbers; got <U1 data"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (np.nan, "NaN"),
        (np.inf, "inf"),
        (-np.inf, "-inf"),
        (1e39, "1e+39, beyond the float32 range"),
    ],
)
def test_finite_names_row_column_and_value(value: float, shown: str) -> None:
    sent = np.zeros((3, 4))
    sent[2, 1] = value
    sent[2, 3] = np.nan  # a later bad cell is not the one named
    with np.errstate(over="ignore"):
        array = sent.astype(np.float32)
    assert message(rules.check_finite, array, sent) == (
        f"row 2, column 1 is {shown}; values must be finite numbers"
    )


def test_finite_accepts_finite_values_whose_sum_overflows() -> None:
    big = np.full((2, 2), np.finfo(np.float32).max, dtype=np.float32)
    rules.check_finite(big)


def test_finite_names_cells_as_the_caller_counts_them() -> None:
    array = np.array([[1.0, np.nan]], dtype=np.float32)
    located = message(
        rules.check_finite, array, cell=lambda i, j: f"line {i + 2}, column {j + 1}", where="a"
    )
    assert located == "a: line 2, column 2 is NaN; values must be finite numbers"
    assert str(rules.bad_value_error("row 0, column 0", "x")) == (
        "row 0, column 0 is 'x'; values must be finite numbers"
    )


def test_minimum_rows() -> None:
    rules.check_min_rows(rules.MIN_ROWS)
    assert message(rules.check_min_rows, 9) == "data has 9 rows; training needs at least 10"


def test_input_dimension() -> None:
    rules.check_input_dim(21, 21, LABEL)
    assert message(rules.check_input_dim, 12, 21, LABEL) == (
        "data has 12 features; model 'cardio' v2 expects 21"
    )


@pytest.mark.parametrize(
    ("rows", "fraction", "n_val"), [(10, 0.1, 1), (20, 0.2, 4), (10, 0.9, 9), (2, 0.5, 1)]
)
def test_validation_split_leaves_rows_on_both_sides(rows: int, fraction: float, n_val: int) -> None:
    assert rules.check_validation_split(rows, fraction) == n_val


@pytest.mark.parametrize(
    ("rows", "fraction", "n_val"), [(20, 0.01, 0), (10, 0.99, 10), (1, 0.5, 0)]
)
def test_validation_split_that_empties_a_side(rows: int, fraction: float, n_val: int) -> None:
    assert message(rules.check_validation_split, rows, fraction, where="config") == (
        f"config: validation_fraction {fraction} of {rows} rows leaves {n_val} validation and "
        f"{rows - n_val} training rows; both need at least one"
    )


def test_bce_range() -> None:
    tolerance = rules.BCE_RANGE_TOLERANCE / 2
    rules.check_bce_range([-tolerance, 0.0], [1.0 + tolerance, 0.5], "minmax")
    assert message(rules.check_bce_range, [0.0, -2.1], [1.0, 5.0], "none", where="config") == (
        "config: loss 'bce' needs inputs in [0, 1] after scaling; with scaling 'none' column 1 "
        "ranges -2.1..5: use scaling 'minmax' or loss 'mse'"
    )
    assert message(rules.check_bce_range, [-1.0, -2.0], [0.5, 0.5], "standard") == (
        "loss 'bce' needs inputs in [0, 1] after scaling; with scaling 'standard' column 0 "
        "ranges -1..0.5 (2 columns in all): use scaling 'minmax' or loss 'mse'"
    )
