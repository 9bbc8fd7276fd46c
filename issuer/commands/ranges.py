"""``issuer range add|list|show|retire``: the issuer's card and token ranges.

A range is a PAN prefix (the issuer identifier its issuer key certificate names, EMV
Book 2 §5.1) of a scheme, a PAN length, ``card`` or ``token``, the CVN its cards get
by default and the CA key certifying its issuer key. Its master keys are separate
(``issuer keys``): adding a range makes none unless ``--generate-keys`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from issuer.bootstrap import add_range
from issuer.commands.common import CliState, emit, json_option, pass_state, progress_printer, table
from issuer.keys.base import SCHEMES
from issuer.model.entities import BinRange
from issuer.personalisation.ranges import RangeSpec

__all__ = ["range_"]


def _range_data(state: CliState, bin_range: BinRange) -> dict[str, Any]:
    """The range's JSON with its master key versions for its CVN (KCVs, never keys)."""
    app = state.app()
    data = bin_range.to_json()
    versions = []
    for version, retired in app.service.key_versions(
        bin_range.scheme, bin_range.prefix, bin_range.cvn
    ):
        versions.append({"version": version, "retired": retired})
    data["key_versions"] = versions
    return data


def _range_lines(data: dict[str, Any]) -> list[str]:
    versions = ", ".join(
        f"v{v['version']}{' (retired)' if v['retired'] else ''}" for v in data["key_versions"]
    )
    return [
        f"range {data['prefix']}  {data['scheme']} {data['kind']}  {data['status']}",
        f"  PAN length {data['pan_length']}; CVN {data['cvn']}; CA {data['ca']}; "
        f"issuer key {data['issuer_key']}",
        f"  master keys (CVN {data['cvn']}): {versions or 'none (issuer keys import|generate)'}",
    ]


@click.group("range")
def range_() -> None:
    """Card and token ranges: add, list, show, retire."""


@range_.command("add")
@click.option("--scheme", type=click.Choice(SCHEMES), required=True, help="Payment scheme.")
@click.option("--prefix", required=True, help="PAN prefix of the range (BIN, 6-8 digits).")
@click.option("--pan-length", type=click.IntRange(12, 19), default=16, show_default=True,
              help="Digits of the range's PANs.")  # fmt: skip
@click.option("--kind", type=click.Choice(["card", "token"]), default="card", show_default=True,
              help="A range of card PANs or of payment tokens.")  # fmt: skip
@click.option("--cvn", type=int, required=True, help="Cryptogram version its cards get.")
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of the test CA private keys, if the scheme's CA is not in the key store "
    "yet and the home's CA is the test CA (default: the packaged copy).",
)
@click.option("--generate-keys", is_flag=True,
              help="Also generate the range's master keys for its CVN (default: none; "
              "import them with `issuer keys import`).")  # fmt: skip
@json_option
@pass_state
def range_add(
    state: CliState,
    scheme: str,
    prefix: str,
    pan_length: int,
    kind: str,
    cvn: int,
    ca_dir: Path | None,
    generate_keys: bool,
    as_json: bool,
) -> None:
    """Add a range: its issuer key is certified for the prefix by the scheme's CA
    (the home's CA: the test CA or its own; made now if the issuer has no CA of the
    scheme yet, and HOME/ca.json rewritten). Refused if it overlaps a range."""
    spec = RangeSpec(prefix.strip(), scheme, kind, cvn, pan_length)
    bin_range = add_range(
        state.app(),
        spec,
        ca_dir=ca_dir,
        generate_keys=generate_keys,
        progress=progress_printer(),
    )
    data = _range_data(state, bin_range)
    emit(data, as_json, ["range added", *_range_lines(data)])


@range_.command("list")
@json_option
@pass_state
def range_list(state: CliState, as_json: bool) -> None:
    """Every range with its status and its master key versions for its CVN."""
    ranges = [_range_data(state, r) for r in state.app().service.bin_ranges()]
    emit(
        ranges,
        as_json,
        table(
            ["range", "scheme", "kind", "length", "CVN", "CA", "status", "key versions"],
            [
                (
                    r["prefix"],
                    r["scheme"],
                    r["kind"],
                    r["pan_length"],
                    r["cvn"],
                    r["ca"],
                    r["status"],
                    " ".join(
                        f"v{v['version']}{'(retired)' if v['retired'] else ''}"
                        for v in r["key_versions"]
                    ),
                )
                for r in ranges
            ],
        ),
    )


@range_.command("show")
@click.argument("prefix")
@json_option
@pass_state
def range_show(state: CliState, prefix: str, as_json: bool) -> None:
    """One range (PREFIX: its BIN)."""
    data = _range_data(state, state.app().service.bin_range(prefix))
    emit(data, as_json, _range_lines(data))


@range_.command("retire")
@click.argument("prefix")
@json_option
@pass_state
def range_retire(state: CliState, prefix: str, as_json: bool) -> None:
    """Retire a range (PREFIX: its BIN): no more cards or tokens are issued or
    registered in it; those it has keep working until closed (retire their master
    key version with `issuer keys retire` to refuse them)."""
    data = _range_data(state, state.app().service.retire_range(prefix))
    emit(data, as_json, ["range retired", *_range_lines(data)])
