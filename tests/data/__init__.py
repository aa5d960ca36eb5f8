"""Where the test data lives: tests/data/README.md says what each file is and where it is from."""

from pathlib import Path

DATA = Path(__file__).parent
ADBENCH = DATA / "adbench"
SCHEMAS = DATA / "schemas"
