"""What each command imports when it starts: only what it needs.

Each check runs a fresh interpreter (the modules already imported by this test session
would hide a regression) that runs a command or imports the module behind it, then
lists ``sys.modules``. Nothing here is timed: the times are in BENCHMARKS.md
("Start-up", bench/bench_startup.py); what is guarded is the set of modules, which is
what made a start slow (cryptography's key serialisation and X.509, the terminal's
recording and tracing, the issuer's composition root, the card's EMV application, the
back office's engine and HTTP server).
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

import issuer.cli
import terminal.cli

#: Loaded by no start-up that does not sign, load or issue keys and certificates.
CRYPTO_SERIALISATION = (
    "cryptography.hazmat.primitives.serialization",
    "cryptography.x509",
)
#: A terminal command's diagnostics, loaded only with --trace or by the commands that
#: record (entry-point): not by `terminal read` or `pay`.
TERMINAL_EXTRAS = (
    "terminal.kernel.recording",
    "terminal.readers.trace",
    "hostlink",
)


def _loaded(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def _command(program: str, *args: str) -> set[str]:
    """The modules loaded by ``program args`` (its console script's ``main``)."""
    code = (
        f"import sys\nsys.argv = [{program!r}, *{list(args)!r}]\n"
        f"from {program}.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    return _loaded(code)


def _any_of(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_terminal_help_imports_no_command() -> None:
    modules = _command("terminal", "--help")
    assert _any_of(modules, ("terminal.commands", "terminal.kernel", "emvwire")) == []


@pytest.mark.parametrize("command", ["read", "pay"])
def test_terminal_read_and_pay_import_no_key_serialisation_nor_diagnostics(
    command: str,
) -> None:
    modules = _command("terminal", command, "--help")
    assert "terminal.commands.tap" in modules
    assert _any_of(modules, CRYPTO_SERIALISATION + TERMINAL_EXTRAS) == []


def test_terminal_read_loads_its_reading_without_the_transaction_machinery() -> None:
    """What ``terminal read`` runs (its command module and the card reading) loads
    neither the entry point's sequencer and recording, nor the tracing reader, the
    host link or key serialisation."""
    modules = _loaded("import terminal.commands.tap, terminal.kernel.reading")
    assert (
        _any_of(
            modules,
            (
                *CRYPTO_SERIALISATION,
                *TERMINAL_EXTRAS,
                "terminal.kernel.entry_point.sequencer",
                "emvwire.contract",
            ),
        )
        == []
    )


def test_terminal_read_loads_no_ca_keys_digests_logging_nor_pathlib() -> None:
    """A card reading authenticates nothing: its configuration comes without the CA keys
    (no ``emvwire.oda``), and the reading, the PC/SC driver and the configuration load
    no digest (``hashlib``: OpenSSL), no ``secrets`` (``os.urandom`` for the
    unpredictable number), no ``logging`` (the drivers' loggers are made at their first
    message) and no ``pathlib`` (with ``urllib.parse`` and ``ipaddress``); of the
    kernel's transaction, the request alone."""
    modules = _loaded(
        "import terminal.commands.tap, terminal.kernel.reading, terminal.readers.pcsc\n"
        "from terminal.commands.common import load_terminal_config\n"
        "load_terminal_config(None, ca_keys=False)"
    )
    assert "terminal.readers.pcsc" in modules
    unwanted = ("emvwire.oda", "hashlib", "hmac", "secrets", "logging", "pathlib", "urllib")
    assert _any_of(modules, unwanted) == []
    # the request alone (terminal.kernel.request), not the results and outcomes
    assert _any_of(modules, ("terminal.kernel.transaction", "terminal.kernel.outcome")) == []


def test_issuer_help_imports_neither_the_composition_root_nor_a_command() -> None:
    modules = _command("issuer", "--help")
    assert (
        _any_of(modules, ("issuer.bootstrap", "issuer.commands.setup", "issuer.service", "psycopg"))
        == []
    )
    assert _any_of(modules, CRYPTO_SERIALISATION) == []


def test_issuer_command_help_imports_its_command_only() -> None:
    modules = _command("issuer", "account", "--help")
    assert "issuer.commands.accounts" in modules
    assert _any_of(modules, ("issuer.bootstrap", "issuer.commands.setup")) == []


def test_card_help_imports_no_emv_application() -> None:
    modules = _command("card", "--help")
    assert _any_of(modules, ("card.emv", "card.application", "emvwire.crypto")) == []
    assert _any_of(modules, CRYPTO_SERIALISATION) == []


def test_backoffice_help_imports_neither_the_engine_nor_the_server() -> None:
    modules = _command("backoffice", "--help")
    assert (
        _any_of(
            modules,
            (
                "backoffice.engine",
                "backoffice.service",
                "hostlink",
                "httpserve",
                "uvicorn",
                "starlette",
            ),
        )
        == []
    )


@pytest.mark.parametrize(
    ("group", "lazy"),
    [(terminal.cli.cli, terminal.cli.LAZY_COMMANDS), (issuer.cli.cli, issuer.cli.LAZY_COMMANDS)],
    ids=["terminal", "issuer"],
)
def test_the_listed_short_help_is_each_commands_own(
    group: click.Group, lazy: dict[str, tuple[str, str]]
) -> None:
    """``--help`` lists the short help kept beside each lazy command: it must be the
    one the command itself would show (its ``short_help`` or first docstring sentence)."""
    context = click.Context(group)
    for name, (_, short) in lazy.items():
        command = group.get_command(context, name)
        assert command is not None
        assert command.name == name
        assert command.get_short_help_str(limit=1000) == short, name
