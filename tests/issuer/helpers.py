"""Helpers of the issuer tests (imported by their test files and conftest.py).

- Setting up an issuer: the test CA, the published IMK, a cheap file key store
  (:func:`make_file_store`), a SoftHSM key store (:func:`open_softhsm_store`), an issuer on
  a key store and a ledger (:func:`set_up`), an ARQC from a card profile (:func:`tap_arqc`).
- A :class:`World` for the authorisation service's tests (:func:`make_world`: an account
  in funds, a terminal and a provisioned card), tapped on the terminal kernel
  (:func:`tap`) and sent through the service's ASGI application with no socket
  (:func:`post`, :func:`get`, :func:`send`, :func:`request` for any method);
  :func:`edit` changes a field 55, :func:`balances` reads the account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from card.emv import EmvCard
from card.probe import CardProbe
from emvwire.oda import SigningKey
from emvwire.tlv import decode_flat, encode
from issuer.bootstrap import IssuerApp, setup_ranges
from issuer.config import IssuerConfig
from issuer.keys.base import SCHEMES, KeyStore, issuer_key_id
from issuer.keys.file import FileKeyStore
from issuer.ledger.repository import Ledger
from issuer.personalisation import provision
from issuer.service import Api, ServiceApp
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.emulated import EmulatedReader
from tests.support.asgi import call

ROOT = Path(__file__).resolve().parents[2]
TEST_CA_DIR = ROOT / "fixtures" / "ca"
#: The IMK of pyemv's published vectors: KCV 08D7B4.
PUBLISHED_IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PASSPHRASE = b"correct horse battery staple"


def make_file_store(path: Path) -> FileKeyStore:
    """A new file key store with a cheap scrypt cost."""
    return FileKeyStore.create(path, PASSPHRASE, cost_log2=10)


def open_softhsm_store(softhsm: dict[str, str]) -> KeyStore:
    """A PKCS#11 key store on the fresh SoftHSM token of the ``softhsm`` fixture.

    python-pkcs11 keeps one initialised library per process: re-initialise it so that
    SoftHSM reads this test's configuration (its own token folder).
    """
    import pkcs11

    from issuer.keys.pkcs11 import Pkcs11KeyStore

    pkcs11.lib(softhsm["module"]).reinitialize()
    return Pkcs11KeyStore(softhsm["module"], softhsm["label"], softhsm["pin"])


def set_up(keys: KeyStore, ledger: Ledger, rsa: dict[str, SigningKey], home: Path) -> IssuerApp:
    """An issuer on ``keys`` and ``ledger`` with the default ranges and the test CA,
    its issuer keys imported rather than generated."""
    for scheme in SCHEMES:
        if not keys.has(issuer_key_id(scheme)):
            keys.import_rsa(issuer_key_id(scheme), rsa[f"issuer/{scheme}"])
    keys.ensure_data_keys()
    setup_ranges(keys, ledger, ca="test", ca_dir=TEST_CA_DIR)
    return IssuerApp(IssuerConfig(home=home), ledger, keys)


def tap_arqc(profile: Any) -> tuple[Any, bytes]:
    """Tap a software card made from ``profile`` online (Visa: TTQ online required;
    Mastercard: GENERATE AC for an ARQC without CDA): the cryptogram data and ARQC."""
    tap = CardProbe(EmvCard(profile)).tap({0x9F66: bytes.fromhex("36804000")}, gen_ac=0x80)
    assert tap.data[0x9F27][0] & 0xC0 == 0x80, "the card did not answer an ARQC"
    return tap.cryptogram_data(), tap.data[0x9F26]


@dataclass
class World:
    app: IssuerApp
    api: Api
    account: str
    terminal: str
    auth: str
    card: EmvCard
    card_id: str
    http: ServiceApp


def tap(card: EmvCard, amount: int) -> TransactionResult:
    reader = EmulatedReader(card)
    reader.wait_for_card()
    result = EntryPoint(default_config()).run(reader, Transaction(amount), wait=False)
    assert result.outcome is Outcome.ONLINE_REQUEST
    return result


def request(
    w: World, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, Any]:
    """Any request to the service: (status, the JSON body)."""
    answer = call(w.http, method, path, headers, body)
    return answer.status, json.loads(answer.body)


def post(w: World, path: str, body: Any, key: str, auth: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": auth or w.auth, "idempotency-key": key}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(w, "POST", path, headers, raw)


def get(w: World, path: str, auth: str | None = None) -> tuple[int, Any]:
    return request(w, "GET", path, {"authorization": auth or w.auth})


def send(w: World, blob: bytes, track2: bytes, key: str) -> dict[str, Any]:
    status, body = post(
        w, "/v1/authorisations", {"icc_data": blob.hex(), "track2": track2.hex()}, key
    )
    assert status == 200, body
    return dict(body)


def edit(blob: bytes, **changes: bytes) -> bytes:
    """``blob`` with data objects replaced or added (keyword ``t9F34=...``)."""
    tags = decode_flat(blob)
    for name, value in changes.items():
        tags[int(name[1:], 16)] = value
    return b"".join(encode(t, v) for t, v in tags.items())


def balances(w: World) -> tuple[int, int]:
    account = w.app.service.account(w.account)
    return account.balance, account.held


def make_world(app: IssuerApp, rsa: dict[str, SigningKey], scheme: str = "visa") -> World:
    s = app.service
    account = s.create_account("Ada Lovelace")
    s.credit_account(account.id, 10_000)
    terminal, credential = s.add_terminal("Corner shop", "5411")
    made = provision(s, account.id, scheme, "card", icc_key=rsa[f"icc/{scheme}"])
    api = Api(app)
    return World(
        app,
        api,
        account.id,
        terminal.id,
        f"Bearer {terminal.id}:{credential}",
        EmvCard(made.profile),
        made.card.id,
        ServiceApp(api),
    )


# --- an outside issuer's range (tests of ranges and key versions) ---------------------

PREFIX = "455123"
CVN = 18
#: The outside issuer's master keys, version 1 and (after rotation) version 2.
OUTSIDE_V1 = {
    "ac": bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
    "smi": bytes.fromhex("1123456789ABCDEFFEDCBA9876543211"),
    "smc": bytes.fromhex("2123456789ABCDEFFEDCBA9876543212"),
}
OUTSIDE_V2 = {
    "ac": bytes.fromhex("3B1F5C7A9D2E4F6081A3C5E7092B4D6F"),
    "smi": bytes.fromhex("4C2E6D8B0F1A3B5C7D9E0A2B4C6D8E0F"),
    "smc": bytes.fromhex("5D3F7E9C1A2B3C4D5E6F708192A3B4C5"),
}


def independent_kcv(key: bytes) -> bytes:
    """The KCV of a TDES key (three bytes of a zero block enciphered)."""
    k1k2k1 = key + key[:8]  # the three-key form of a double-length key
    encryptor = Cipher(TripleDES(k1k2k1), modes.ECB()).encryptor()
    return (encryptor.update(bytes(8)) + encryptor.finalize())[:3]


PAN_OLD = "4551230000000016"
PAN_NEW = "4551230000000024"
