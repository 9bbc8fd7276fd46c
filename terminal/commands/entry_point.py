"""``terminal entry-point``: one EMV Book B entry point transaction, recorded; or a
conformance case (``--case``).

The way EMVCo tests an entry point: a configuration (combinations with their Book B
§3.1.1 parameters, per transaction type), a card (a scripted card profile of
:mod:`card.scripted`, or any card profile, or a reader), a transaction, and what comes
out: the SELECT sequence with its status words, every kernel activation with its
parameters (pre-processing indicators, TTQ copy, FCI, start point, online response
data), the outcome with its parameter set, the user interface requests with their
value qualifier, the field's state and the restarts, all in the order they happened
(:class:`~terminal.kernel.recording.EntryPointRecord`).

``--case FILE`` runs a conformance case (:mod:`terminal.kernel.conformance`: the
configuration, the scripted card and one or more transactions with the record each
must give) and checks every record against the expected one. ``--autorun`` starts at
B without pre-processing (Book B §3.2.1.1) and, without ``--amount``, runs the
configuration's Autorun transaction (Book B §3.1).

Kernels: ``--kernels test`` (the default) registers a :class:`~terminal.kernel.
conformance.TestKernel` for every kernel id of the configuration, which records its
activation and returns the outcome the card scripts; ``--kernels builtin`` keeps kernel
2 and kernel 3 and adds test kernels for the other ids.

Exit codes (``terminal --help``): 0 for approved or online request (``--case``: every
record as expected), 2 a bad option, 4 a case whose records differ from the expected
ones, 5 declined, 8 no card within ``--timeout`` or any other outcome, 9 a reader or
card profile that cannot be used, 10 a bad configuration or case file; the record is
printed first (``--json``: with the failure as its ``error`` member).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from clikit.errors import ToolFailure, error_document
from clikit.exits import Exit
from terminal.commands.common import (
    ConfigFailure,
    NoCardEvent,
    ReaderFailure,
    load_terminal_config,
    not_completed,
    optional_transaction_options,
    reader_failure,
    transaction_from_options,
)
from terminal.kernel.config import ConfigError, TerminalConfig, parse_config
from terminal.kernel.conformance import ConformanceCase, load_case, run_case, scripted_registry
from terminal.kernel.entry_point import EntryPoint, autorun_transaction
from terminal.kernel.outcome import Outcome, Start
from terminal.kernel.recording import EntryPointRecord
from terminal.kernel.registry import KernelRegistry, default_registry
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers import NoCardError, Reader, ReaderError, open_reader

__all__ = ["entry_point_command", "render"]

#: Environment variables for the options a test bench sets once.
CONFIG_ENV = "TAPSTACK_ENTRY_POINT_CONFIG"
CARD_ENV = "TAPSTACK_ENTRY_POINT_CARD"


def _step_line(step: dict[str, Any]) -> str:
    """One step of the record's sequence as text."""
    if "select" in step:
        return f"  SELECT {step['select']}{' (next)' if step.get('next') else ''} -> {step['sw']}"
    if "command" in step:
        return f"  {step['command']} -> {step['sw'] or 'no answer'}"
    if "field" in step:
        if step["field"] == "off":
            hold = step["hold_time_ms"]
            return "  field off" + (f" (hold {hold} ms)" if hold is not None else "")
        off = step["off_ms"]
        return "  field on" + (f" (after {off:g} ms off)" if off is not None else "")
    if "ui" in step:
        extra = ""
        if step["value"] is not None:
            extra = f", {step['value_qualifier']} {step['value']} {step['currency']}"
        lang = f", language {step['language']}" if step["language"] else ""
        hold = f", hold {step['hold_time_ms']} ms" if step["hold_time_ms"] else ""
        return f"  UI {step['ui']} {step['text']!r} ({step['status']}{hold}{lang}{extra})"
    details = ", ".join(f"{k} {v}" for k, v in step.items() if k != "event")
    return f"  event: {step['event']}{' (' + details + ')' if details else ''}"


def render(record: EntryPointRecord) -> str:
    """The record as text for a person: what happened in order (SELECTs and other
    commands, UI requests, events, the field), the activations and the outcome."""
    data = record.to_json()
    lines = [f"start {data['start']}, {data['restarts']} restarts"]
    lines += [_step_line(step) for step in data["sequence"]]
    for act in data["activations"]:
        ind = act["indicators"]
        flags = [k for k, v in ind.items() if v is True]
        lines.append(
            f"  activated {act['kernel']} for {act['aid']} (start {act['start']}"
            f"{', restart' if act['restart'] else ''}), TTQ {ind['ttq'] or '-'}"
            f"{', ' + ', '.join(flags) if flags else ''}"
            f"{', online response ' + act['online_response'] if act['online_response'] else ''}"
        )
    outcome = data["outcome"] or {}
    lines.append(f"OUTCOME {str(outcome.get('outcome', 'none')).upper()}")
    for reason in data["reasons"]:
        lines.append(f"  reason {reason}")
    if outcome:
        lines.append(f"  DF8129 {outcome['df8129']}")
    return "\n".join(lines)


def _registry(config: TerminalConfig, kernels: str) -> KernelRegistry:
    """Test kernels for every kernel id of ``config``, over kernels 2 and 3 for
    ``builtin``."""
    ids = sorted({c.kernel_id for c in config.combinations})
    return scripted_registry(ids, base=default_registry() if kernels == "builtin" else None)


@contextmanager
def _reader(path: str) -> Iterator[Reader]:
    """The reader at ``path`` (``emulated:PROFILE`` for a card profile), closed after."""
    try:
        reader = open_reader(path)
    except ReaderError as exc:
        raise ReaderFailure(
            f"{exc}; check --card or --reader (`terminal readers` lists the readers)"
        ) from exc
    try:
        yield reader
    except NoCardError as exc:
        raise NoCardEvent(f"{path}: {exc}: present a card, or wait longer with --timeout") from exc
    except ReaderError as exc:
        raise reader_failure(path, exc) from exc
    finally:
        reader.close()


def _emit(data: dict[str, Any], text: str, failure: ToolFailure | None, as_json: bool) -> None:
    """Print the result (``--json``: with the failure as its ``error`` member), then
    raise the failure."""
    if as_json:
        if failure is not None:
            data["error"] = error_document(failure)["error"]
            failure.in_document = True
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(text)
    if failure is not None:
        raise failure


def _load_case(path: str) -> tuple[ConformanceCase, TerminalConfig]:
    """The case of ``--case`` and its configuration; :class:`ConfigFailure` naming the
    problem (exit 10)."""
    try:
        case = load_case(path)
        return case, parse_config(dict(case.config), base=case.base)
    except OSError as exc:
        raise ConfigFailure(f"cannot read the case {path}: {exc.strerror}") from None
    except ConfigError as exc:
        raise ConfigFailure(f"the configuration of the case {path}: {exc}") from None
    except ValueError as exc:  # each names the file
        raise ConfigFailure(f"the case cannot be used: {exc}") from None


def _run_case(path: str, reader_path: str | None, kernels: str, as_json: bool) -> None:
    """``--case``: every transaction of the case on its scripted card (or the card on
    ``reader_path``), each record checked against the expected one."""
    case, config = _load_case(path)
    entry = EntryPoint(config, _registry(config, kernels))
    with tempfile.TemporaryDirectory(prefix="tapstack-case-") as folder:
        target = reader_path
        if target is None:  # the emulated reader takes the scripted card as a file
            card_file = Path(folder) / "card.json"
            card_file.write_text(json.dumps(case.card))
            target = f"emulated:{card_file}"
        with _reader(target) as reader:
            try:
                results = run_case(case, config, reader, entry.process)
            except ConfigError as exc:
                raise ConfigFailure(f"the case {path} cannot be used: {exc}") from None
    failed = sum(1 for _, found in results if found)
    data: dict[str, Any] = {
        "case": case.name,
        "passed": not failed,
        "transactions": [
            {"record": record.to_json(), "mismatches": found} for record, found in results
        ],
    }
    lines = [f"case {case.name}"]
    for number, (record, found) in enumerate(results, 1):
        lines.append(f"transaction {number} of {len(results)}")
        lines.append(render(record))
        lines += [f"  MISMATCH {line}" for line in found] or ["  as expected"]
    failure = None
    if failed:
        failure = ToolFailure.of(
            f"{case.name}: {failed} of {len(results)} transactions differ from the expected"
            " record (the MISMATCH lines say where)",
            Exit.CONFLICT,
        )
    _emit(data, "\n".join(lines), failure, as_json)


def _transaction(
    config: TerminalConfig,
    autorun: bool,
    amount: str | None,
    other_amount: str,
    currency: str | None,
    txn_type: str,
) -> Transaction:
    """The transaction of the options; ``--autorun`` without ``--amount``: the
    configured Autorun transaction (Book B §3.1)."""
    if amount is None:
        configured = autorun_transaction(config) if autorun else None
        if configured is None:
            why = "the configuration has no autorun transaction" if autorun else "give it"
            raise click.UsageError(f"--amount is needed: {why} (or run a --case FILE)")
        return configured
    return transaction_from_options(config, amount, other_amount, currency, txn_type)[0]


@click.command("entry-point", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar=CONFIG_ENV, metavar="FILE",
              help=f"Terminal configuration (JSON); default built-in (${CONFIG_ENV}).")  # fmt: skip
@click.option("--card", "card_path", envvar=CARD_ENV, metavar="PROFILE",
              help=f"Card profile (scripted or EMV), emulated reader (${CARD_ENV}).")  # fmt: skip
@click.option("--reader", "reader_path", metavar="PATH",
              help="A reader path instead of --card (pcsc:0, nfc:udp:...).")  # fmt: skip
@click.option("--case", "case_path", metavar="FILE",
              help="Run a conformance case (its configuration, scripted card and "
                   "transactions) and check each record; --reader to use a reader "
                   "holding the card instead.")  # fmt: skip
@optional_transaction_options
@click.option("--autorun", is_flag=True,
              help="Start at B without pre-processing (Book B §3.2.1.1); without "
                   "--amount, the configuration's autorun transaction (Book B §3.1).")  # fmt: skip
@click.option(
    "--kernels",
    type=click.Choice(["test", "builtin"]),
    default="test",
    show_default=True,
    help="test: a test kernel per kernel id; builtin: kernels 2 and 3, test kernels else.",
)
@click.option("--online-response", metavar="HEX",
              help="Online response data (91/71/72 TLV) given at a restart after an online "
                   "request; without, an online request ends the transaction.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S", help="Wait S s at most.")
@click.option("--json", "as_json", is_flag=True, help="The record as one JSON document.")
def entry_point_command(
    config_path: str | None,
    card_path: str | None,
    reader_path: str | None,
    case_path: str | None,
    amount: str | None,
    other_amount: str,
    currency: str | None,
    txn_type: str,
    autorun: bool,
    kernels: str,
    online_response: str | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Run one entry point transaction (EMV Book B) and print its record.

    With --case FILE, run a conformance case (a configuration, a scripted card and
    one or more transactions) and check each record against the expected one.

    The record: what happened in order (SELECTs with status words, UI requests with
    their value qualifier, the field on and off, events), kernel activations with
    their parameters, outcome parameters and restarts. Exit code 0 for approved or
    online request, 5 declined, 8 any other outcome; with --case 0 when every record
    is as expected, 4 when one differs.
    """
    if case_path is not None:
        own = {"--config": config_path, "--card": card_path, "--amount": amount,
               "--online-response": online_response, "--autorun": autorun}  # fmt: skip
        given = [name for name, value in own.items() if value]
        if given:
            raise click.UsageError(
                "--case brings its own configuration, card and transactions: drop "
                + ", ".join(given)
            )
        _run_case(case_path, reader_path, kernels, as_json)
        return
    if (card_path is None) == (reader_path is None):
        raise click.UsageError("give exactly one of --card PROFILE and --reader PATH")
    config = load_terminal_config(config_path)
    transaction = _transaction(config, autorun, amount, other_amount, currency, txn_type)
    try:
        response = bytes.fromhex(online_response) if online_response is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc

    def online(_result: TransactionResult) -> bytes | None:
        return response

    entry = EntryPoint(config, _registry(config, kernels))
    with _reader(reader_path if reader_path is not None else f"emulated:{card_path}") as reader:
        record = entry.process(
            reader,
            transaction,
            start=Start.B if autorun else Start.A,
            online=online,
            timeout=timeout,
        )
    data: dict[str, Any] = record.to_json()
    final = record.outcome.outcome if record.outcome is not None else Outcome.NA
    failure = None
    if final not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        failure = not_completed(final.label, data["reasons"], declined=final is Outcome.DECLINED)
    _emit(data, render(record), failure, as_json)
