"""Coverage-guided fuzz target for the authorisation API's request decoding (atheris /
libFuzzer): JSON bodies and field 55 blobs into an authorisation request, queries and
bodies of the other routes, and credentials.

Run for a set time (seconds) with ``scripts/fuzz SECONDS``, or directly::

    .venv/bin/python fuzz/fuzz_api.py -max_total_time=60 CORPUS_DIR

It makes an issuer once (SQLite in a temporary folder, ``bench/load_issuer.py``'s
``setup``: one terminal, one Visa card and its ARQCs), then feeds each input to
:meth:`issuer.service.api.Api.prepare`, the first stage of every request: decoding,
the credential and, for an authorisation, the whole read phase (field 55, track 2,
the card, the cryptogram), which writes nothing. The first input byte picks what the
rest is:

0. the body of ``POST /v1/authorisations``;
1. a field 55 blob, sent with the card's track 2;
2. bytes spliced into the card's real field 55 (a byte offset, then the bytes);
3. a route (a byte), then its query string and body;
4. the ``Authorization`` header.

Every answer must be below 500 (a malformed request is a 4xx naming what is wrong,
never an unexpected failure); anything else raised, or a 500, is a crash that libFuzzer
reports with its input.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

with atheris.instrument_imports():
    import load_issuer

    from issuer.bootstrap import open_issuer
    from issuer.service.api import Api, Prepared, Request
    from issuer.service.routes import ROUTES

_HOME = tempfile.TemporaryDirectory(prefix="fuzz-api-")
_PLAN = load_issuer.setup(Path(_HOME.name) / "home", None, clients=1, cards=1)
_API = Api(open_issuer(Path(_HOME.name) / "home", passphrase=load_issuer.PASS))
_TERMINAL = _PLAN["terminals"][0]
_AUTH = f"Bearer {_TERMINAL.id}:{_TERMINAL.key}"
_ICC, _TRACK2 = _PLAN["streams"][0][0]
_BLOB = bytes.fromhex(_ICC)
_ID = "txn_aaaaaaaaaaaaaaaa"


def _check(prepared: Prepared) -> None:
    """The first stage's outcome must not be a server error."""
    answer = prepared.answer
    if answer is None and prepared.checked is not None and prepared.checked.outcome is not None:
        answer = Api.failure(prepared.checked.outcome)
    if answer is not None and answer.status >= 500:
        raise AssertionError(f"{answer.status}: {answer.body!r}")


def _authorise(body: bytes, headers: dict[str, str] | None = None) -> None:
    headers = headers or {"authorization": _AUTH, "idempotency-key": "fuzz"}
    _check(_API.prepare(Request("authorise", headers, body)))


def one_input(data: bytes) -> None:
    """Feed ``data[1:]`` to the request part ``data[0]`` picks (module docstring)."""
    if not data:
        return
    mode, rest = data[0] % 5, data[1:]
    if mode == 0:
        _authorise(rest)
    elif mode == 1:
        _authorise(json.dumps({"icc_data": rest.hex(), "track2": _TRACK2}).encode())
    elif mode == 2:
        at = rest[0] % len(_BLOB) if rest else 0
        blob = _BLOB[:at] + rest[1:] + _BLOB[at + len(rest[1:]) :]
        _authorise(json.dumps({"icc_data": blob.hex(), "track2": _TRACK2}).encode())
    elif mode == 3 and rest:
        route = ROUTES[rest[0] % len(ROUTES)]
        text = rest[1:].decode("latin-1")
        query, _, body = text.partition("\n")
        headers = {"authorization": _AUTH, "idempotency-key": "fuzz"}
        request = Request(route.name, headers, body.encode("latin-1"), {"id": _ID}, query)
        _check(_API.prepare(request))
    elif mode == 4:
        headers = {"authorization": rest.decode("latin-1"), "idempotency-key": "fuzz"}
        _authorise(json.dumps({"icc_data": _ICC, "track2": _TRACK2}).encode(), headers)


def main() -> None:
    """Entry point: libFuzzer options come from the command line."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
