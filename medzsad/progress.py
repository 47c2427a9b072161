"""The one progress-bar set-up: a tqdm bar on stderr when asked for (default: on a terminal only).

Every long loop (cohort studies, training steps, evaluation images, downloads) uses
:func:`progress_bar`, so bars look and switch off alike; without a bar the loop gets a
:class:`NullBar` with the same methods, so it never checks for ``None``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Bar", "NullBar", "progress_bar", "bar_enabled"]


class Bar(Protocol):
    """What a loop may do with its bar."""

    def update(self, n: int = 1) -> Any:
        """Advance by ``n``."""
        ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any:
        """Show ``s`` after the bar."""
        ...

    def write(self, s: str, file: Any = None) -> Any:
        """Print a line above the bar."""
        ...


class NullBar:
    """A bar that shows nothing (no terminal, or switched off)."""

    def update(self, n: int = 1) -> None:
        """Do nothing."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Do nothing."""

    def write(self, s: str, file: Any = None) -> None:
        """Do nothing (lines are logged elsewhere)."""


def bar_enabled(enabled: bool | None) -> bool:
    """``None``: a bar only when stderr is a terminal; else as given."""
    return sys.stderr.isatty() if enabled is None else bool(enabled)


@contextlib.contextmanager
def progress_bar(
    total: int | None,
    *,
    enabled: bool | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    unit_scale: bool = False,
    leave: bool = False,
    bar_format: str | None = None,
) -> Iterator[Bar]:
    """A progress bar on stderr, closed on exit (also on an exception).

    Args:
        total: Expected number of units (None when unknown).
        enabled: Show it; ``None``: only when stderr is a terminal.
        desc: Text before the bar.
        unit: Unit name (``study``, ``step``, ``img``, ``B``).
        initial: Units already done (a resumed loop).
        unit_scale: Scale units with SI prefixes (bytes).
        leave: Keep the finished bar on screen.
        bar_format: tqdm's layout of the bar (default tqdm's).

    Yields:
        A tqdm bar, or a :class:`NullBar` when disabled.
    """
    if not bar_enabled(enabled):
        yield NullBar()
        return
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

    bar = tqdm(
        total=total,
        initial=initial,
        desc=desc or None,
        unit=unit,
        unit_scale=unit_scale,
        leave=leave,
        dynamic_ncols=True,
        file=sys.stderr,
        bar_format=bar_format,
    )
    try:
        yield bar
    finally:
        bar.close()
