"""What the commands print, through rich, which is imported on first use: `aeserve serve` runs the
API process in the command's own process, and prints nothing through rich."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def console() -> Console:
    """Standard output. Soft wrap: messages stay on one line, so they can be grepped and copied
    whole."""
    from rich.console import Console

    return Console(soft_wrap=True)


@functools.cache
def error_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def escape(text: str) -> str:
    """`text` printed as it is, its square brackets not taken for markup."""
    from rich.markup import escape

    return escape(text)
