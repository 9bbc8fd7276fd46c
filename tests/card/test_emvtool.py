"""Interop proof: a PC/SC application that is not ours reads our software card via pcscd.

The reader is python-emv's ``emvtool`` (PyPI ``emv``), in a virtualenv of its own
(``scripts/emvtool-venv``: it needs pyscard 2.0.0 and click < 8). Our card is
presented in this test process's vpcd reader (tests.support.e2e.own_vpcd_reader) by
:func:`card.vpcd.serve_tap` in a thread, once the
reader has been empty for a pcscd poll (:data:`card.vpcd.REMOVAL_GAP`: a card left there
by whatever ran before is then gone for pcscd too);
``emvtool`` finds it through pcscd like any card: ``listapps`` (SELECT
1PAY.SYS.DDF01, then known AIDs, following 61xx), ``info`` (every record of every
SFI, GET DATA of the counters) and ``appdata`` (GET PROCESSING OPTIONS with an empty
PDOL, then the records of the AFL). emvtool prints the (public test) PAN in clear:
it is a peer tool, not ours, so its output is not held to our masking rules.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from card.emv import EmvCard
from card.vpcd import REMOVAL_GAP, VPCD_PORT, serve_tap
from emvwire.profile import load_profile
from tests.support.e2e import free_vpcd_reader, reader_name

pytestmark = pytest.mark.pcsc

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "fixtures" / "cards"
REQUIRE_SERVICES = os.environ.get("TAPSTACK_REQUIRE_SERVICES", "") not in ("", "0")
#: pyscard 2.0.0 builds from source (about 20 s here); pip may also have to download.
VENV_TIMEOUT = 600
#: Seconds without a word from vpcd before the reader counts as held by another card.
BUSY_TIMEOUT = 3.0
#: terminaltables' line drawing (DEC special graphics) and click's colours.
_ESCAPES = re.compile(r"\x1b(\[[0-9;]*m|[()][0B])")


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def emvtool() -> str:
    """The path of emvtool in its own virtualenv, made on first use (then reused)."""
    script = ROOT / "scripts" / "emvtool-venv"
    try:
        done = subprocess.run(
            [str(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=VENV_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _missing(f"emvtool's virtualenv took over {VENV_TIMEOUT} s to build")
    if done.returncode != 0:
        _missing(
            "could not build emvtool's virtualenv with scripts/emvtool-venv (it needs PyPI "
            f"on the network, gcc, swig, libpcsclite-dev): {_why(done.stderr)}"
        )
    path = done.stdout.strip().splitlines()[-1]
    assert Path(path).is_file(), done.stdout
    return path


def _why(stderr: str) -> str:
    """pip's conclusion (its ``ERROR:`` lines) or the last line of a failed build, not
    the retries before it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    return "; ".join(errors) if errors else (lines[-1] if lines else "no message")


@dataclass
class Presented:
    card: EmvCard
    reader_index: int  #: emvtool's -r: the reader's place in pcscd's list


Present = Callable[[str], Presented]


@pytest.fixture
def present(pcscd: str) -> Iterator[Callable[[str], Presented]]:
    """Present a fixture card in this process's vpcd reader until the test ends, each
    presentation after the reader was empty for :data:`REMOVAL_GAP`."""
    from smartcard.System import readers

    names = [str(r) for r in readers()]
    number = free_vpcd_reader()
    reader, port = reader_name(number), VPCD_PORT + number
    stop = threading.Event()
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def start(name: str) -> Presented:
        card = EmvCard.from_file(CARDS / f"{name}.json", persist=False)

        def run() -> None:
            try:
                while not stop.wait(REMOVAL_GAP):
                    serve_tap(card, port=port, stop=stop, busy_timeout=BUSY_TIMEOUT)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"card-{name}", daemon=True)
        thread.start()
        threads.append(thread)
        _wait_for_card(reader, errors)
        return Presented(card, names.index(reader))

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    if errors:
        raise errors[0]


def _wait_for_card(name: str, errors: list[BaseException], timeout: float = 10.0) -> None:
    from smartcard.System import readers

    reader = next(r for r in readers() if str(r) == name)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if errors:  # the presentation failed (ReaderBusyError: another card holds it)
            raise errors[0]
        connection = reader.createConnection()
        try:
            connection.connect()
        except Exception as exc:  # pyscard: NoCardException, CardConnectionException
            last = exc
            time.sleep(0.05)
            continue
        connection.disconnect()
        return
    raise AssertionError(f"the card never appeared in {name!r}: {last!r}")


def _run(emvtool: str, index: int, *command: str) -> tuple[int, str]:
    done = subprocess.run(
        [emvtool, "-r", str(index), *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, _ESCAPES.sub("", done.stdout + done.stderr)


def _spaced(value: bytes) -> str:
    """How python-emv prints bytes: ``[A0 00 00 00 03]``."""
    return "[" + " ".join(f"{b:02X}" for b in value) + "]"


@pytest.mark.parametrize(
    "name", ["visa-card", "mastercard-card", "amex-card", "unionpay-card", "unionpay-phone"]
)
def test_emvtool_lists_our_application(emvtool: str, present: Present, name: str) -> None:
    app = load_profile(CARDS / f"{name}.json").applications[0]
    presented = present(name)
    code, out = _run(emvtool, presented.reader_index, "listapps")
    assert code == 0, out
    assert f'"{app.label}"' in out
    assert _spaced(app.aid) in out


def _tag(tag: int) -> str:
    return _spaced(tag.to_bytes((tag.bit_length() + 7) // 8, "big"))


# Not the Amex card nor the UnionPay card: python-emv renders the PAN (5A) as a decimal
# number and fails on the F that pads a PAN of 15 or 19 digits (Book 3 Annex A, cn).
@pytest.mark.parametrize("name", ["visa-card", "mastercard-card", "unionpay-phone"])
def test_emvtool_reads_every_record(emvtool: str, present: Present, name: str) -> None:
    app = load_profile(CARDS / f"{name}.json").applications[0]
    presented = present(name)
    code, out = _run(emvtool, presented.reader_index, "info")
    assert code == 0, out
    # the PSE directory (our SFI 1 record 1) and the PPSE, as a contact reader sees them
    pse = out.split("1PAY.SYS.DDF01", 1)[1].split("2PAY.SYS.DDF01", 1)[0]
    assert "File: 1,1" in pse
    assert _spaced(app.aid) in pse
    ours = out.split(f'Application "{app.label}", DF Name: {_spaced(app.aid)}', 1)[1]
    for record in app.records:
        assert f"File: {record.sfi},{record.number}" in ours, f"record {record} not read"
        body = ours.split(f"File: {record.sfi},{record.number}", 1)[1].split("File: ", 1)[0]
        for tag in record.tags:
            assert _tag(tag) in body, f"{_tag(tag)} missing from record {record}"
    assert app.pan in ours  # emvtool decodes 5A (and shows it: it is not our tool)
    assert _spaced(app.data[0x9F32]) in ours  # issuer public key exponent, binary
    # GET DATA of the counters: ATC and last online ATC of a card never used
    assert re.search(r"\batc\s+x\s+0\b", out)
    assert re.search(r"\blast_online_atc\s+x\s+0\b", out)


def test_emvtool_appdata_reads_the_afl_records_of_mastercard(
    emvtool: str, present: Present
) -> None:
    app = load_profile(CARDS / "mastercard-card.json").applications[0]
    presented = present("mastercard-card")
    code, out = _run(emvtool, presented.reader_index, "appdata", "0")
    assert code == 0, out
    assert f'Selected application "{app.label}" ({_spaced(app.aid)})' in out
    options = out.split("Processing Options", 1)[1]
    assert str(list(app.aip)) in options  # emvtool prints AIP and AFL as lists of ints
    assert str(list(app.afl())) in options
    data = out.split("Application Data", 1)[1]
    for record in app.records:
        for tag in record.tags:
            assert _tag(tag) in data


def test_emvtool_appdata_gets_wrong_length_from_visa(
    emvtool: str,
    present: Present,
) -> None:
    """emvtool's GPO carries no PDOL data; our Visa card asked for 33 bytes (TTQ, amount,
    ...) and refuses with 6700 (Book 3 §6.5.8.4), as a qVSDC card does."""
    presented = present("visa-card")
    code, out = _run(emvtool, presented.reader_index, "appdata", "0")
    assert code != 0
    assert 'Selected application "VISA CREDIT"' in out
    assert "67 00" in out
    assert presented.card.counters().atc == 0  # no transaction was started
