"""What the issuer's CLI tests share (tests/issuer/test_cli*.py): a home driven
through click's runner that keeps every output (:class:`Issuer`), and every command
of a group (:func:`all_commands`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner, Result

from issuer.cli import cli

#: The key store passphrase of the CLI tests' homes.
PASS = "cli passphrase"


@dataclass
class Issuer:
    """A home and a runner that remembers everything printed."""

    home: Path
    runner: CliRunner
    outputs: list[str] = field(default_factory=list)

    def run(
        self, *args: str, code: int = 0, input: str | None = None, env: dict[str, Any] | None = None
    ) -> Result:
        result = self.runner.invoke(
            cli, ["--home", str(self.home), *args], input=input, env=env, catch_exceptions=False
        )
        self.outputs.append(result.stdout + result.stderr)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


def cli_runner() -> CliRunner:
    """A runner whose environment names no home, database or other passphrase."""
    return CliRunner(
        env={"TAPSTACK_KEYSTORE_KEY": PASS, "TAPSTACK_DB": None, "TAPSTACK_ISSUER_HOME": None}
    )


def all_commands(group: click.Group, prefix: Sequence[str] = ()) -> Iterator[list[str]]:
    """Every command under ``group``, through click's own listing (the issuer's
    commands are imported when asked for: issuer.cli.LAZY_COMMANDS)."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        yield [*prefix, name]
        if isinstance(command, click.Group):
            yield from all_commands(command, [*prefix, name])
