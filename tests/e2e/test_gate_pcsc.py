"""The transit gate end to end: ``card serve --via pcsc``
presents a fixture card in a vpcd reader of pcscd, ``terminal gate transit
--reader pcsc:N`` decides, and the real back office (``backoffice``: ``init``,
``gate add``, ``serve`` on a free port) takes the uploads. Every part is a process, as
an operator runs them.

Shown here: a good card opens and its tap reaches the back office once, with track 2
sealed; a card on the back office's deny list is denied; an unknown card over the
first-ride limit is denied; a card pulled away mid-tap is "try again" with nothing
journaled; with the back office down the gate still decides offline and keeps the
taps; and the fault test: ``kill -9`` of the gate right after it signalled open, a
restart, and the tap is in the back office exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from emvwire.profile import load_profile
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.transaction import Transaction
from terminal.readers.emulated import EmulatedReader
from tests.support import e2e

pytestmark = pytest.mark.pcsc

#: The back office's command line (its console script).
BACKOFFICE = [str(e2e.BIN / "backoffice")]


def _env() -> dict[str, str]:
    env = e2e.child_env()
    for name in ("TAPSTACK_SEAL_KEY", "TAPSTACK_GATE_KEY", "TAPSTACK_GATE_ID",
                 "TAPSTACK_BACKOFFICE_URL", "TAPSTACK_GATE_HOME", "TAPSTACK_READER",
                 "TAPSTACK_DEV_PLAIN_HTTP"):  # fmt: skip
        env.pop(name, None)
    return env


@dataclass
class BackOffice:
    home: Path
    url: str

    def run(self, *args: str) -> Any:
        done = subprocess.run(
            [*BACKOFFICE, "--home", str(self.home), *args], env=_env(), capture_output=True,
            text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(done.stdout)

    def gate(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.run("gate", "add", "--name", name, "--json")
        info["url"] = self.url
        return info

    def taps(self, gate_id: str) -> list[tuple[str, str, str | None]]:
        """(tap_id, decision, deny_reason) of a gate's taps the back office holds."""
        from backoffice.store import Home, Store

        with Store(Home(self.home)) as store:
            rows = store.conn.execute(
                "SELECT tap_id, decision, deny_reason FROM taps WHERE gate_id = ? ORDER BY rowid",
                (gate_id,),
            ).fetchall()
        return [tuple(r) for r in rows]

    def deny(self, reference: str) -> None:
        """Put a card on the deny list as the engine does after a decline."""
        from backoffice.store import Home, Store

        with Store(Home(self.home)) as store, store.write() as conn:
            store.deny_add(conn, [reference], reason="e2e", rider_id=None, aggregation_id=None)


@pytest.fixture(scope="module")
def backoffice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackOffice]:
    home = tmp_path_factory.mktemp("backoffice") / "home"
    subprocess.run([*BACKOFFICE, "--home", str(home), "init", "--json"], env=_env(),
                   capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    server = subprocess.Popen(
        [*BACKOFFICE, "--home", str(home), "serve", "--bind", "127.0.0.1:0", "--no-engine"],
        env=_env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        assert "listening on https://" in line, line
        yield BackOffice(home, line.split("listening on ")[1].strip())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if server.stderr is not None:
            server.stderr.close()


def _reference(name: str) -> str:
    """The card reference the gate will compute for fixture ``name`` (kernel in process)."""
    card = EmvCard(load_profile(e2e.CARDS / f"{name}.json"))
    reader = EmulatedReader(card, path="emulated:e2e")
    return EntryPoint(default_config()).run(reader, Transaction(100)).card_reference


def _card(name: str, number: int, taps: int, *faults: str) -> e2e.ServedCard:
    """``card serve`` presenting fixture ``name`` for ``taps`` taps in vpcd reader
    ``number``; each tap ends 0.3 s after the card's last answer (the rider walks on)."""
    return e2e.ServedCard(e2e.CARDS / f"{name}.json", taps, "--no-persist", "--idle-timeout", "0.3",
                      "--json", *faults, reader=number, env=_env(), presenting=False,
                      settle=0)  # fmt: skip


def _gate_args(home: Path, number: int, gate: dict[str, Any], *extra: str) -> list[str]:
    """The gate's command line, with its certificate (a later ``--backoffice`` in
    ``extra`` wins)."""
    cert = gate["certificate"]
    return [str(e2e.BIN / "terminal"), "gate", "transit", "--reader", f"pcsc:{number}",
            "--home", str(home), "--gate-id", gate["gate_id"], "--gate-key", gate["key"],
            "--seal-key", gate["sealing_public_key"], "--backoffice", gate["url"],
            "--backoffice-ca", cert["backoffice_ca_file"], "--cert", cert["cert_file"],
            "--cert-key", cert["key_file"], "--timeout", "20", "--json", *extra]  # fmt: skip


def _tap_run(
    home: Path,
    gate: dict[str, Any],
    card: str,
    taps: int,
    *extra: str,
    faults: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str], str]:
    """Serve ``taps`` taps of ``card`` and run the gate for them: its JSON lines, the
    finished gate process and everything the card process printed."""
    number = e2e.free_vpcd_reader()
    served = _card(card, number, taps, *faults)
    try:
        gate_run = subprocess.run(
            _gate_args(home, number, gate, "--taps", str(taps), *extra),
            env=_env(), capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    finally:
        card_out, card_err = served.finish()
    lines = [json.loads(line) for line in gate_run.stdout.splitlines()]
    return lines, gate_run, card_out + card_err


def _journal(home: Path) -> list[dict[str, Any]]:
    path = home / "journal" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _cursor(home: Path) -> int:
    path = home / "journal" / "cursor.json"
    return int(json.loads(path.read_text())["acknowledged"]) if path.exists() else 0


def _no_leaks(texts: list[str], card: str) -> None:
    e2e.assert_no_secrets(texts, e2e.card_secrets(e2e.CARDS / f"{card}.json"))


def test_a_good_card_opens_and_its_tap_reaches_the_back_office_once(
    pcscd: str, backoffice: BackOffice, tmp_path: Path
) -> None:
    gate = backoffice.gate("good")
    home = tmp_path / "gate"
    lines, run, card_text = _tap_run(home, gate, "mastercard-card", 1)
    assert run.returncode == 0, run.stderr
    (tap,) = lines
    assert (tap["decision"], tap["reason"]) == ("open", None)
    assert tap["masked_pan"] == "541333******1034"
    assert tap["tap_id"] == f"{gate['gate_id']}:1"
    assert 0 < tap["ms"] < 10_000
    assert backoffice.taps(gate["gate_id"]) == [(tap["tap_id"], "open", None)]
    assert _cursor(home) == 1
    (record,) = _journal(home)
    assert record["oda"] == "passed"
    assert len(record["track2_sealed"]) > 120
    journal_text = (home / "journal" / "journal.jsonl").read_text()
    _no_leaks([run.stdout, run.stderr, card_text, journal_text], "mastercard-card")


def test_a_card_on_the_back_offices_deny_list_is_denied(
    pcscd: str, backoffice: BackOffice, tmp_path: Path
) -> None:
    gate = backoffice.gate("deny")
    backoffice.deny(_reference("visa-phone"))
    home = tmp_path / "gate"
    lines, run, _ = _tap_run(home, gate, "visa-phone", 1)
    assert run.returncode == 0, run.stderr
    assert [(t["decision"], t["reason"]) for t in lines] == [("deny", "deny_list")]
    assert backoffice.taps(gate["gate_id"]) == [(lines[0]["tap_id"], "deny", "deny_list")]
    # The list is on disk: restarted with the back office unreachable, the gate still denies.
    number = e2e.free_vpcd_reader()
    served = _card("visa-phone", number, 1)
    try:
        offline = subprocess.run(
            _gate_args(home, number, gate, "--taps", "1", "--backoffice", "https://127.0.0.1:9",
                       "--drain", "0"),
            env=_env(), capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    finally:
        served.finish()
    assert json.loads(offline.stdout)["reason"] == "deny_list", offline.stderr
    assert "deny list not refreshed" in offline.stderr


def test_with_the_back_office_down_the_gate_decides_offline_within_the_first_ride_limit(
    pcscd: str, backoffice: BackOffice, tmp_path: Path
) -> None:
    gate = backoffice.gate("offline")
    home = tmp_path / "gate"
    lines, run, _ = _tap_run(
        home, gate, "visa-card", 2, "--backoffice", "https://127.0.0.1:9", "--drain", "0",
        "--first-ride-limit", "1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [(t["decision"], t["reason"]) for t in lines] == [
        ("open", None), ("deny", "first_ride_limit"),
    ]  # fmt: skip
    assert "2 taps not uploaded yet" in run.stderr
    assert [r["decision"] for r in _journal(home)] == ["open", "deny"]
    assert _cursor(home) == 0
    assert backoffice.taps(gate["gate_id"]) == []


def test_a_card_pulled_away_mid_tap_is_try_again_and_nothing_is_journaled(
    pcscd: str, backoffice: BackOffice, tmp_path: Path
) -> None:
    gate = backoffice.gate("pulled")
    home = tmp_path / "gate"
    lines, run, card_text = _tap_run(home, gate, "visa-card", 1, faults=("--pull-after", "2"))
    assert run.returncode == 0, run.stderr
    assert [(t["decision"], t["reason"], t["tap_id"]) for t in lines] == [
        ("retry", "try_again", None)
    ]
    assert _journal(home) == []
    assert backoffice.taps(gate["gate_id"]) == []
    _no_leaks([run.stdout, run.stderr, card_text], "visa-card")


def test_kill_9_right_after_open_then_restart_uploads_the_tap_exactly_once(
    pcscd: str, backoffice: BackOffice, tmp_path: Path
) -> None:
    gate = backoffice.gate("fault")
    home = tmp_path / "gate"
    number = e2e.free_vpcd_reader()
    served = _card("mastercard-phone", number, 1)
    victim = subprocess.Popen(
        _gate_args(home, number, gate, "--taps", "5"), env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert victim.stdout is not None
        line = victim.stdout.readline()  # printed right after the open signal
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
        _, err = victim.communicate()
        served.finish()
    assert victim.returncode == -signal.SIGKILL
    first = json.loads(line)
    assert first["decision"] == "open", err
    # On disk: the tap, written before the signal; uploaded or not, the crash decides.
    assert [r["tap_id"] for r in _journal(home)] == [first["tap_id"]]
    # Restart: one more tap, then the gate drains its uploads and stops.
    lines, run, _ = _tap_run(home, gate, "mastercard-phone", 1)
    assert run.returncode == 0, run.stderr
    assert [t["tap_id"] for t in lines] == [f"{gate['gate_id']}:2"]
    assert backoffice.taps(gate["gate_id"]) == [
        (first["tap_id"], "open", None),
        (lines[0]["tap_id"], "open", None),
    ]
    assert _cursor(home) == 2
