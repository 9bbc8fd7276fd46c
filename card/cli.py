"""The ``card`` command: a click group (``card --help``)."""

from __future__ import annotations

import click

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tapstack")
def cli() -> None:
    """tapstack card: EMV contactless cards in software."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="card")
