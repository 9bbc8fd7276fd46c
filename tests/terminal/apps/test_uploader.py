"""Store and forward (terminal.apps.uploader) against a small HTTP server in the test
that keeps the gate protocol's promises (backoffice/service.py: idempotent POST
/v1/taps, versioned GET /v1/deny-list, Bearer credentials): batches, the cursor moved
only after a 200, no tap lost or doubled across failures and a crash between the answer
and the cursor, and the deny-list poller."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from emvwire.tls import DEV_PLAIN_HTTP
from terminal.apps.denylist import DenyList
from terminal.apps.journal import Journal
from terminal.apps.uploader import (
    BackOfficeClient,
    BackOfficeLinkError,
    BackOfficeUnreachableError,
    DenyListPoller,
    Uploader,
)
from tests.support.servers import asgi_serving, serving

KEY = "k" * 32


class ContractServer(ThreadingHTTPServer):
    """The back office's side of the contract, in memory."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.taps: dict[str, dict[str, Any]] = {}
        self.posts: list[list[str]] = []
        self.fail_next = 0  # answer 503 this many times
        self.drop_from_answer: set[str] = set()
        self.deny_changes: list[tuple[str, str]] = []  # (op, ref); version = index + 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ContractServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer G1:{KEY}":
            return True
        self._send(401, {"error": {"code": "unauthorised", "message": "who are you"}})
        return False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._authorised():
            return
        server = self.server
        if server.fail_next:
            server.fail_next -= 1
            self._send(503, {"error": {"code": "busy", "message": "try later"}})
            return
        taps = body["taps"]
        server.posts.append([t["tap_id"] for t in taps])
        if any("seq" in t or t.get("gate_id") != "G1" for t in taps):
            self._send(400, {"error": {"code": "bad_tap", "message": "not a TAP"}})
            return
        accepted: list[str] = []
        duplicates: list[str] = []
        for tap in taps:
            (duplicates if tap["tap_id"] in server.taps else accepted).append(tap["tap_id"])
            server.taps.setdefault(tap["tap_id"], tap)
        accepted = [t for t in accepted if t not in server.drop_from_answer]
        self._send(200, {"accepted": accepted, "duplicates": duplicates})

    def do_GET(self) -> None:
        if not self._authorised():
            return
        url = urlsplit(self.path)
        since = int(parse_qs(url.query)["since"][0])
        changes = self.server.deny_changes
        version = len(changes)
        if since == 0 or since > version:
            listed: set[str] = set()
            for op, ref in changes:
                (listed.add if op == "add" else listed.discard)(ref)
            self._send(200, {"version": version, "full": True, "add": sorted(listed), "remove": []})
            return
        later = changes[since:]
        add = [r for op, r in later if op == "add"]
        remove = [r for op, r in later if op == "remove"]
        self._send(200, {"version": version, "full": False, "add": add, "remove": remove})


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with serving(ContractServer()) as srv:
        yield srv


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal") as j:
        yield j


def _taps(journal: Journal, n: int) -> None:
    for _ in range(n):
        seq = len(journal) + 1
        journal.append({"tap_id": f"G1:{seq}", "gate_id": "G1", "decision": "open"})


_CLIENTS: list[BackOfficeClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _client(server: ContractServer, key: str = KEY) -> BackOfficeClient:
    client = BackOfficeClient(server.url, "G1", key, tls=DEV_PLAIN_HTTP, timeout=2)
    _CLIENTS.append(client)
    return client


def test_pending_taps_go_in_batches_and_the_cursor_follows(
    server: ContractServer, journal: Journal
) -> None:
    _taps(journal, 5)
    acked: list[int] = []
    uploader = Uploader(
        journal,
        _client(server),
        batch=2,
        on_acknowledged=lambda rs: acked.extend(r["seq"] for r in rs),
    )
    assert [uploader.upload_once() for _ in range(4)] == [2, 2, 1, 0]
    assert server.posts == [["G1:1", "G1:2"], ["G1:3", "G1:4"], ["G1:5"]]
    assert journal.acknowledged == 5
    assert acked == [1, 2, 3, 4, 5]
    # What went over the wire is the TAP, without the journal's seq.
    assert server.taps["G1:1"] == {"tap_id": "G1:1", "gate_id": "G1", "decision": "open"}


def test_a_failed_upload_leaves_the_cursor_and_a_retry_sends_each_tap_once(
    server: ContractServer, journal: Journal
) -> None:
    _taps(journal, 3)
    uploader = Uploader(journal, _client(server))
    server.fail_next = 1
    with pytest.raises(BackOfficeLinkError) as failed:
        uploader.upload_once()
    assert failed.value.status == 503
    assert journal.acknowledged == 0
    assert uploader.upload_once() == 3
    assert journal.acknowledged == 3
    assert sorted(server.taps) == ["G1:1", "G1:2", "G1:3"]


def test_a_crash_between_the_answer_and_the_cursor_resends_and_nothing_doubles(
    server: ContractServer, tmp_path: Path
) -> None:
    class PowerCut(Journal):
        def acknowledge(self, seq: int) -> None:
            raise OSError("power cut before the cursor reached the disk")

    with PowerCut(tmp_path / "j") as journal:
        _taps(journal, 2)
        with pytest.raises(OSError, match="power cut"):
            Uploader(journal, _client(server)).upload_once()
    assert sorted(server.taps) == ["G1:1", "G1:2"]  # the back office has them
    with Journal(tmp_path / "j") as journal:  # the gate restarts
        assert journal.acknowledged == 0
        _taps(journal, 1)
        assert Uploader(journal, _client(server)).upload_once() == 3
        assert journal.acknowledged == 3
    assert server.posts[-1] == ["G1:1", "G1:2", "G1:3"]
    assert sorted(server.taps) == ["G1:1", "G1:2", "G1:3"]  # each once


def test_an_answer_that_does_not_take_every_tap_moves_no_cursor(
    server: ContractServer, journal: Journal
) -> None:
    _taps(journal, 2)
    server.drop_from_answer = {"G1:2"}
    with pytest.raises(BackOfficeLinkError, match="G1:2"):
        Uploader(journal, _client(server)).upload_once()
    assert journal.acknowledged == 0


def test_wrong_credentials_and_no_back_office_are_errors(
    server: ContractServer, journal: Journal
) -> None:
    _taps(journal, 1)
    with pytest.raises(BackOfficeLinkError) as refused:
        Uploader(journal, _client(server, key="wrong")).upload_once()
    assert (refused.value.status, refused.value.code) == (401, "unauthorised")
    dead = BackOfficeClient("http://127.0.0.1:9", "G1", KEY, tls=DEV_PLAIN_HTTP, timeout=1)
    with pytest.raises(BackOfficeUnreachableError):
        Uploader(journal, dead).upload_once()
    assert journal.acknowledged == 0
    assert "wrong" not in repr(_client(server, key="wrong"))


def test_the_thread_uploads_what_the_gate_journals_and_survives_an_outage(
    server: ContractServer, journal: Journal
) -> None:
    server.fail_next = 2  # two 503s: back-off 0.5 s, then 1 s
    uploader = Uploader(journal, _client(server), idle_poll=0.1)
    uploader.start()
    try:
        _taps(journal, 3)
        uploader.notify()
        assert uploader.drain(30), uploader.status
        _taps(journal, 1)
        assert uploader.drain(30), uploader.status
    finally:
        uploader.stop()
    assert uploader.failures == 2
    assert sorted(server.taps) == ["G1:1", "G1:2", "G1:3", "G1:4"]
    assert journal.acknowledged == 4


def test_the_poller_keeps_the_deny_list_current(server: ContractServer, tmp_path: Path) -> None:
    a, b = "a" * 32, "b" * 32
    server.deny_changes = [("add", a), ("add", b)]
    deny = DenyList(tmp_path / "deny")
    poller = DenyListPoller(deny, _client(server), interval=0.05)
    assert poller.poll_once()  # full list at first
    assert (a in deny, b in deny, deny.version) == (True, True, 2)
    assert not poller.poll_once()  # nothing new
    server.deny_changes.append(("remove", a))
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while a in deny and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        poller.stop()
    assert (a in deny, b in deny, deny.version) == (False, True, 3)
    assert b in DenyList(tmp_path / "deny")  # on disk for a restart without network


def test_a_poll_without_network_keeps_the_list(tmp_path: Path) -> None:
    deny = DenyList(tmp_path)
    deny.apply({"version": 7, "full": True, "add": ["c" * 32]})
    dead = BackOfficeClient("http://127.0.0.1:9", "G1", KEY, tls=DEV_PLAIN_HTTP, timeout=1)
    with pytest.raises(BackOfficeUnreachableError):
        DenyListPoller(deny, dead).poll_once()
    assert "c" * 32 in deny
    assert deny.version == 7


@pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:80", "http://"])
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        BackOfficeClient(url, "G1", KEY)


# --- against the real back office (backoffice), in process -------------------------


def test_real_taps_to_the_real_back_office_once_and_its_deny_list_back(tmp_path: Path) -> None:
    """TAPs made by the gate's own code from real kernel results go to the back office's
    HTTP API; it opens their track 2, takes each tap id once, refuses another gate's
    tap, and its deny list reaches the gate's list through the poller."""
    from backoffice.service import make_app
    from backoffice.store import Home, Store
    from card.emv import EmvCard
    from emvwire.profile import load_profile
    from emvwire.seal import open_box
    from terminal.apps.transit import TransitGate, TransitSettings
    from terminal.kernel.config import default_config
    from terminal.kernel.entry_point import EntryPoint
    from terminal.kernel.transaction import Transaction
    from terminal.readers.emulated import EmulatedReader

    home = Home(tmp_path / "backoffice")
    home.init()
    with Store(home) as store:
        gate_id, key = store.add_gate("Central", None)
        other_id, other_key = store.add_gate("North", None)
    app = make_app(home)
    with closing(app), asgi_serving(app) as (host, port):
        url = f"http://{host}:{port}"
        profile = Path(__file__).resolve().parents[3] / "fixtures" / "cards" / "visa-card.json"
        reader = EmulatedReader(EmvCard(load_profile(profile)), path="emulated:test")
        result = EntryPoint(default_config()).run(reader, Transaction(100))
        settings = TransitSettings(gate_id, home.sealing_public_key(), first_ride_limit=1)
        with Journal(tmp_path / "journal") as journal:
            gate = TransitGate(settings, journal, DenyList(tmp_path / "deny"))
            verdicts = [gate.decide(result).decision for _ in range(2)]
            assert verdicts == ["open", "deny"]
            client = BackOfficeClient(url, gate_id, key, tls=DEV_PLAIN_HTTP, timeout=5)
            _CLIENTS.append(client)
            uploader = Uploader(journal, client, on_acknowledged=gate.acknowledged)
            assert uploader.upload_once() == 2
            assert journal.acknowledged == 2
            assert gate.known(result.card_reference)  # the limit no longer applies
            # Sent again (as after a crash before the cursor moved): duplicates, once.
            again = client.post_taps([_tap_of(r) for r in journal.records()])
            assert again == {"accepted": [], "duplicates": [f"{gate_id}:1", f"{gate_id}:2"]}
            intruder = BackOfficeClient(url, other_id, other_key, tls=DEV_PLAIN_HTTP, timeout=5)
            _CLIENTS.append(intruder)
            with pytest.raises(BackOfficeLinkError) as refused:
                intruder.post_taps([_tap_of(journal.records()[0])])
            assert refused.value.status == 403
            # A decline put the card on the list: the gate's poller brings it home.
            with Store(home) as store, store.write() as conn:
                store.deny_add(conn, [result.card_reference], reason="declined",
                               rider_id=None, aggregation_id=None)  # fmt: skip
            assert DenyListPoller(gate.deny_list, client).poll_once()
            assert gate.decide(result).reason == "deny_list"
        with Store(home) as store:
            rows = store.conn.execute(
                "SELECT tap_id, decision, track2_sealed FROM taps ORDER BY rowid"
            ).fetchall()
        assert [(r[0], r[1]) for r in rows] == [(f"{gate_id}:1", "open"), (f"{gate_id}:2", "deny")]
        sealed = rows[0][2]
        assert (
            open_box(home.sealing_private_key(), sealed, f"{gate_id}:1".encode()) == result.track2
        )


def _tap_of(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "seq"}


def test_a_poll_after_the_back_office_closed_the_idle_connection_gets_through(
    tmp_path: Path,
) -> None:
    """The back office closes a connection idle for its ``idle_timeout``; the gate's
    client opens a new one after ``reuse_within`` idle seconds, so a deny-list poll a
    minute after the last one is answered, where reusing the closed one fails it."""
    from backoffice.service import make_app
    from backoffice.store import Home, Store
    from httpserve.limits import Limits

    home = Home(tmp_path / "backoffice")
    home.init()
    with Store(home) as store:
        gate_id, key = store.add_gate("Central", None)
    app = make_app(home)
    with closing(app), asgi_serving(app, Limits(idle_timeout=0.3)) as (host, port):
        url = f"http://{host}:{port}"
        for reuse_within, gets_through in ((0.1, True), (60.0, False)):
            client = BackOfficeClient(url, gate_id, key, tls=DEV_PLAIN_HTTP, timeout=5,
                                      reuse_within=reuse_within)  # fmt: skip
            _CLIENTS.append(client)
            assert client.deny_list(0)["version"] == 0
            time.sleep(0.8)  # the back office closed the idle connection
            if gets_through:
                assert client.deny_list(0)["version"] == 0
            else:
                with pytest.raises(BackOfficeUnreachableError):
                    client.deny_list(0)
