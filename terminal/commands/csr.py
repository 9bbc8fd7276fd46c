"""``terminal csr``: a TLS key made on the terminal (or gate) and a certificate request
for its CA, so that the key never leaves the device.

The key (ECDSA P-256, PKCS #8 PEM) is written once, mode 0600, and never printed; the
request (PKCS #10, RFC 2986) goes to ``issuer terminal add --csr`` or ``renew --csr``
(a terminal) or ``backoffice gate add --csr`` or ``gate renew --csr`` (a gate), which
answer with the certificate (:mod:`emvwire.pki`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from clikit.errors import ToolFailure
from clikit.exits import Exit
from emvwire.pki import KINDS, PkiError, make_csr, new_key, private_key_pem, write_private

__all__ = ["csr_command"]


@click.command("csr")
@click.option(
    "--id",
    "ident",
    required=True,
    metavar="ID",
    help="The terminal or gate id the certificate will name (the CA decides).",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="terminal",
    show_default=True,
    help="A terminal of the issuer or a gate of the back office.",
)
@click.option(
    "--key-out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    metavar="FILE",
    help="Where the new private key goes (mode 0600; never overwritten).",
)
@click.option(
    "--out",
    "csr_out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    metavar="FILE",
    help="Where the request (PEM) goes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def csr_command(ident: str, kind: str, key_out: Path, csr_out: Path, as_json: bool) -> None:
    """Make a TLS key and a certificate request for it: the key stays here, the
    request goes to the CA (`issuer terminal add --csr FILE`, `backoffice gate add
    --csr FILE`)."""
    key = new_key()
    try:
        request = make_csr(key, kind, ident)
    except PkiError as exc:
        raise click.BadParameter(str(exc), param_hint="--id") from None
    try:
        write_private(key_out, private_key_pem(key))
    except FileExistsError:
        raise ToolFailure.of(
            f"{key_out} exists: a key file is never overwritten; choose another --key-out",
            Exit.CONFLICT,
        ) from None
    except OSError as exc:
        raise ToolFailure.of(
            f"{key_out}: {exc.strerror or exc}; choose a writable --key-out", Exit.STORAGE
        ) from None
    try:
        csr_out.write_bytes(request)
    except OSError as exc:
        raise ToolFailure.of(
            f"{csr_out}: {exc.strerror or exc}; choose a writable --out", Exit.STORAGE
        ) from None
    if as_json:
        click.echo(
            json.dumps(
                {"kind": kind, "id": ident, "key_file": str(key_out), "csr_file": str(csr_out)}
            )
        )
    else:
        click.echo(f"key {key_out} (mode 0600: it stays here), request {csr_out}")
