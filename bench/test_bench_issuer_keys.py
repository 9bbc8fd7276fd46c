"""Issuer key store throughput: the encrypted file store beside PKCS#11 (SoftHSM).

Groups (compare within a group):

* ``derive-ac``: one ICC AC master key for a new PAN each call (what ARQC verification
  needs per card; derivation inside the store, EMV Book 2 §A1.4.1).
* ``derive-set``: the AC, SMI and SMC keys of a card (personalisation).
* ``pan-hash``: the keyed PAN hash of the token vault look-up.
* ``seal``: AES-GCM sealing of a PAN at rest.
* ``personalise``: a whole Visa card profile from the store's keys, with a given ICC
  RSA key (``reused-icc-key``) or a fresh 1024-bit one (``new-icc-key``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from emvwire.oda import SigningKey
from issuer.keys.base import KeyStore, MasterKeyRef
from issuer.keys.file import FileKeyStore

MODULE = os.environ.get("TAPSTACK_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
REF = MasterKeyRef("visa", "476173", 18, "ac")
PANS = [f"476173{n:09d}" for n in range(50_000)]


def _file_store(folder: Path) -> KeyStore:
    store = FileKeyStore.create(folder / "keystore.json", b"bench", cost_log2=10)
    return store


def _softhsm_store(folder: Path) -> KeyStore:
    util = shutil.which("softhsm2-util")
    if util is None or not Path(MODULE).exists():
        pytest.skip("SoftHSM is not installed")
    pkcs11 = pytest.importorskip("pkcs11")
    tokens = folder / "tokens"
    tokens.mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", "bench", "--so-pin", "5678", "--pin", "1234"],
        check=True,
        capture_output=True,
    )
    pkcs11.lib(MODULE).reinitialize()
    from issuer.keys.pkcs11 import Pkcs11KeyStore

    return Pkcs11KeyStore(MODULE, "bench", "1234")


@pytest.fixture(scope="module", params=["file", "pkcs11"])
def store(request: pytest.FixtureRequest) -> Iterator[KeyStore]:
    folder = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    made = _file_store(folder) if request.param == "file" else _softhsm_store(folder)
    made.generate_set("visa", "476173", 18)
    made.ensure_data_keys()
    try:
        yield made
    finally:
        made.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_derive_ac(benchmark: pytest.FixtureRequest, store: KeyStore) -> None:
    benchmark.group = "derive-ac"  # type: ignore[attr-defined]
    benchmark.name = store.backend  # type: ignore[attr-defined]
    pans = itertools.cycle(PANS)
    key = benchmark(lambda: store.derive_icc_mk(REF, next(pans), "00"))  # type: ignore[operator]
    assert len(key) == 16


def test_derive_set(benchmark: pytest.FixtureRequest, store: KeyStore) -> None:
    benchmark.group = "derive-set"  # type: ignore[attr-defined]
    benchmark.name = store.backend  # type: ignore[attr-defined]
    pans = itertools.cycle(PANS)
    keys = benchmark(  # type: ignore[operator]
        lambda: store.derive_icc_keys("visa", "476173", 18, next(pans), "00")
    )
    assert len(keys.ac) == 16


def test_pan_hash(benchmark: pytest.FixtureRequest, store: KeyStore) -> None:
    benchmark.group = "pan-hash"  # type: ignore[attr-defined]
    benchmark.name = store.backend  # type: ignore[attr-defined]
    pans = itertools.cycle(PANS)
    digest = benchmark(lambda: store.pan_hash(next(pans)))  # type: ignore[operator]
    assert len(digest) == 32


def test_seal(benchmark: pytest.FixtureRequest, store: KeyStore) -> None:
    benchmark.group = "seal"  # type: ignore[attr-defined]
    benchmark.name = store.backend  # type: ignore[attr-defined]
    blob = benchmark(lambda: store.seal(b"4761739001010010", b"card:x"))  # type: ignore[operator]
    assert store.unseal(blob, b"card:x") == b"4761739001010010"


@pytest.mark.parametrize("icc", ["reused-icc-key", "new-icc-key"])
def test_personalise(benchmark: pytest.FixtureRequest, store: KeyStore, icc: str) -> None:
    from issuer.bootstrap import setup_ranges
    from issuer.ledger.sqlite import SqliteLedger
    from issuer.personalisation import build_profile

    benchmark.group = "personalise"  # type: ignore[attr-defined]
    benchmark.name = f"{store.backend} {icc}"  # type: ignore[attr-defined]
    folder = Path(tempfile.mkdtemp(prefix="bench-perso-"))
    ledger = SqliteLedger(folder / "issuer.db")
    ledger.migrate()
    ca_dir = Path(__file__).resolve().parents[1] / "fixtures" / "ca"
    if not store.has("rsa/issuer/visa"):
        store.import_rsa("rsa/issuer/visa", SigningKey.generate(1024, 3))
    if not store.has("rsa/issuer/mastercard"):
        store.import_rsa("rsa/issuer/mastercard", SigningKey.generate(1152, 65537))
    setup_ranges(store, ledger, ca="test", ca_dir=ca_dir)
    with ledger.unit_of_work(write=False) as uow:
        visa = uow.bins.get("476173")
    icc_key = SigningKey.generate(1024, 3) if icc == "reused-icc-key" else None
    pans = itertools.cycle(PANS)

    def one() -> object:
        return build_profile(
            store,
            visa,
            form="card",
            name="bench",
            pan=next(pans),
            psn="00",
            expiry=date(2030, 12, 31),
            cvn=18,
            icc_key=icc_key,
        )

    profile = benchmark.pedantic(one, rounds=20, iterations=1)  # type: ignore[attr-defined]
    assert profile is not None
    ledger.close()
    shutil.rmtree(folder, ignore_errors=True)
