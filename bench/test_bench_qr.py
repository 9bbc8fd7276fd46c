"""Paying by QR code: a consumer-presented code scanned to approval beside a tap to
approval, on the same issuer in the same run; and reading a 300x300 picture of a code.

- ``approval[tap]``: the retail till's sale of a phone tapped on the emulated reader
  (in process: the kernel and the card's cryptography, no radio), authorised by
  ``issuer serve`` (SQLite, mutual TLS, on this machine), two fsync'd journal records:
  ``Till.sale``, card presented to receipt.
- ``approval[qr_cpm]``: the same till's sale of a consumer-presented code made by a
  second phone of the same account (``card.wallet``; made before the round, as the
  customer's phone shows it before the scan): ``Till.scan_sale``, scanned line to
  receipt (decode, field 55, the same authorisation and journal).
- ``make_code``: the phone making its code (``Wallet.consumer_code``: the card's
  SELECT, GPO, READ RECORD and cryptogram in process, the counters file written), the
  work the customer's phone does before the scan, for comparison with the tap (where
  the card's part is inside the round).
- ``read_png[...]``: ``emvwire.qr.image.read`` of a 300x300 PNG of a code (Pillow opens
  it, zxing-cpp finds and decodes the symbol): the consumer-presented code of a phone
  (version 12-13, about 280 characters) and a merchant's static code (version 6).

Each phone is its own token, so that neither reaches the issuer's velocity rule (50
approvals a token in 10 minutes): :data:`ROUNDS` sales of each. p50 and p99 (ms) are
in ``extra_info``. Run: ``scripts/bench bench/test_bench_qr.py``.
"""

from __future__ import annotations

import io
import shutil
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from card.emv import EmvCard
from card.wallet import Wallet
from emvwire.country import country_by_alpha2
from emvwire.currency import currency_by_code
from emvwire.qr import image
from emvwire.qr.tapstack import merchant_code
from emvwire.tls import ClientTls
from hostlink import HostClient
from terminal.apps.journal import Journal
from terminal.apps.retail import Till
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.emulated import EmulatedReader
from tests.support.e2e import (
    init_issuer,
    issuer_cli,
    new_account,
    provision_card,
    serve_issuer,
)

EUR = currency_by_code("EUR")
CARDS = Path(__file__).resolve().parents[1] / "fixtures" / "cards"
#: Sales of each kind (each phone token stays under the velocity rule's 50).
ROUNDS = 40


@dataclass
class Shop:
    till: Till
    tapped: EmvCard
    wallet: Wallet


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp = tmp_path_factory.mktemp("bench-qr")
    env = init_issuer(tmp / "home")
    account = new_account(env, "Bench", "100000.00")
    provision_card(env, account, tmp / "tapped.json", form="phone")
    provision_card(env, account, tmp / "shown.json", form="phone")
    added = issuer_cli(env, "terminal", "add", "--merchant", "Shop", "--mcc", "5411",
                       "--city", "Paris")  # fmt: skip
    cert = added["certificate"]
    tls = ClientTls(cert["issuer_ca_file"], cert["cert_file"], cert["key_file"])
    with (
        serve_issuer(env) as url,
        HostClient(url, added["id"], added["credential"], tls=tls) as host,
    ):
        till = Till(
            Journal(tmp / "till"), host, merchant="Shop", terminal_id=added["id"], currency=EUR,
            qr_host=host, terminal_data=default_config().terminal_data,
        )  # fmt: skip
        tapped = EmvCard.from_file(tmp / "tapped.json", state_path=tmp / "tapped.state")
        shown = EmvCard.from_file(tmp / "shown.json", state_path=tmp / "shown.state")
        yield Shop(till, tapped, Wallet(shown))
        till.journal.close()
    shutil.rmtree(tmp, ignore_errors=True)


def _quantiles(benchmark: Any) -> None:
    data = sorted(benchmark.stats.stats.data)
    p99 = data[min(len(data) - 1, round(0.99 * (len(data) - 1)))]
    benchmark.extra_info["p50_ms"] = round(1e3 * statistics.median(data), 2)
    benchmark.extra_info["p99_ms"] = round(1e3 * p99, 2)


def test_approval_tap(benchmark: Any, shop: Shop) -> None:
    reader = EmulatedReader(shop.tapped)
    entry = EntryPoint(default_config())

    def tap(transaction: Transaction) -> TransactionResult:
        reader.wait_for_card(1)
        return entry.run(reader, transaction, wait=False)

    receipt = benchmark.pedantic(shop.till.sale, (1234, tap), rounds=ROUNDS, warmup_rounds=1)
    assert receipt.approved, receipt
    _quantiles(benchmark)


def test_approval_qr_cpm(benchmark: Any, shop: Shop) -> None:
    def code() -> tuple[tuple[int, str], dict[str, Any]]:
        return (1234, shop.wallet.consumer_code().text + "\n"), {}

    receipt = benchmark.pedantic(shop.till.scan_sale, setup=code, rounds=ROUNDS, warmup_rounds=1)
    assert receipt.approved, receipt
    _quantiles(benchmark)


def test_make_code(benchmark: Any, tmp_path: Path) -> None:
    shutil.copy(CARDS / "visa-phone.json", tmp_path / "phone.json")
    phone = EmvCard.from_file(tmp_path / "phone.json", state_path=tmp_path / "phone.state")
    made = benchmark.pedantic(Wallet(phone).consumer_code, rounds=200, warmup_rounds=2)
    assert made.atc > 200
    _quantiles(benchmark)


def _png_300(text: str) -> bytes:
    """A 300x300 PNG of the code of ``text``: the symbol at the largest whole scale
    that fits, centred on white."""
    drawn = Image.open(io.BytesIO(image.png(text, scale=1)))
    scale = 300 // drawn.width
    symbol = Image.open(io.BytesIO(image.png(text, scale=scale))).convert("L")
    canvas = Image.new("L", (300, 300), 255)
    canvas.paste(symbol, ((300 - symbol.width) // 2, (300 - symbol.height) // 2))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("which", ["consumer-presented", "merchant-static"])
def test_read_png(benchmark: Any, tmp_path: Path, which: str) -> None:
    if which == "consumer-presented":
        shutil.copy(CARDS / "visa-phone.json", tmp_path / "phone.json")
        phone = EmvCard.from_file(tmp_path / "phone.json", state_path=tmp_path / "phone.state")
        text = Wallet(phone).consumer_code().text
    else:
        code = merchant_code("term_abcdefghijklmnop", name="Corner shop", city="Paris",
                             mcc="5411", currency=EUR, country=country_by_alpha2("FR"))  # fmt: skip
        text = code.encode()
    picture = _png_300(text)
    assert Image.open(io.BytesIO(picture)).size == (300, 300)
    read = benchmark.pedantic(image.read, (picture,), rounds=200, warmup_rounds=5)
    assert read == text
    benchmark.extra_info["characters"] = len(text)
    _quantiles(benchmark)
