"""``progress(done, total)`` callbacks drawn as tqdm bars, for the command-line front doors.

Long work in LINOP reports progress through a plain callback so that the CLI and the GUI share the same
code; this is the CLI side.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

Progress = Callable[[int, int], None]


def tqdm_progress(
    *,
    enabled: bool = True,
    unit: str = "it",
    desc: str | None = None,
    scale: float = 1.0,
    position: int = 0,
    leave: bool = True,
    bar_format: str | None = None,
) -> Progress | None:
    """A ``progress(done, total)`` that draws a tqdm bar on stderr (None when not ``enabled``).

    The bar is created on the first call, when the total is known; ``scale`` converts counts for display
    (e.g. images to kimg with 1/1000). It closes itself when ``done`` reaches ``total``.
    """
    if not enabled:
        return None
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def shown(count: int) -> float:
        return count if scale == 1.0 else count * scale  # whole counts stay whole on the bar

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=shown(total), unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                                      position=position, leave=leave, bar_format=bar_format)  # fmt: skip
        bar.n = shown(done)
        bar.refresh()
        if done >= total:
            bar.close()

    return progress
