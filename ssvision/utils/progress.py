"""Progress bars for the long tools (prepare, split, infer, export)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar('T')


def progress(items: Iterable[T], description: str, total: int | None = None,
             enable: bool | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar on the terminal.

    The bar (rich, an mmengine dependency) is drawn only when stderr is a terminal:
    logs and CI output stay clean. ``enable`` forces it on or off.
    """
    if enable is None:
        enable = sys.stderr.isatty()
    if not enable:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track
    if total is None and hasattr(items, '__len__'):
        total = len(items)  # type: ignore[arg-type]
    yield from track(items, description=description, total=total,
                     console=Console(stderr=True), transient=False)


@contextlib.contextmanager
def status(description: str, enable: bool | None = None) -> Iterator[None]:
    """A spinner for a step without a count (reading a folder of images, a big json),
    drawn only when stderr is a terminal."""
    if enable is None:
        enable = sys.stderr.isatty()
    if not enable:
        yield
        return
    from rich.console import Console
    with Console(stderr=True).status(description):
        yield
