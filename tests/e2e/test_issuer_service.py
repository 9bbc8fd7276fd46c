"""``issuer serve`` as real processes: killed with SIGKILL during a load run and
restarted, nothing approved is lost and nothing is held twice; two services on one
PostgreSQL accept each ATC of a card exactly once under concurrent taps. Process life
(on both ledgers): the workers of a parent killed with SIGKILL exit and free the port;
SIGTERM under load answers and commits what was taken, nothing else; a busy port is
one line and exit code 4 (conflict)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hostlink import HostClient, HostOutcome
from tests.support.e2e import BIN
from tests.support.issuer_home import PASS, IssuerHome, arqc_request, stop_service

pytestmark = pytest.mark.slow


def test_kill_9_during_load_loses_nothing_and_holds_once(tmp_path: Path) -> None:
    setup = IssuerHome(tmp_path / "home", None, terminals=4, cards=4)
    proc, url = setup.serve()
    # Each terminal taps its own card: ATC 1, 2, ... (request ids known to the terminal).
    plan = [
        [(f"t{t}-{atc}", arqc_request(setup.cards[t][0], atc, 100 + atc)) for atc in range(1, 41)]
        for t in range(4)
    ]  # fmt: skip
    answers: dict[str, HostOutcome] = {}
    lock = threading.Lock()

    def drive(t: int, target: str, retries: int) -> None:
        with setup.client(target, t, timeout=2.0, retries=retries, backoff=0.05) as host:
            for request_id, blob in plan[t]:
                with lock:
                    if request_id in answers and answers[request_id].answered:
                        continue
                outcome = _authorise_no_reversal(host, blob, setup.cards[t][1], request_id)
                with lock:
                    answers[request_id] = outcome

    threads = [threading.Thread(target=drive, args=(t, url, 0)) for t in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(answers) < 20 and time.monotonic() < deadline:  # the run is under way
        time.sleep(0.005)
    stop_service(proc, signal.SIGKILL)
    for thread in threads:
        thread.join()
    answered_before = {k: v for k, v in answers.items() if v.answered}
    assert answered_before, "the service was killed before answering anything"
    assert len(answered_before) < 160, "the kill came after the run"
    # Restart; the terminals send again what got no answer, with the same request ids.
    proc, url = setup.serve()
    try:
        threads = [threading.Thread(target=drive, args=(t, url, 2)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_service(proc)
    assert all(v.answered for v in answers.values())
    with setup.open() as app:
        assert app.ledger.check() == []
        records = {a.request_id: a for a in app.service.transactions(limit=1000)}
        for request_id, before in answered_before.items():  # nothing answered is lost
            assert records[request_id].id == before.transaction_id
            assert records[request_id].approved == before.approved
        approved = [a for a in records.values() if a.approved]
        assert len(records) == len(answers) == 160
        account = app.service.account(setup.account)
        assert account.held == sum(a.amount for a in approved)  # each held once
        holds = [j for j in app.service.journals(setup.account, limit=1000) if j.kind == "hold"]
        assert len(holds) == len(approved)


def _authorise_no_reversal(
    host: HostClient, blob: bytes, track2: bytes, request_id: str
) -> HostOutcome:
    """The host client's authorise without its time-out reversal (the terminal here
    retries after the restart instead)."""
    host.reverse_request = lambda request_id: False  # type: ignore[method-assign]
    return host.authorise(blob, track2, request_id=request_id)


@pytest.mark.postgres
def test_two_services_on_one_postgres_accept_each_atc_once(
    tmp_path: Path, pg_schema_url: str
) -> None:
    setup = IssuerHome(tmp_path / "home", pg_schema_url, terminals=4, cards=1)
    mk, track2 = setup.cards[0]
    blobs = [arqc_request(mk, atc, 100) for atc in range(1, 31)]
    first, url1 = setup.serve()
    second, url2 = setup.serve()
    results: list[tuple[int, HostOutcome]] = []
    lock = threading.Lock()

    def drive(t: int, url: str) -> None:
        with setup.client(url, t, timeout=10.0, retries=2) as host:
            for atc, blob in enumerate(blobs, start=1):
                outcome = host.authorise(blob, track2, request_id=f"t{t}-{atc}")
                with lock:
                    results.append((atc, outcome))

    try:
        threads = [threading.Thread(target=drive, args=(t, (url1, url2)[t % 2])) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_service(first)
        stop_service(second)
    assert len(results) == 4 * 30
    assert all(o.answered for _, o in results)
    for atc in range(1, 31):
        outcomes = [o for a, o in results if a == atc]
        assert sum(o.approved for o in outcomes) == 1, atc
        assert {o.reason for o in outcomes if not o.approved} <= {
            "ATC_REPLAYED",
            "ATC_ROLLED_BACK",
        }
    with setup.open() as app:
        assert app.ledger.check() == []
        assert app.service.account(setup.account).held == 30 * 100


# --- process life ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """No URL (SQLite in the home), or a PostgreSQL schema of the test's own."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_schema_url"))


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_kill_9_of_the_parent_ends_its_workers_and_frees_the_port(
    tmp_path: Path, db_url: str | None
) -> None:
    setup = IssuerHome(tmp_path / "home", db_url, terminals=1, cards=1)
    proc, url = setup.serve(workers=3)
    deadline = time.monotonic() + 10
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) == 2
    mk, track2 = setup.cards[0]
    with setup.client(url, 0, timeout=10, retries=0) as host:
        assert host.authorise(arqc_request(mk, 1, 100), track2).approved
    stop_service(proc, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its parent"
    again, url2 = setup.serve(bind=f"127.0.0.1:{_port(url)}")  # the port is free
    try:
        with setup.client(url2, 0, timeout=10, retries=0) as host:
            assert host.authorise(arqc_request(mk, 2, 100), track2).approved
    finally:
        stop_service(again)
    with setup.open() as app:
        assert app.ledger.check() == []
        assert app.service.account(setup.account).held == 200


def test_sigterm_under_load_answers_and_commits_what_it_took(
    tmp_path: Path, db_url: str | None
) -> None:
    """SIGTERM while eight terminals tap as fast as they can: the service stops
    accepting, answers every request it took and commits it, then exits 0 with nothing
    on standard error but its start line. What a terminal got no answer to is not in
    the ledger; what it got an answer to is, exactly as answered."""
    setup = IssuerHome(tmp_path / "home", db_url, terminals=8, cards=8)
    proc, url = setup.serve(workers=2)
    answers: dict[str, HostOutcome] = {}
    lock = threading.Lock()
    started = threading.Event()

    def drive(t: int) -> None:
        mk, track2 = setup.cards[t]
        with setup.client(url, t, timeout=10.0, retries=0) as host:
            for atc in range(1, 200):
                request_id = f"t{t}-{atc}"
                outcome = _authorise_no_reversal(
                    host, arqc_request(mk, atc, 10), track2, request_id
                )
                with lock:
                    answers[request_id] = outcome
                started.set()
                if not outcome.answered:
                    return

    threads = [threading.Thread(target=drive, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    assert started.wait(30)
    time.sleep(0.5)  # under way
    proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert proc.wait(timeout=60) == 0
    assert proc.stderr is not None
    rest = proc.stderr.read()
    proc.stderr.close()
    assert "Traceback" not in rest
    assert rest.strip() == "", rest
    answered = {k: v for k, v in answers.items() if v.answered}
    assert answered
    with setup.open() as app:
        assert app.ledger.check() == []
        records = {a.request_id: a for a in app.service.transactions(limit=10_000)}
        assert set(records) == set(answered)
        for request_id, outcome in answered.items():
            assert records[request_id].id == outcome.transaction_id
            assert records[request_id].approved == outcome.approved
        held = sum(a.amount for a in records.values() if a.approved)
        assert app.service.account(setup.account).held == held


def test_a_busy_port_is_one_line_and_exit_code_4(tmp_path: Path) -> None:
    setup = IssuerHome(tmp_path / "home", None, terminals=1, cards=0)
    proc, url = setup.serve()
    try:
        env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(setup.home),
               "TAPSTACK_KEYSTORE_KEY": PASS}  # fmt: skip
        busy = subprocess.run(
            [str(BIN / "issuer"), "serve", "--bind", f"127.0.0.1:{_port(url)}"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        stop_service(proc)
    assert busy.returncode == 4  # conflict: the address is taken
    assert busy.stderr.splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{_port(url)}: the address is in use (another "
        "server listens on it): stop that server, or choose another port (0: any free one)"
    ]
