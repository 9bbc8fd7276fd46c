"""One voice for the failures of the four tools: an exit code of :class:`clikit.exits.Exit`
and, with ``--json``, one JSON shape.

A failure is a :class:`click.ClickException` (a tool's own subclasses of
:class:`ToolFailure` name their :class:`~clikit.exits.Exit`; click's usage errors exit 2).
:class:`ToolGroup`, the top-level group of each tool, shows it:

- always as ``Error: MESSAGE`` on standard error (click's own form, with the usage line
  for a usage error), a sentence that says what to do next;
- when the command line holds ``--json``, also as one line on standard output (clig.dev:
  a script parses standard output, a person reads standard error)::

      {"error": {"code": "unreachable", "message": "...", "exit": 7}}

  ``code`` is the exit code's name (:attr:`clikit.exits.Exit.code_name`).

Any other exception is a failure of the tool itself: exit 1 (``internal``) with its type
and where it was raised, never a traceback (nor its message, which might hold what a
message must not) unless ``TAPSTACK_DEBUG=1`` asks for it. ``--help`` of the group ends
with the table of exit codes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import click

from clikit.exits import Exit, rows

__all__ = [
    "DEBUG_ENV",
    "ToolFailure",
    "ToolGroup",
    "error_document",
    "listen_exit",
    "show_error",
    "wants_json",
]

#: Set to 1 to let an unexpected exception through with its traceback.
DEBUG_ENV: Final = "TAPSTACK_DEBUG"
#: Where the group keeps whether the command line asked for JSON (``ctx.meta``).
_JSON_KEY: Final = "clikit.json"


class ToolFailure(click.ClickException):
    """A failure with the exit code of its class (:attr:`exit_code`, an
    :class:`~clikit.exits.Exit`); :meth:`of` makes one for any code.

    A command whose ``--json`` document holds the failure already (its result with an
    ``"error"`` member: :func:`error_document`) sets :attr:`in_document`, so that no
    second JSON document follows it on standard output."""

    exit_code: ClassVar[int] = Exit.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.in_document = False

    @staticmethod
    def of(message: str, code: Exit) -> ToolFailure:
        """A failure with exit code ``code`` (an instance of a class per code)."""
        kind = _BY_EXIT.get(code)
        if kind is None:
            name = "".join(part.title() for part in code.code_name.split("_")) + "Failure"
            kind = _BY_EXIT[code] = type(name, (ToolFailure,), {"exit_code": code})
        return kind(message)


_BY_EXIT: dict[Exit, type[ToolFailure]] = {Exit.INTERNAL: ToolFailure}


def _exit_of(exc: click.ClickException) -> Exit:
    try:
        return Exit(exc.exit_code)
    except ValueError:
        return Exit.INTERNAL


def error_document(exc: click.ClickException) -> dict[str, Any]:
    """The JSON form of a failure (module docstring)."""
    code = _exit_of(exc)
    return {"error": {"code": code.code_name, "message": exc.format_message(), "exit": int(code)}}


def show_error(exc: click.ClickException, as_json: bool) -> None:
    """Show ``exc`` as the module docstring says: on standard error, and with
    ``as_json`` also as one JSON line on standard output."""
    exc.show()
    if as_json and not getattr(exc, "in_document", False):
        import json  # only when a failure is shown as JSON

        click.echo(json.dumps(error_document(exc)))


def listen_exit(errno: int | None) -> Exit:
    """The exit code of a server that cannot listen on its address, by the socket
    error's number: in use (conflict), not allowed (refused), else a bad address
    (usage)."""
    import errno as codes

    return {codes.EADDRINUSE: Exit.CONFLICT, codes.EACCES: Exit.REFUSED}.get(errno or 0, Exit.USAGE)


def wants_json(args: Sequence[str]) -> bool:
    """Whether a command line asks for JSON (``--json`` before any ``--``)."""
    words = list(args)
    if "--" in words:
        words = words[: words.index("--")]
    return "--json" in words


def _internal(exc: Exception) -> ToolFailure:
    """The failure shown for an unexpected exception: its type and the place it was
    raised (a file of the tools and its line), never its message."""
    import traceback  # only when a tool fails this way

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return ToolFailure(
        f"internal error ({type(exc).__name__}{where}): a fault of the tool, not of what you "
        f"asked; please report it with the command that caused it ({DEBUG_ENV}=1 shows the "
        "traceback)"
    )


class ToolGroup(click.Group):
    """The top-level group of a tool: its failures shown in one voice (module
    docstring), and the exit codes at the end of its ``--help``.

    A tool turns its own exceptions into failures in :meth:`translate`."""

    def translate(self, ctx: click.Context, exc: Exception) -> click.ClickException | None:
        """The failure for an exception that is not a :class:`click.ClickException`,
        or ``None`` for an unexpected one (exit 1). A subclass maps its errors."""
        return None

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            show_error(exc, as_json)
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        ctx.meta[_JSON_KEY] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except click.ClickException as exc:
            failure = exc
        except Exception as exc:
            translated = self.translate(ctx, exc)
            if translated is None and os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            failure = translated if translated is not None else _internal(exc)
        show_error(failure, bool(ctx.meta.get(_JSON_KEY)))
        raise click.exceptions.Exit(int(failure.exit_code))

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's epilog, then its exit codes (:mod:`clikit.exits`)."""
        super().format_epilog(ctx, formatter)
        with formatter.section("Exit codes (with --json, failures also as JSON on stdout)"):
            formatter.write_dl(rows())
