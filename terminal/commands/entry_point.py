"""``terminal entry-point``: one EMV Book B entry point transaction, recorded.

The way EMVCo tests an entry point: a configuration (combinations with their Book B
§3.1.1 parameters), a card (a scripted card profile of :mod:`card.scripted`, or any card
profile, or a reader), a transaction, and what comes out: the SELECT sequence with its
status words, every kernel activation with its parameters (pre-processing indicators,
TTQ copy, FCI, start point, online response data), the outcome with its parameter set,
the user interface requests and the restarts (:class:`~terminal.kernel.recording.
EntryPointRecord`).

Kernels: ``--kernels test`` (the default) registers a :class:`~terminal.kernel.
test_kernel.TestKernel` for every kernel id of the configuration, which records its
activation and returns the outcome the card scripts; ``--kernels builtin`` keeps kernel
2 and kernel 3 and adds test kernels for the other ids.

Exit codes (``terminal --help``): 0 for approved or online request, 2 a bad option, 5
declined, 8 no card within ``--timeout`` or any other outcome, 9 a reader or card
profile that cannot be used, 10 a bad configuration; the record is printed first
(``--json``: with the failure as its ``error`` member).
"""

from __future__ import annotations

import json
from typing import Any

import click

from clikit.errors import error_document
from terminal.commands.common import (
    NoCardEvent,
    ReaderFailure,
    load_terminal_config,
    not_completed,
    reader_failure,
    transaction_from_options,
    transaction_options,
)
from terminal.kernel.conformance import scripted_registry
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome, Start
from terminal.kernel.recording import EntryPointRecord
from terminal.kernel.registry import default_registry
from terminal.kernel.transaction import (
    TransactionResult,
)
from terminal.readers import NoCardError, ReaderError, open_reader

__all__ = ["entry_point_command", "render"]

#: Environment variables for the options a test bench sets once.
CONFIG_ENV = "TAPSTACK_ENTRY_POINT_CONFIG"
CARD_ENV = "TAPSTACK_ENTRY_POINT_CARD"


def render(record: EntryPointRecord) -> str:
    """The record as text for a person: selects, activations, outcome, UI requests."""
    data = record.to_json()
    lines = [f"start {data['start']}, {data['restarts']} restarts"]
    for sel in data["selects"]:
        lines.append(f"  SELECT {sel['name']} -> {sel['sw']}")
    for act in data["activations"]:
        ind = act["indicators"]
        flags = [k for k, v in ind.items() if v is True]
        lines.append(
            f"  activated {act['kernel']} for {act['aid']} (start {act['start']}"
            f"{', restart' if act['restart'] else ''}), TTQ {ind['ttq'] or '-'}"
            f"{', ' + ', '.join(flags) if flags else ''}"
            f"{', online response ' + act['online_response'] if act['online_response'] else ''}"
        )
    for event in data["events"]:
        details = ", ".join(f"{k} {v}" for k, v in event.items() if k != "event")
        lines.append(f"  event: {event['event']}{' (' + details + ')' if details else ''}")
    outcome = data["outcome"] or {}
    lines.append(f"OUTCOME {str(outcome.get('outcome', 'none')).upper()}")
    for reason in data["reasons"]:
        lines.append(f"  reason {reason}")
    if outcome:
        lines.append(f"  DF8129 {outcome['df8129']}")
    for ui in data["ui"]:
        extra = f", {ui['value']} {ui['currency']}" if ui["value"] is not None else ""
        lang = f", language {ui['language']}" if ui["language"] else ""
        hold = f", hold {ui['hold_time_ms']} ms" if ui["hold_time_ms"] else ""
        lines.append(f"  UI {ui['message']} {ui['text']!r} ({ui['status']}{hold}{lang}{extra})")
    return "\n".join(lines)


@click.command("entry-point", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar=CONFIG_ENV, metavar="FILE",
              help=f"Terminal configuration (JSON); default built-in (${CONFIG_ENV}).")  # fmt: skip
@click.option("--card", "card_path", envvar=CARD_ENV, metavar="PROFILE",
              help=f"Card profile (scripted or EMV), emulated reader (${CARD_ENV}).")  # fmt: skip
@click.option("--reader", "reader_path", metavar="PATH",
              help="A reader path instead of --card (pcsc:0, nfc:udp:...).")  # fmt: skip
@transaction_options
@click.option("--autorun", is_flag=True, help="Start at B without pre-processing (Book B §3.2).")
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
    amount: str,
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

    The record: SELECT sequence with status words, kernel activations with their
    parameters, outcome parameters, UI requests, events and restarts. Exit code 0 for
    approved or online request, 5 declined, 8 any other outcome.
    """
    if (card_path is None) == (reader_path is None):
        raise click.UsageError("give exactly one of --card PROFILE and --reader PATH")
    config = load_terminal_config(config_path)
    transaction, _ = transaction_from_options(config, amount, other_amount, currency, txn_type)
    try:
        response = bytes.fromhex(online_response) if online_response is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    ids = sorted({c.kernel_id for c in config.combinations})
    base = default_registry() if kernels == "builtin" else None
    registry = scripted_registry(ids, base=base)

    def online(_result: TransactionResult) -> bytes | None:
        return response

    path = reader_path if reader_path is not None else f"emulated:{card_path}"
    try:
        reader = open_reader(path)
    except ReaderError as exc:
        raise ReaderFailure(
            f"{exc}; check --card or --reader (`terminal readers` lists the readers)"
        ) from exc
    entry = EntryPoint(config, registry)
    try:
        record = entry.process(
            reader,
            transaction,
            start=Start.B if autorun else Start.A,
            online=online,
            timeout=timeout,
        )
    except NoCardError as exc:
        raise NoCardEvent(f"{path}: {exc}: present a card, or wait longer with --timeout") from exc
    except ReaderError as exc:
        raise reader_failure(path, exc) from exc
    finally:
        reader.close()
    data: dict[str, Any] = record.to_json()
    final = record.outcome.outcome if record.outcome is not None else Outcome.NA
    failure = None
    if final not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        failure = not_completed(final.label, data["reasons"], declined=final is Outcome.DECLINED)
    if as_json:
        if failure is not None:
            data["error"] = error_document(failure)["error"]
            failure.in_document = True
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render(record))
    if failure is not None:
        raise failure
