"""The back office on NATS JetStream (real NATS, both databases): the set-up made once,
each published tap stored once whatever is sent again, malformed or foreign taps
refused without being redelivered, and the deny list carried to gates through the
bucket they watch. The names of each test carry a random suffix and are deleted after
it: the NATS server is shared."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from click.testing import CliRunner

from backoffice.cli import backoffice
from backoffice.store import Home, Store
from backoffice.stream import NatsLink
from terminal.apps.denylist import DenyList
from terminal.apps.stream import DenyListFollower, JetStreamLink, TapPublisher
from tests.backoffice.databases import home_args
from tests.backoffice.streams import (
    consuming,
    fill_journal,
    journal_of,
    new_operator,
    remove_operator,
    set_up_operator,
    wait_for,
)
from tests.backoffice.taps import OTHER_PAN, plain_tap

DAY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


@pytest.fixture
def operator(nats_url: str) -> Iterator[str]:
    name = new_operator()
    try:
        yield name
    finally:
        remove_operator(nats_url, name)


def _count(store: Store) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM taps").fetchone()[0])


def test_nats_setup_twice_changes_nothing(home: Home, nats_url: str, operator: str) -> None:
    args = [*home_args(home), "nats", "setup", "--nats", nats_url, "--operator", operator,
            "--dev-plain-http", "--json"]  # fmt: skip
    first = CliRunner().invoke(backoffice, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(backoffice, [*args, "--ack-wait", "12"])
    assert again.exit_code == 0, again.output
    made, now = json.loads(first.output), json.loads(again.output)
    assert made["stream"] == f"TAPS_{operator}"
    assert made["subjects"] == f"taps.{operator}.*"
    assert (made["consumer"], made["deny_list_bucket"]) == ("backoffice", f"deny_{operator}")
    assert made["duplicate_window_s"] == 7200
    assert now["ack_wait_s"] == 12
    # No TLS without the local-development flag: every link is TLS in a deployment.
    plain = CliRunner().invoke(backoffice, args[:-2])
    assert plain.exit_code == 2
    assert "tls://" in plain.output


def test_each_tap_is_stored_once_whatever_is_sent_again(
    home: Home, store: Store, nats_url: str, operator: str, tmp_path: Path
) -> None:
    link = set_up_operator(nats_url, operator)
    store.add_gate("north", None)
    store.add_gate("south", None)
    pub = home.sealing_public_key()
    journal = journal_of(tmp_path / "G1")
    fill_journal(journal, [plain_tap(pub, "G1", i, DAY + timedelta(minutes=i))
                           for i in range(1, 31)])  # fmt: skip
    gate = JetStreamLink(nats_url, operator, "G1")
    with consuming(store, home.fares(), link) as consumer:
        publisher = TapPublisher(journal, gate, batch=7)
        publisher.start()
        assert publisher.drain(20)
        wait_for(lambda: _count(store) == 30, 20, "30 taps stored")
        publisher.stop()
        journal.close()
        # A gate that crashed before its cursor reached the disk sends them all again:
        # NATS drops each message id it has seen.
        (tmp_path / "G1" / "cursor.json").write_text('{"acknowledged": 0}')
        reopened = journal_of(tmp_path / "G1")
        again = TapPublisher(reopened, gate)
        again.start()
        assert again.drain(20)
        again.stop()
        reopened.close()
        assert again.duplicates == 30
        # A tap of an unknown gate, a tap of another gate and a malformed one are
        # refused for good (terminated: never redelivered).
        foreign = plain_tap(pub, "G2", 1, DAY, pan=OTHER_PAN)

        async def publish_bad() -> None:
            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            await js.publish(f"taps.{operator}.G9", json.dumps({**foreign,
                             "tap_id": "G9:1", "gate_id": "G9"}).encode())  # fmt: skip
            await js.publish(f"taps.{operator}.G1", json.dumps(foreign).encode())
            await js.publish(f"taps.{operator}.G2", b"{not json")
            await nc.close()

        asyncio.run(publish_bad())
        wait_for(lambda: consumer.refused == 3, 20, "three taps refused")
    assert _count(store) == 30
    assert consumer.stored == 30
    stored = {r[0] for r in store.conn.execute("SELECT tap_id FROM taps")}
    assert stored == {f"G1:{i}" for i in range(1, 31)}


def test_the_deny_list_reaches_gates_through_the_bucket(
    home: Home, store: Store, nats_url: str, operator: str, tmp_path: Path
) -> None:
    link: NatsLink = set_up_operator(nats_url, operator)
    refs = [c * 32 for c in "abcd"]
    gate = JetStreamLink(nats_url, operator, "G1")
    with consuming(store, home.fares(), link) as consumer:
        with store.write() as w:
            store.deny_add(w, refs[:3], reason="INSUFFICIENT_FUNDS", rider_id=None,
                           aggregation_id=None)  # fmt: skip
        deny = DenyList(tmp_path / "gate-a")
        follower = DenyListFollower(deny, gate)
        follower.start()
        wait_for(lambda: all(r in deny for r in refs[:3]), 20, "three entries at the gate")
        with store.write() as w:
            store.deny_remove(w, refs[:1])
        wait_for(lambda: refs[0] not in deny, 20, "an entry removed at the gate")
        follower.stop()
        version = deny.version
        with store.write() as w:  # while the gate is away
            store.deny_add(w, refs[3:], reason="debt", rider_id=None, aggregation_id=None)
        wait_for(lambda: consumer.published == 5, 20, "five changes published")
        # Restarted, the gate reads on from the version it has on disk.
        back = DenyList(tmp_path / "gate-a")
        assert back.version == version
        resumed = DenyListFollower(back, gate)
        resumed.start()
        wait_for(lambda: refs[3] in back, 20, "the change made while away")
        resumed.stop()
        assert [r in back for r in refs] == [False, True, True, True]
        # A new gate takes the whole list at once.
        fresh = DenyList(tmp_path / "gate-b")
        newcomer = DenyListFollower(fresh, gate)
        newcomer.start()
        wait_for(lambda: len(fresh) == 3, 20, "the full list at a new gate")
        newcomer.stop()
        assert [r in fresh for r in refs] == [False, True, True, True]
        assert fresh.version == back.version


def test_consume_says_what_is_missing(home: Home, nats_url: str, operator: str) -> None:
    """No stream yet (exit 10, config) or no NATS at all (exit 7, unreachable): one line
    saying so."""
    args = [*home_args(home), "consume", "--operator", operator, "--dev-plain-http",
            "--no-engine"]  # fmt: skip
    missing = CliRunner().invoke(backoffice, [*args, "--nats", nats_url])
    assert missing.exit_code == 10, missing.output
    assert "backoffice nats setup" in missing.output
    assert "Traceback" not in missing.output
    nowhere = CliRunner().invoke(backoffice, [*args, "--nats", "nats://127.0.0.1:1"])
    assert nowhere.exit_code == 7, nowhere.output
    assert "cannot reach NATS at nats://127.0.0.1:1" in nowhere.output
