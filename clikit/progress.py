"""Progress of long work (over a second) on standard error, as clig.dev asks: shown
only when standard error is a terminal (no animation in a pipe or a log), never on
standard output, where the data go.

:func:`stage_progress` gives a callable ``(stage, done, total)`` for work reported in
stages (the back office's engine pass); :func:`progress` wraps an iterable of known
length (``issuer card provision --count N``). Both draw click's progress bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

__all__ = ["progress", "stage_progress"]

T = TypeVar("T")


def _tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(items: Iterable[T], length: int, label: str) -> Iterator[Iterable[T]]:
    """``items`` (``length`` of them) with a progress bar labelled ``label`` on
    standard error when it is a terminal; ``items`` themselves otherwise."""
    if not _tty() or length < 2:
        yield items
        return
    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield bar


def stage_progress() -> Callable[[str, int, int], None]:
    """A ``(stage, done, total)`` callable drawing one progress bar per stage on
    standard error when it is a terminal (a stage of fewer than two items draws
    nothing); a no-op otherwise."""
    if not _tty():
        return lambda stage, done, total: None
    state: dict[str, Any] = {"stage": None, "bar": None, "done": 0}

    def finish() -> None:
        bar = state["bar"]
        if bar is not None:
            bar.render_finish()
        state.update(stage=None, bar=None, done=0)

    def report(stage: str, done: int, total: int) -> None:
        if stage != state["stage"]:
            finish()
            if total < 2:
                return
            state["stage"] = stage
            state["bar"] = click.progressbar(length=total, label=stage, file=sys.stderr)
            state["bar"].render_progress()
        bar = state["bar"]
        if bar is None:
            return
        bar.update(done - state["done"])
        state["done"] = done
        if done >= total:
            finish()

    return report
