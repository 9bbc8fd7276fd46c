"""The ``card`` command: ``show`` (masked, KCVs only), ``serve`` over vpcd and nfcpy, bad input.

``serve --via pcsc`` is driven three ways: by a fake vpcd in this process (the reader
side of the vpcd protocol on a free port: fast, no service needed, every tap ending
checked), by a real pcscd read through pyscard (marked ``pcsc``), and ``--via nfc`` by
nfcpy's own reader on its udp frontend.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import card.cli
from card.cli import cli
from card.emv import EmvCard
from card.nfc import wait_listening
from card.probe import CardProbe
from card.vpcd import REMOVAL_GAP
from emvwire.apdu import select
from emvwire.crypto import kcv
from emvwire.crypto.sm import kcv_sm4
from emvwire.mask import mask_pan
from emvwire.profile import CardProfile, load_profile
from tests.support.e2e import free_vpcd_reader, reader_name

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "fixtures" / "cards"
NAMES = ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")
#: The second vpcd reader: test_vpcd and other suites use the first.


def _profile(name: str) -> CardProfile:
    return load_profile(CARDS / f"{name}.json")


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def _secrets(profile: CardProfile) -> list[str]:
    """Strings that must never appear in output: full PANs and every key, any case."""
    out: list[str] = []
    for app in profile.applications:
        out.append(app.pan)
        for key in (app.keys.ac, app.keys.smi, app.keys.smc):
            out += [key.hex().upper(), key.hex()]
        if app.rsa is not None:
            out += ["PRIVATE KEY", app.rsa.pem.decode().splitlines()[1]]
    return out


# --- help ----------------------------------------------------------------------------


def test_help_everywhere() -> None:
    top = _invoke("--help")
    assert top.exit_code == 0
    assert "serve" in top.output
    assert "show" in top.output
    serve = _invoke("serve", "--help")
    assert serve.exit_code == 0
    for option in ("--via", "--reader", "--taps", "--pull-after", "--wrong-sw", "--json"):
        assert option in serve.output
    show = _invoke("show", "-h")
    assert show.exit_code == 0
    assert "--reveal" in show.output


def test_python_dash_m_card_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "card", "show", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "Usage: python -m card show" in done.stdout or "Usage: card show" in done.stdout


# --- show ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_show_masks_the_pan_and_gives_only_kcvs(name: str) -> None:
    profile = _profile(name)
    result = _invoke("show", str(CARDS / f"{name}.json"))
    assert result.exit_code == 0, result.output
    for secret in _secrets(profile):
        assert secret not in result.output
    app = profile.applications[0]
    assert mask_pan(app.pan) in result.output
    assert app.aid.hex().upper() in result.output
    assert app.label in result.output
    assert f"CVN {app.cvn}" in result.output
    for key in (app.keys.ac, app.keys.smi, app.keys.smc):
        assert f"KCV {kcv(key).hex().upper()}" in result.output
    # records with their tag names, and the data objects only the GPO carries
    assert "Application Primary Account Number (PAN)" in result.output
    assert "Track 2 Equivalent Data" in result.output
    assert "counters: ATC 0000" in result.output


def test_show_gives_the_kcv_of_sm4_keys_by_sm4() -> None:
    """The UnionPay phone's keys are SM4 (CVN 04): their check values are SM4's."""
    result = _invoke("show", str(CARDS / "unionpay-phone.json"), "--json")
    assert result.exit_code == 0, result.output
    (app,) = json.loads(result.output)["applications"]
    keys = _profile("unionpay-phone").applications[0].keys
    assert app["keys"]["ac"] == {"algorithm": "SM4", "kcv": kcv_sm4(keys.ac).hex().upper()}
    assert app["pan"] == "625801******0013"


def test_show_names_the_sm2_key_of_the_sm_suite_card_never_its_value() -> None:
    profile = _profile("unionpay-sm-card")
    sm2 = profile.applications[0].sm2
    assert sm2 is not None
    result = _invoke("show", str(CARDS / "unionpay-sm-card.json"), "--json")
    assert result.exit_code == 0, result.output
    (app,) = json.loads(result.output)["applications"]
    assert app["icc_rsa_key"] is None
    assert app["icc_sm2_key"]["curve"] == "sm2p256v1"
    assert sm2.private.hex() not in result.output.lower()
    text = _invoke("show", str(CARDS / "unionpay-sm-card.json"))
    assert "ICC SM2 key: sm2p256v1" in text.output


def test_show_json_is_complete_and_masked() -> None:
    profile = _profile("mastercard-phone")
    result = _invoke("show", str(CARDS / "mastercard-phone.json"), "--json")
    assert result.exit_code == 0, result.output
    for secret in _secrets(profile):
        assert secret not in result.output
    info = json.loads(result.output)
    (app,) = info["applications"]
    assert app["pan"] == "520474******1002"
    assert app["expiry"] == "2030-12-31"
    assert app["afl"] == profile.applications[0].afl().hex().upper()
    assert set(app["keys"]) == {"ac", "smi", "smc"}
    assert app["keys"]["ac"] == {"algorithm": "TDES", "kcv": "5516EB"}
    assert app["icc_rsa_key"] == {"bits": 1024, "exponent": 65537}
    assert app["token"]["pan_last4"] == "1034"
    records = {(r["sfi"], r["record"]): r for r in app["records"]}
    assert [r.sfi for r in profile.applications[0].records] == [k[0] for k in records]
    objects = {o["tag"]: o for r in app["records"] for o in r["objects"]}
    assert objects["5A"]["masked"]
    assert objects["5A"]["value"] == "520474******1002"
    assert objects["57"]["value"].startswith("520474******1002D")
    assert set(objects["57"]["value"][17:]) == {"*"}
    assert objects["5F20"]["masked"]
    assert objects["8C"]["name"] == "Card Risk Management Data Object List 1 (CDOL1)"
    assert not objects["8C"]["masked"]
    assert info["counters_from"] == "profile"


def test_show_reveal_unmasks_pan_and_track2_only() -> None:
    profile = _profile("visa-card")
    app = profile.applications[0]
    result = _invoke("show", str(CARDS / "visa-card.json"), "--reveal", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)["applications"][0]
    assert info["pan"] == app.pan
    other = {o["tag"]: o for o in info["other_data"]}
    assert other["57"]["value"] == app.data[0x57].hex().upper()
    assert other["5F20"]["masked"]  # the cardholder name stays hidden
    assert app.data[0x5F20].decode() not in result.output
    for secret in _secrets(profile)[1:]:  # keys stay out even with --reveal
        assert secret not in result.output


def test_show_reads_counters_from_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "card.state.json"
    card = EmvCard(_profile("visa-card"), state_path=state)
    for _ in range(3):
        card.power_on()
        CardProbe(card).tap()
    result = _invoke("show", str(CARDS / "visa-card.json"), "--state", str(state))
    assert result.exit_code == 0, result.output
    assert "counters: ATC 0003" in result.output
    assert f"counters from: {state}" in result.output


# --- bad input -----------------------------------------------------------------------


def _assert_usage_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output


@pytest.mark.parametrize("extra", [("show",), ("serve", "--via", "pcsc")])
def test_a_missing_profile_is_a_usage_error(extra: tuple[str, ...], tmp_path: Path) -> None:
    result = _invoke(extra[0], str(tmp_path / "nope.json"), *extra[1:])
    _assert_usage_error(result, "nope.json", "does not exist")


@pytest.mark.parametrize("command", ["show", "serve"])
def test_malformed_json_names_the_file_and_line(command: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "tapstack.card-profile/1",\n  "name": }\n')
    extra = ["--via", "nfc"] if command == "serve" else []
    result = _invoke(command, str(bad), *extra)
    _assert_usage_error(result, "bad.json", "is not JSON: line 2")


def test_an_invalid_profile_names_the_path_inside(tmp_path: Path) -> None:
    obj = json.loads((CARDS / "visa-card.json").read_text())
    obj["applications"][0]["keys"]["ac"] = "00" * 15
    bad = tmp_path / "short-key.json"
    bad.write_text(json.dumps(obj))
    result = _invoke("serve", str(bad), "--via", "pcsc", "--no-persist")
    _assert_usage_error(result, "applications[0].keys.ac")
    assert "00" * 15 not in result.output


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--wrong-sw", "A8", "expected INS=SW"),
        ("--wrong-sw", "A8=69", "4 hex digits"),
        ("--wrong-sw", "ZZ=6985", "expected INS=SW"),
        ("--wrong-sw", "A8=1234", "SW1 must be"),
        ("--wrong-sw", "A8=69850", "4 hex digits"),
        ("--corrupt", "B2=explode", "truncate or garble"),
        ("--corrupt", "B=truncate", "expected INS="),
        ("--pull-after", "-1", "x>=0"),
        ("--atc-rollback", "70000", "0<=x<=65535"),
    ],
)
def test_bad_fault_options_are_usage_errors(option: str, value: str, why: str) -> None:
    result = _invoke("serve", str(CARDS / "visa-card.json"), "--via", "pcsc", option, value)
    _assert_usage_error(result, option, why)


def test_conflicting_options_are_usage_errors(tmp_path: Path) -> None:
    profile = str(CARDS / "visa-card.json")
    both = _invoke(
        "serve", profile, "--via", "pcsc", "--state", str(tmp_path / "s"), "--no-persist"
    )
    _assert_usage_error(both, "--state and --no-persist")
    reader = _invoke("serve", profile, "--via", "nfc", "--reader", "1", "--no-persist")
    _assert_usage_error(reader, "--reader is for --via pcsc")
    _assert_usage_error(_invoke("serve", profile), "--via")


def test_a_malformed_state_file_is_a_usage_error(tmp_path: Path) -> None:
    state = tmp_path / "broken.state.json"
    state.write_text("{not json")
    profile = str(CARDS / "visa-card.json")
    for args in (("serve", profile, "--via", "pcsc"), ("show", profile)):
        _assert_usage_error(_invoke(*args, "--state", str(state)), "--state", "not JSON")


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_vpcd_not_listening_says_what_to_start() -> None:
    port = _free_port(socket.SOCK_STREAM)
    result = _invoke(
        "serve", str(CARDS / "visa-card.json"), "--via", "pcsc", "--port", str(port), "--no-persist"
    )
    assert result.exit_code == 9  # reader
    assert "vpcd is not listening" in result.output
    assert "is pcscd with vsmartcard-vpcd running?" in result.output
    assert "Traceback" not in result.output


def test_a_busy_udp_port_is_reported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 0))  # where nfcpy's card would bind
        port = taken.getsockname()[1]
        result = _invoke(
            "serve", str(CARDS / "visa-card.json"), "--via", "nfc", "--port", str(port),
            "--no-persist",
        )  # fmt: skip
    assert result.exit_code == 9
    assert f"udp port {port} is busy" in result.output


# --- serve over a fake vpcd ----------------------------------------------------------

POWER_OFF, POWER_ON, RESET, GET_ATR = b"\x00", b"\x01", b"\x02", b"\x04"


class CardGone(Exception):  # noqa: N818 - what a reader sees: the card left
    """The card closed its connection instead of answering."""


class Slot:
    """The vpcd side of one presented card: what pcscd asks through vpcd."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">H", len(payload)) + payload)

    def recv(self) -> bytes | None:
        head = self._exact(2)
        if head is None:
            return None
        return self._exact(struct.unpack(">H", head)[0])

    def _exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def atr(self) -> bytes | None:
        self.send(GET_ATR)
        return self.recv()

    def process(self, c_apdu: bytes) -> bytes:
        """One APDU (so that card.probe.CardProbe can drive the card through vpcd)."""
        self.send(c_apdu)
        answer = self.recv()
        if answer is None:
            raise CardGone("the card was removed")
        return answer

    def closed(self) -> bool:
        return self.recv() is None


class FakeVpcd:
    """A listening vpcd port; ``run(script)`` drives presented cards in a thread."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.port: int = self.server.getsockname()[1]
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.slots: list[Slot] = []

    def accept(self) -> Slot:
        sock, _ = self.server.accept()
        self.slots.append(Slot(sock))
        return self.slots[-1]

    def run(self, script: Callable[[FakeVpcd], None]) -> None:
        def body() -> None:
            try:
                script(self)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        for slot in self.slots:
            slot.sock.close()
        self.server.close()


@pytest.fixture
def vpcd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVpcd]:
    monkeypatch.setattr(card.cli, "_REMOVAL_GAP", 0.01)
    monkeypatch.setattr(card.cli, "_BUSY_TIMEOUT", 1.0)
    fake = FakeVpcd()
    yield fake
    fake.close()


def _json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_two_taps_power_off_ends_one_pull_after_the_other(vpcd: FakeVpcd, tmp_path: Path) -> None:
    profile = _profile("visa-card")
    aid = profile.applications[0].aid
    seen: dict[str, Any] = {}

    def reader(fake: FakeVpcd) -> None:
        slot = fake.accept()
        seen["atr"] = slot.atr()
        # pcscd powering an unused card up and down: no C-APDU yet, no tap
        slot.send(POWER_ON)
        slot.send(POWER_OFF)
        slot.send(POWER_ON)
        seen["tap1"] = CardProbe(slot).tap()  # 7 C-APDUs: PPSE, SELECT, GPO, 4 records
        slot.send(POWER_OFF)  # the PC/SC client let go of the card
        seen["removed1"] = slot.closed()
        slot = fake.accept()  # presented again
        slot.atr()
        slot.send(POWER_ON)
        probe = CardProbe(slot)
        probe.select_ppse()
        probe.expect(select(aid))
        seen["atc_before"] = probe.get_data(0x9F36)  # the counter survived the removal
        try:
            probe.tap()  # C-APDUs 4 to 8: the 8th is never answered (pull after 7)
        except CardGone:
            seen["pulled"] = True

    vpcd.run(reader)
    state = tmp_path / "visa.state.json"
    result = _invoke(
        "serve", str(CARDS / "visa-card.json"), "--via", "pcsc", "--port", str(vpcd.port),
        "--taps", "2", "--state", str(state), "--pull-after", "7", "--json",
    )  # fmt: skip
    vpcd.join()
    assert result.exit_code == 0, result.output
    assert seen["atr"] == profile.atr
    assert len(seen["tap1"].records) == 4
    assert seen["removed1"]
    assert seen["atc_before"] == b"\x00\x01"
    assert seen["pulled"]
    taps = _json_lines(result)
    assert [(t["tap"], t["apdus"], t["end"], t["atc"]) for t in taps] == [
        (1, 7, "powered off", 1),
        (2, 7, "pulled away", 2),
    ]
    assert {t["aid"] for t in taps} == {aid.hex().upper()}
    assert "tap 1: 7 APDUs, ATC 0001, VISA CREDIT, powered off" in result.stderr
    assert "tap 2: 7 APDUs, ATC 0002, VISA CREDIT, pulled away" in result.stderr
    counters = json.loads(state.read_text())["applications"][aid.hex().upper()]
    assert counters["atc"] == 2
    assert profile.applications[0].pan not in result.output


def test_idle_timeout_ends_a_tap(vpcd: FakeVpcd) -> None:
    seen: dict[str, Any] = {}

    def reader(fake: FakeVpcd) -> None:
        slot = fake.accept()
        slot.send(POWER_ON)
        CardProbe(slot).select_ppse()
        started = time.monotonic()
        seen["removed"] = slot.closed()  # the client holds the card but sends nothing
        seen["after"] = time.monotonic() - started

    vpcd.run(reader)
    result = _invoke(
        "serve", str(CARDS / "mastercard-card.json"), "--via", "pcsc", "--port",
        str(vpcd.port), "--taps", "1", "--no-persist", "--idle-timeout", "0.2", "--json",
    )  # fmt: skip
    vpcd.join()
    assert result.exit_code == 0, result.output
    assert seen["removed"]
    assert 0.15 < seen["after"] < 5
    (tap,) = _json_lines(result)
    assert (tap["apdus"], tap["end"], tap["aid"]) == (1, "idle", None)


def test_fault_options_override_the_profile(vpcd: FakeVpcd, tmp_path: Path) -> None:
    obj = json.loads((CARDS / "visa-card.json").read_text())
    obj["faults"] = {"wrong_sw": {"B2": "6A82"}, "pull_after": 1}
    faulty = tmp_path / "faulty.json"
    faulty.write_text(json.dumps(obj))
    aid = bytes.fromhex(obj["applications"][0]["aid"])
    answers: list[bytes] = []

    def reader(fake: FakeVpcd) -> None:
        slot = fake.accept()
        slot.send(POWER_ON)
        for apdu in (select("2PAY.SYS.DDF01"), select(aid)):
            answers.append(slot.process(apdu.encode())[-2:])
        answers.append(slot.process(bytes.fromhex("80A8000002830000"))[-2:])  # GPO
        answers.append(slot.process(bytes.fromhex("00B2011400"))[-2:])  # READ RECORD
        slot.send(POWER_OFF)
        assert slot.closed()

    vpcd.run(reader)
    result = _invoke(
        "serve", str(faulty), "--via", "pcsc", "--port", str(vpcd.port), "--taps", "1",
        "--no-persist", "--pull-after", "10", "--wrong-sw", "A8=6985",
    )  # fmt: skip
    vpcd.join()
    assert result.exit_code == 0, result.output
    # the profile's pull_after 1 is overridden; its wrong_sw for B2 stays beside A8's
    assert answers == [b"\x90\x00", b"\x90\x00", b"\x69\x85", b"\x6a\x82"]
    assert "pull after 10 APDUs, INS A8 -> 6985, INS B2 -> 6A82" in result.stderr


def _one_tap(fake: FakeVpcd) -> None:
    """The reader side of one full tap, then the client lets go of the card."""
    slot = fake.accept()
    slot.send(POWER_ON)
    CardProbe(slot).tap()
    slot.send(POWER_OFF)
    assert slot.closed()


def test_serve_keeps_counters_in_the_state_folder_not_beside_the_fixture(
    vpcd: FakeVpcd, card_state_dir: Path, tmp_path: Path
) -> None:
    profile = str(CARDS / "visa-card.json")
    beside = sorted(CARDS.iterdir())
    args = ("serve", profile, "--via", "pcsc", "--port", str(vpcd.port), "--taps", "1", "--json")
    atcs = []
    for _ in range(2):  # two runs of the command: the ATC counts on
        vpcd.run(_one_tap)
        result = _invoke(*args)
        vpcd.join()
        assert result.exit_code == 0, result.output
        atcs += [t["atc"] for t in _json_lines(result)]
    assert atcs == [1, 2]
    assert sorted(CARDS.iterdir()) == beside
    (state,) = card_state_dir.iterdir()
    assert f"counters: {state}" in result.stderr
    shown = _invoke("show", profile)
    assert shown.exit_code == 0, shown.output
    assert "counters: ATC 0002" in shown.output
    assert f"counters from: {state}" in shown.output
    # --state-dir names another folder: another set of counters
    elsewhere = tmp_path / "elsewhere"
    vpcd.run(_one_tap)
    result = _invoke(*args, "--state-dir", str(elsewhere))
    vpcd.join()
    assert result.exit_code == 0, result.output
    assert [t["atc"] for t in _json_lines(result)] == [1]
    assert [p.name for p in elsewhere.iterdir()] == [state.name]
    assert "counters: ATC 0001" in _invoke("show", profile, "--state-dir", str(elsewhere)).output


def test_the_state_folder_is_in_the_help_and_excludes_other_counter_options(
    tmp_path: Path,
) -> None:
    for command in ("serve", "show"):
        text = " ".join(_invoke(command, "--help").output.split())
        assert "$TAPSTACK_STATE_DIR, else $XDG_STATE_HOME/tapstack/cards, else" in text
        assert "~/.local/state/tapstack/cards" in text
    profile = str(CARDS / "visa-card.json")
    folder = str(tmp_path / "s")
    for extra in (("--state", str(tmp_path / "f")), ("--no-persist",)):
        result = _invoke("serve", profile, "--via", "pcsc", "--state-dir", folder, *extra)
        _assert_usage_error(result, "--state-dir goes with neither")
    result = _invoke("show", profile, "--state-dir", folder, "--state", str(tmp_path / "f"))
    _assert_usage_error(result, "--state and --state-dir exclude each other")


def test_an_unusable_state_folder_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _invoke(
        "serve", str(CARDS / "visa-card.json"), "--via", "pcsc", "--port", "1",
        "--state-dir", str(blocker / "cards"),
    )  # fmt: skip
    assert result.exit_code == 11  # storage
    assert "cannot make the counters folder" in result.output
    assert "Traceback" not in result.output


def test_a_busy_vpcd_reader_is_reported(vpcd: FakeVpcd) -> None:
    # vpcd holds a second card in its listen queue and never speaks to it
    result = _invoke(
        "serve", str(CARDS / "visa-card.json"), "--via", "pcsc", "--port", str(vpcd.port),
        "--no-persist",
    )  # fmt: skip
    assert result.exit_code == 9
    assert f"the vpcd reader on port {vpcd.port} is busy" in result.output


# --- serve in a process: signals ------------------------------------------------------


@contextmanager
def _serve_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m card serve ARGS``, killed (pipes closed) if still running at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "card", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _finish(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"card serve did not finish: {err}") from None


def test_sigint_stops_a_pcsc_card_cleanly() -> None:
    fake = FakeVpcd()
    args = ("--via", "pcsc", "--port", str(fake.port), "--no-persist")
    try:
        with _serve_process(str(CARDS / "visa-card.json"), *args) as proc:
            slot = fake.accept()
            assert slot.atr() == _profile("visa-card").atr
            proc.send_signal(signal.SIGINT)
            assert slot.closed()  # the card left the reader
            out, err = _finish(proc)
    finally:
        fake.close()
    assert proc.returncode == 0, err
    assert "stopped after 0 taps" in err
    assert "Traceback" not in err
    assert out == ""


def test_sigterm_stops_an_nfc_card_cleanly() -> None:
    port = _free_port(socket.SOCK_DGRAM)
    args = ("--via", "nfc", "--port", str(port), "--no-persist")
    with _serve_process(str(CARDS / "visa-card.json"), *args) as proc:
        assert wait_listening(f"udp:127.0.0.1:{port}", timeout=20)
        proc.send_signal(signal.SIGTERM)
        _, err = _finish(proc)
    assert proc.returncode == 0, err
    assert "stopped after 0 taps" in err
    assert "Traceback" not in err


# --- serve in a process, read by pyscard through pcscd ---------------------------------


@pytest.fixture
def vpcd_reader(pcscd: str) -> int:
    """The number of this test process's vpcd reader of the running pcscd, empty."""
    return free_vpcd_reader()


class PyscardCard:
    """A card seen through pyscard, shaped for card.probe.CardProbe."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def process(self, c_apdu: bytes) -> bytes:
        data, sw1, sw2 = self.connection.transmit(list(c_apdu))
        return bytes(data) + bytes((sw1, sw2))


def _connect_when_present(name: str, timeout: float = 10.0) -> Any:
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.System import readers

    reader = next(r for r in readers() if str(r) == name)
    deadline = time.monotonic() + timeout
    while True:
        connection = reader.createConnection()
        try:
            connection.connect()
            return connection
        except (NoCardException, CardConnectionException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.pcsc
def test_serve_pcsc_two_taps_read_by_pyscard(vpcd_reader: int, tmp_path: Path) -> None:
    from smartcard.Exceptions import CardConnectionException

    profile = _profile("visa-card")
    aid = profile.applications[0].aid
    state = tmp_path / "visa.state.json"
    with _serve_process(
        str(CARDS / "visa-card.json"), "--via", "pcsc", "--reader", str(vpcd_reader),
        "--taps", "2", "--state", str(state), "--pull-after", "10", "--json",
    ) as proc:  # fmt: skip
        name = reader_name(vpcd_reader)
        conn = _connect_when_present(name)
        assert bytes(conn.getATR()) == profile.atr
        probe = CardProbe(PyscardCard(conn))
        probe.select_ppse()
        probe.expect(select(aid))
        if probe.get_data(0x9F36) != b"\x00\x00":  # a fresh state file: ATC 0
            pytest.fail(f"another card is in {name!r}: is another suite using it?")
        tap = probe.tap()  # 10 C-APDUs in all: PPSE, SELECT, GET DATA, PPSE, ..., 4 records
        assert tap.aid == aid
        assert len(tap.records) == 4
        assert tap.data[0x9F36] == b"\x00\x01"
        conn.disconnect()  # pcscd powers the card down: the tap is over
        conn = _connect_when_present(name)
        probe = CardProbe(PyscardCard(conn))
        probe.select_ppse()
        probe.expect(select(aid))
        assert probe.get_data(0x9F36) == b"\x00\x01"  # the counter outlived the removal
        assert probe.get_data(0x9F13) == b"\x00\x00"
        with pytest.raises(CardConnectionException):
            probe.tap()  # the 11th C-APDU of this tap: the card has left the reader
        conn.disconnect()
        out, err = _finish(proc)
    # The card left during a command: pcscd's event handler sees it gone at its next
    # poll only. Leave the shared reader settled for whoever presents a card next.
    time.sleep(REMOVAL_GAP)
    assert proc.returncode == 0, err
    taps = [json.loads(line) for line in out.splitlines()]
    assert [(t["apdus"], t["end"], t["atc"]) for t in taps] == [
        (10, "powered off", 1),
        (10, "pulled away", 2),
    ]
    assert json.loads(state.read_text())["applications"][aid.hex().upper()]["atc"] == 2
    assert profile.applications[0].pan not in out + err


# --- serve in a process, read by nfcpy --------------------------------------------------


class NfcpyCard:
    """A Type 4A tag seen through nfcpy, shaped for card.probe.CardProbe."""

    def __init__(self, tag: Any) -> None:
        self.tag = tag

    def process(self, c_apdu: bytes) -> bytes:
        return bytes(self.tag.transceive(bytearray(c_apdu)))


def test_serve_nfc_two_taps_read_by_nfcpy(tmp_path: Path) -> None:
    import nfc

    profile = _profile("mastercard-card")
    aid = profile.applications[0].aid
    port = _free_port(socket.SOCK_DGRAM)
    path = f"udp:127.0.0.1:{port}"
    state = tmp_path / "mc.state.json"
    clf = None
    with _serve_process(
        str(CARDS / "mastercard-card.json"), "--via", "nfc", "--port", str(port), "--taps", "2",
        "--state", str(state), "--json",
    ) as proc:  # fmt: skip
        clf = nfc.ContactlessFrontend(path)
        for number in (1, 2):
            assert wait_listening(path, timeout=20)
            deadline = time.monotonic() + 10
            tag = clf.connect(
                rdwr={"targets": ["106A"], "on-connect": lambda tag: False, "iterations": 1},
                terminate=lambda end=deadline: time.monotonic() > end,
            )
            assert isinstance(tag, nfc.tag.tt4.Type4ATag)
            tap = CardProbe(NfcpyCard(tag)).tap()
            assert tap.aid == aid
            assert tap.data[0x9F36] == number.to_bytes(2, "big")
            assert tap.data[0x9F27] in (b"\x80", b"\x40")  # a cryptogram came back
            clf.device.mute()  # field off: the tap ends
        out, err = _finish(proc)
        clf.close()
    assert proc.returncode == 0, err
    taps = [json.loads(line) for line in out.splitlines()]
    assert [(t["tap"], t["via"], t["end"], t["atc"]) for t in taps] == [
        (1, "nfc", "field off", 1),
        (2, "nfc", "field off", 2),
    ]
    assert all(t["apdus"] >= 8 for t in taps)  # PPSE, SELECT, GPO, 4 records, ERRD?, GEN AC
    assert json.loads(state.read_text())["applications"][aid.hex().upper()]["atc"] == 2
