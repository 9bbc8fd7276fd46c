"""The back office past one machine, with real NATS and real PostgreSQL: two back
office instances (``backoffice consume`` processes) share one durable consumer and one
database while three gates publish; one instance is killed (SIGKILL) mid-stream, one
gate restarts having lost its upload cursor, and one gate's link to NATS is cut for a
while. Every tap is stored once, and two engines aggregating at once on PostgreSQL
charge the same trips, fares and completions as one engine on SQLite given the same
taps.

NATS is a service shared by everyone on the machine, so it is not restarted: a lost
connection is made instead by cutting a TCP proxy between one gate and NATS
(:class:`tests.support.proxy.CuttableProxy`), the case a restart presents to a client.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from backoffice.engine import Engine
from backoffice.store import Home, Store
from terminal.apps.journal import Journal
from terminal.apps.stream import JetStreamLink, TapPublisher
from tests.backoffice.databases import home_args, postgres_home_url
from tests.backoffice.streams import (
    LockedIssuer,
    journal_of,
    new_operator,
    remove_operator,
    set_up_operator,
    wait_for,
)
from tests.backoffice.taps import plain_tap
from tests.support.e2e import BIN
from tests.support.proxy import CuttableProxy

START = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
GATES = {"G1": ("single", None), "G2": ("on", "1"), "G3": ("off", "2")}
PANS = [f"47617390010{n:05d}" for n in range(40)]
DECLINED = {PANS[7]}


def _taps(public_key: bytes) -> dict[str, list[dict[str, Any]]]:
    """Two travel days of journeys: flat fares at G1, zone 1 to zone 2 (on at G2, off
    at G3); each gate's taps in time order, numbered as its journal numbers them. No
    two taps at the same millisecond (a card's taps are ordered by their time)."""
    rng = random.Random(16)
    events: list[tuple[datetime, str, str]] = []
    for offset in rng.sample(range(2 * 15 * 3600 * 1000), 600):
        day, ms = divmod(offset, 15 * 3600 * 1000)
        when = START + timedelta(days=day, milliseconds=ms)
        pan = rng.choice(PANS)
        if rng.random() < 0.6:
            events.append((when, "G1", pan))
        else:
            events += [(when, "G2", pan), (when + timedelta(minutes=25), "G3", pan)]
    events.sort()
    taps: dict[str, list[dict[str, Any]]] = {gate: [] for gate in GATES}
    for when, gate, pan in events:
        direction, zone = GATES[gate]
        seq = len(taps[gate]) + 1
        taps[gate].append(plain_tap(public_key, gate, seq, when, pan=pan,
                                    direction=direction, zone=zone))  # fmt: skip
    return taps


def _consume(home: Home, nats_url: str, operator: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(BIN / "backoffice"), *home_args(home), "consume", "--nats", nats_url,
         "--operator", operator, "--dev-plain-http", "--no-engine", "--batch", "20"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "backoffice consuming" in line, line
    return proc


def _outcome(store: Store) -> dict[str, Any]:
    """What was charged, independent of ids: trips by their taps, aggregations by the
    card and day, taps by id."""
    q = store.conn.execute
    trips = sorted(
        tuple(r)
        for r in q(
            "SELECT on_tap, off_tap, travel_day, fare_type, fare, charge, adjustment FROM trips"
        )
    )
    aggregations = sorted(
        tuple(r)
        for r in q(
            "SELECT c.card_reference, a.travel_day, a.state, a.auth_state, a.total, a.captured "
            "FROM aggregations a JOIN taps t ON t.tap_id = a.auth_tap_id JOIN cards c "
            "ON c.card_reference = t.card_reference"
        )
    )
    taps = sorted(r[0] for r in q("SELECT tap_id FROM taps"))
    denied = sorted(r[0] for r in q("SELECT card_reference FROM deny_list"))
    return {"trips": trips, "aggregations": aggregations, "taps": taps, "denied": denied}


def _aggregate(engine: Engine, end: datetime, errors: list[BaseException]) -> None:
    """Passes until the day is done, then every aggregation closed."""
    for close_all in (False, False, True, True):
        try:
            engine.run(now=end, close_all=close_all)
        except Exception as exc:  # a deadlock PostgreSQL broke: the next pass goes on
            errors.append(exc)


@pytest.mark.slow
def test_two_instances_three_gates_every_tap_once_and_charged_as_on_one_machine(
    tmp_path: Path, postgres_url: str, nats_url: str
) -> None:
    home = Home(tmp_path / "bo", postgres_home_url(postgres_url))
    home.init()
    with Store(home) as store:
        for gate, (_, zone) in GATES.items():
            assert store.add_gate(gate, zone)[0] == gate
    taps = _taps(home.sealing_public_key())
    total = sum(len(t) for t in taps.values())
    operator = new_operator()
    where = urlsplit(nats_url)
    proxy = CuttableProxy((where.hostname or "127.0.0.1", where.port or 4222))
    instances: list[subprocess.Popen[str]] = []
    journals: dict[str, Journal] = {}
    publishers: dict[str, TapPublisher] = {}
    try:
        set_up_operator(nats_url, operator, ack_wait=2)
        instances = [_consume(home, nats_url, operator) for _ in range(2)]
        links = {
            gate: JetStreamLink(
                nats_url if gate != "G3" else f"nats://127.0.0.1:{proxy.port}", operator, gate
            )
            for gate in GATES
        }
        for gate in GATES:
            journals[gate] = journal_of(tmp_path / gate)
            publishers[gate] = TapPublisher(journals[gate], links[gate], batch=25)
            publishers[gate].start()
        steps = max(len(t) for t in taps.values())
        restarted: TapPublisher | None = None
        for i in range(steps):
            for gate, mine in taps.items():
                if i < len(mine):
                    journals[gate].append(mine[i])
                    publishers[gate].notify()
            if i == steps // 4:  # an instance dies mid-stream, its batch unacknowledged
                wait_for(lambda: _stored(home) > 0, 30, "the instances storing taps")
                instances[0].send_signal(signal.SIGKILL)
                instances[0].communicate(timeout=10)
            if i == steps // 2:  # a gate restarts, its cursor 40 taps behind NATS
                publishers["G2"].stop()
                journals["G2"].close()
                with Journal(tmp_path / "G2") as stopped:
                    acked = stopped.acknowledged
                (tmp_path / "G2" / "cursor.json").write_text(
                    f'{{"acknowledged": {max(0, acked - 40)}}}'
                )
                journals["G2"] = journal_of(tmp_path / "G2")
                restarted = publishers["G2"] = TapPublisher(journals["G2"], links["G2"])
                restarted.start()
            if i == 3 * steps // 4:  # G3 loses its link to NATS for a while
                proxy.cut()
                threading.Timer(1.5, proxy.restore).start()
            threading.Event().wait(0.01)
        for publisher in publishers.values():
            assert publisher.drain(60), publisher.status
        wait_for(lambda: _stored(home) == total, 60, f"{total} taps stored")
        survivor = instances[1]
        survivor.send_signal(signal.SIGTERM)
        _, err = survivor.communicate(timeout=30)
        assert survivor.returncode == 0, err
        found = re.search(r"stopped: (\d+) taps stored", err)
        assert found is not None, err
        assert 0 < int(found[1]) < total  # the killed instance had stored its share
        assert "Traceback" not in err
        assert instances[0].returncode == -signal.SIGKILL
        assert restarted is not None
        assert restarted.duplicates > 0  # re-sent, dropped by NATS by message id
        assert proxy.connections >= 2  # G3 reconnected after the cut
    finally:
        for publisher in publishers.values():
            publisher.stop()
        for journal in journals.values():
            journal.close()
        for proc in instances:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        proxy.close()
        remove_operator(nats_url, operator)

    # Two engines at once on PostgreSQL, one on SQLite, the same taps and issuer.
    end = START + timedelta(days=3)
    pg_issuer = LockedIssuer(declined=set(DECLINED), recover_after=100)
    errors: list[BaseException] = []
    with Store(home) as pg_a, Store(home) as pg_b:
        threads = [
            threading.Thread(target=_aggregate, args=(Engine.for_home(s, pg_issuer), end, errors))
            for s in (pg_a, pg_b)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        _aggregate(Engine.for_home(pg_a, pg_issuer), end, errors)  # what a failure left
        on_postgres = _outcome(pg_a)
    reference = Home(tmp_path / "ref")
    reference.path.mkdir()
    for name in ("sealing.key", "card_reference.key", "fares.json"):
        shutil.copy(home.path / name, reference.path / name)
    ref_issuer = LockedIssuer(declined=set(DECLINED), recover_after=100)
    with Store(reference) as ref:
        for gate, (_, zone) in GATES.items():
            ref.add_gate(gate, zone)
            ref.insert_taps(gate, taps[gate], reference.fares())
        _aggregate(Engine.for_home(ref, ref_issuer), end, [])
        on_sqlite = _outcome(ref)
    assert len(on_postgres["taps"]) == total
    for key in on_sqlite:  # each part on its own, what differs named
        only = sorted(map(str, set(on_postgres[key]) ^ set(on_sqlite[key])))[:6]
        assert on_postgres[key] == on_sqlite[key], (key, only)
    assert sorted(a for _, a, _ in pg_issuer.captures) == sorted(
        a for _, a, _ in ref_issuer.captures
    )
    assert on_sqlite["denied"]  # the declined card: on the deny list on both
    assert errors == []


def _stored(home: Home) -> int:
    with Store(home) as store:
        return int(store.conn.execute("SELECT COUNT(*) FROM taps").fetchone()[0])
