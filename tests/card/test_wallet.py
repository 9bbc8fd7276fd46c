"""The phone wallet (card.wallet): a consumer-presented code from the same application
and keys as the phone's taps, known-answer checked against pyemv from the published
issuer master key; the ATC moving as a tap's; the stamp; the payment of a merchant's
code; what a wallet refuses. And ``card qr`` / ``card pay-qr`` through CliRunner:
masked by default, bad input a clear message and its exit code."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from card.cli import cli
from card.emv import EmvCard
from card.wallet import Wallet, WalletError
from emvwire.currency import currency_by_code
from emvwire.qr import image
from emvwire.qr.cpm import ConsumerPresentedCode
from emvwire.qr.mpm import crc16
from emvwire.qr.tapstack import stamped_at
from emvwire.tags import Tag
from emvwire.tlv import decode_flat

pyemv = pytest.importorskip("pyemv")
from pyemv import cvn as pyemv_cvn  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:(Two|Single)-key TripleDES:cryptography.utils.CryptographyDeprecationWarning"
)

CARDS = Path(__file__).resolve().parents[2] / "fixtures" / "cards"
#: The published test master keys the fixture phones derive from
#: (fixtures/issuer/test-master-keys.json: the AC key is pyemv's published IMK).
IMK_AC = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
IMK_SMI = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
IMK_SMC = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")
TOKEN = "4895370000000013"  # the Visa phone fixture's token, PSN 00
NOON = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
#: The Visa phone's first code for 12.50 EUR made at NOON with the UN's random half
#: 1234: ARQC FE71FFB44E4EF10B (CVN 22), ATC 1, UN 5460 1234 (21,600 two-second ticks:
#: 12:00:00 UTC).
KNOWN_CODE = (
    "hQVDUFYwMWGBzk8HoAAAAAMQEFAKVklTQSBQSE9ORVcRSJU3AAAAABPTASIBAAAAAACfGQZAAQAwJz+fJB1W"
    "MDAxMDAxMzAyMDMzMTIzNDU2Nzg5MDEyMzQ1Np8lAgAQY3afJgj+cf+0Tk7xC58nAYCfECAfIgGgEAEAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAJ82AgABnzcEVGASNIICIACfAgYAAAAAElCfAwYAAAAAAACfGgICUJUF"
    "AAAAAABfKgIJeJoDJhIGnAEAn2wCAIBfNAEA"
)


def _phone(tmp_path: Path, name: str = "visa-phone.json") -> EmvCard:
    return EmvCard.from_file(CARDS / name, state_path=tmp_path / f"{name}.state")


def test_a_code_is_known_answer_and_its_arqc_is_pyemvs(tmp_path: Path) -> None:
    wallet = Wallet(_phone(tmp_path), clock=lambda: NOON, rng=lambda n: bytes.fromhex("1234"))
    made = wallet.consumer_code(1250)
    assert made.text == KNOWN_CODE
    assert (made.atc, made.amount, made.token) == (1, 1250, "489537******0013")
    data = ConsumerPresentedCode.decode(made.text).applications[0].data
    oracle = pyemv_cvn.VisaCVN22(IMK_AC, IMK_SMI, IMK_SMC, TOKEN, "00")
    arqc = oracle.generate_ac(
        tag_9f02=data[0x9F02], tag_9f03=data[0x9F03], tag_9f1a=data[0x9F1A], tag_95=data[0x95],
        tag_5f2a=data[0x5F2A], tag_9a=data[0x9A], tag_9c=data[0x9C], tag_9f37=data[0x9F37],
        tag_82=data[0x82], tag_9f36=data[0x9F36], tag_9f10=data[0x9F10],
    )  # fmt: skip
    assert bytes(arqc) == data[Tag.APPLICATION_CRYPTOGRAM] == bytes.fromhex("FE71FFB44E4EF10B")
    assert stamped_at(data[Tag.TRANSACTION_DATE], data[Tag.UNPREDICTABLE_NUMBER]) == NOON
    assert made.valid_until == datetime(2026, 12, 6, 12, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("profile", ["visa-phone.json", "mastercard-phone.json"])
def test_each_code_is_fresh_and_the_atc_moves_as_a_taps(tmp_path: Path, profile: str) -> None:
    phone = _phone(tmp_path, profile)
    wallet = Wallet(phone)
    first, second = wallet.consumer_code(), wallet.consumer_code()
    assert (first.atc, second.atc) == (1, 2)
    assert first.text != second.text
    assert phone.counters().atc == 2
    again = Wallet(_phone(tmp_path, profile)).consumer_code()  # the state persisted
    assert again.atc == 3
    app = ConsumerPresentedCode.decode(first.text).applications[0]
    assert app.get(Tag.TOKEN_REQUESTOR_ID) is not None
    assert app.data[Tag.AMOUNT_AUTHORISED] == bytes(6)  # made for any amount


def test_a_payment_is_field_55_for_the_merchants_amount_and_country(tmp_path: Path) -> None:
    wallet = Wallet(_phone(tmp_path, "mastercard-phone.json"))
    icc, track2 = wallet.payment(999, currency_by_code("GBP"), "GB")
    sent = decode_flat(icc)
    assert sent[Tag.AMOUNT_AUTHORISED] == bytes.fromhex("000000000999")
    assert (sent[Tag.TRANSACTION_CURRENCY_CODE], sent[Tag.TERMINAL_COUNTRY_CODE]) == (
        bytes.fromhex("0826"),
        bytes.fromhex("0826"),
    )
    assert sent[Tag.CID] == b"\x80"
    assert track2.hex().upper().startswith("5204740000001002D")


def test_a_plastic_card_shows_no_code(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="phone"):
        Wallet(_phone(tmp_path, "visa-card.json"))
    with pytest.raises(WalletError, match="above zero"):
        Wallet(_phone(tmp_path)).consumer_code(0)


# --- the commands ------------------------------------------------------------------------


@pytest.fixture
def phone(tmp_path: Path) -> Path:
    shutil.copy(CARDS / "visa-phone.json", tmp_path / "phone.json")
    return tmp_path / "phone.json"


def _card(tmp_path: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = {"TAPSTACK_STATE_DIR": str(tmp_path / "state"), "TAPSTACK_ISSUER_URL": None,
           "TAPSTACK_WALLET_ID": None, "TAPSTACK_WALLET_KEY": None}  # fmt: skip
    result = CliRunner(env=env).invoke(cli, list(args), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_card_qr_draws_the_code_and_prints_its_text_only_when_asked(
    tmp_path: Path, phone: Path
) -> None:
    code, out, err = _card(tmp_path, "qr", str(phone), "--amount", "12.50", "--png",
                           str(tmp_path / "code.png"))  # fmt: skip
    assert code == 0
    assert "▀" in out or "▄" in out
    assert "code for 12.50 EUR: token 489537******0013, ATC 1, valid until" in err
    read = ConsumerPresentedCode.decode(image.read((tmp_path / "code.png").read_bytes()))
    assert read.applications[0].data[Tag.ATC] == b"\x00\x01"
    code, out, _ = _card(tmp_path, "qr", str(phone), "--json")
    shown = json.loads(out)
    assert (shown["atc"], shown["amount"], shown["token"]) == (2, None, "489537******0013")
    assert "payload" not in shown
    assert TOKEN not in out
    code, out, _ = _card(tmp_path, "qr", str(phone), "--text")
    assert ConsumerPresentedCode.decode(out.strip()).track2() is not None


def test_card_qr_refuses_bad_input_clearly(tmp_path: Path, phone: Path) -> None:
    code, _, err = _card(tmp_path, "qr", str(phone), "--amount", "1.234")
    assert (code, "more than 2 decimals" in err) == (2, True)
    code, _, err = _card(tmp_path, "qr", str(CARDS / "visa-card.json"))
    assert (code, "a plastic card shows no code" in err) == (2, True)


def test_card_pay_qr_refuses_a_bad_code_before_going_online(tmp_path: Path, phone: Path) -> None:
    code, _, err = _card(tmp_path, "pay-qr", str(phone), "--text", "0002010102115204")
    assert (code, "not a valid merchant code" in err) == (5, True)
    static = (
        "00020101021126410012org.tapstack0121term_aaaaaaaaaaaaaaaa520454115303978"
        "5802FR5911Corner shop6005Paris6304"
    )
    valid = static + f"{crc16(static.encode()):04X}"
    tampered = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    code, _, err = _card(tmp_path, "pay-qr", str(phone), "--text", tampered)
    assert (code, "(field 63)" in err) == (5, True)
    code, _, err = _card(tmp_path, "pay-qr", str(phone), "--text", valid)
    assert (code, "--issuer, --wallet-id and --wallet-key" in err) == (2, True)
    code, _, err = _card(tmp_path, "pay-qr", str(phone))
    assert (code, "give --text PAYLOAD or --image FILE" in err) == (2, True)
    (tmp_path / "blank.png").write_bytes(image.png("not a merchant code")[:40])
    code, _, err = _card(tmp_path, "pay-qr", str(phone), "--image", str(tmp_path / "blank.png"))
    assert (code, "not an image" in err) == (5, True)
