"""The gates' HTTP API (contract "HTTP") on a real socket, and the ``terminal
backoffice`` CLI through click's runner: credentials, all-or-nothing uploads,
duplicates, the deny list by version, clear errors with exit codes; ``backoffice
serve`` as a process over mutual TLS, stopped by SIGTERM."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backoffice.cli import backoffice
from backoffice.service import make_app
from backoffice.store import Home, Store
from emvwire.tls import SERVER_CA, ClientTls, IssuedCertificate
from tests.backoffice.databases import home_args
from tests.backoffice.taps import plain_tap
from tests.support.e2e import BIN
from tests.support.servers import asgi_serving

Served = tuple[str, int]

DAY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


@pytest.fixture
def served(home: Home) -> Iterator[tuple[Served, dict[str, str]]]:
    with Store(home) as store:
        keys = dict([store.add_gate("North", None), store.add_gate("South", None)])
    app = make_app(home)
    with closing(app), asgi_serving(app) as address:
        yield address, keys


def call(
    server: Served,
    method: str,
    path: str,
    body: Any = None,
    auth: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    host, port = server
    conn = (http.client.HTTPConnection(host, port, timeout=10) if tls is None
            else http.client.HTTPSConnection(host, port, timeout=10, context=tls))  # fmt: skip
    headers = {"Authorization": auth} if auth else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    with closing(conn):
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")


def test_health_needs_no_credential_the_rest_does(served: tuple[Served, Any]) -> None:
    server, keys = served
    assert call(server, "GET", "/v1/health") == (200, {"status": "ok"})
    status, body = call(server, "GET", "/v1/deny-list")
    assert (status, body["error"]["code"]) == (401, "unauthorised")
    wrong = "Bearer G1:" + "0" * 32
    assert call(server, "GET", "/v1/deny-list", auth=wrong)[0] == 401
    assert call(server, "GET", "/v1/deny-list", auth=f"Bearer G1:{keys['G2']}")[0] == 401
    status, body = call(server, "GET", "/v1/deny-list?since=0", auth=f"Bearer G1:{keys['G1']}")
    assert (status, body) == (200, {"version": 0, "full": True, "add": [], "remove": []})
    assert call(server, "GET", "/v1/nowhere")[0] == 404


def test_uploads_over_http(served: tuple[Served, Any], home: Home) -> None:
    server, keys = served
    auth = f"Bearer G1:{keys['G1']}"
    pub = home.sealing_public_key()
    taps = [plain_tap(pub, "G1", i, DAY) for i in (1, 2)]
    assert call(server, "POST", "/v1/taps", {"taps": taps}, auth) == (
        200, {"accepted": ["G1:1", "G1:2"], "duplicates": []},
    )  # fmt: skip
    more = [*taps, plain_tap(pub, "G1", 3, DAY)]
    assert call(server, "POST", "/v1/taps", {"taps": more}, auth) == (
        200, {"accepted": ["G1:3"], "duplicates": ["G1:1", "G1:2"]},
    )  # fmt: skip
    # A malformed tap: 400 and nothing of the request stored.
    bad = [plain_tap(pub, "G1", 4, DAY), {**plain_tap(pub, "G1", 5, DAY), "direction": "up"}]
    status, body = call(server, "POST", "/v1/taps", {"taps": bad}, auth)
    assert status == 400
    assert "direction" in body["error"]["message"]
    # Another gate's tap: 403.
    foreign = [plain_tap(pub, "G2", 1, DAY)]
    assert call(server, "POST", "/v1/taps", {"taps": foreign}, auth)[0] == 403
    assert call(server, "POST", "/v1/taps", {"taps": []}, auth)[0] == 400
    assert call(server, "POST", "/v1/taps", {"taps": [taps[0]] * 501}, auth)[0] == 400
    with Store(home) as store:
        stored = [r["tap_id"] for r in store.query("SELECT tap_id FROM taps ORDER BY seq")]
    assert stored == ["G1:1", "G1:2", "G1:3"]


def test_the_deny_list_by_version(served: tuple[Served, Any], home: Home) -> None:
    server, keys = served
    auth = f"Bearer G2:{keys['G2']}"
    refs = ["a" * 32, "b" * 32, "c" * 32]
    with Store(home) as store, store.write() as w:
        store.deny_add(w, refs, reason="INSUFFICIENT_FUNDS", rider_id=None, aggregation_id=None)
        store.deny_remove(w, refs[:1])
    status, full = call(server, "GET", "/v1/deny-list?since=0", auth=auth)
    assert (status, full) == (200, {"version": 4, "full": True, "add": refs[1:], "remove": []})
    _, delta = call(server, "GET", "/v1/deny-list?since=2", auth=auth)
    assert delta == {"version": 4, "full": False, "add": [refs[2]], "remove": [refs[0]]}
    _, same = call(server, "GET", "/v1/deny-list?since=4", auth=auth)
    assert same == {"version": 4, "full": False, "add": [], "remove": []}
    _, unknown = call(server, "GET", "/v1/deny-list?since=99", auth=auth)
    assert unknown["full"] is True
    assert call(server, "GET", "/v1/deny-list?since=x", auth=auth)[0] == 400


def run(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(backoffice, ["--home", str(home), *args])
    return result


def test_cli_init_gates_and_reports(tmp_path: Path) -> None:
    home = tmp_path / "bo"
    missing = run(home, "gate", "list")
    assert missing.exit_code == 10  # no home there: run init
    assert "backoffice init" in missing.output
    assert run(home, "init").exit_code == 0
    assert run(home, "init").exit_code == 4  # never overwrites keys (conflict)
    added = run(home, "gate", "add", "--name", "Central", "--zone", "1", "--json")
    assert added.exit_code == 0, added.output
    info = json.loads(added.output)
    assert info["gate_id"] == "G1"
    assert len(info["key"]) == 32
    assert info["sealing_public_key"] == Home(home).sealing_public_key().hex()
    bad_zone = run(home, "gate", "add", "--name", "X", "--zone", "9")
    assert bad_zone.exit_code == 2
    assert "not a zone" in bad_zone.output
    listed = json.loads(run(home, "gate", "list", "--json").output)["gates"]
    assert [g["gate_id"] for g in listed] == ["G1"]
    assert info["key"] not in run(home, "gate", "list", "--json").output
    no_key = run(home, "aggregate", "--issuer", "http://127.0.0.1:9")
    assert no_key.exit_code == 2
    assert "--terminal-id" in no_key.output
    done = run(home, "aggregate", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["taps"] == 0
    assert json.loads(run(home, "deny-list", "--json").output)["version"] == 0
    assert json.loads(run(home, "trips", "--json").output) == {"trips": []}
    assert json.loads(run(home, "riders", "--json").output) == {"riders": []}
    assert run(home, "aggregate", "--now", "yesterday").exit_code == 2


def test_cli_init_with_fares_checks_them(tmp_path: Path) -> None:
    fares = tmp_path / "fares.json"
    fares.write_text(json.dumps({"flat_fare": 250, "daily_cap": 500}))
    assert run(tmp_path / "a", "init", "--fares", str(fares)).exit_code == 0
    assert Home(tmp_path / "a").fares().flat_fare == 250
    fares.write_text(json.dumps({"flat_fare": -5}))
    bad = run(tmp_path / "b", "init", "--fares", str(fares))
    assert bad.exit_code == 10  # a fare file that cannot be used
    assert "flat_fare" in bad.output


def test_serve_stops_cleanly_on_sigterm(home: Home) -> None:
    """``backoffice serve`` as a process, with mutual TLS by default: it answers a gate
    presenting its certificate, and SIGTERM with a keep-alive connection open ends it
    at once with status 0, ``stopped`` and no traceback."""
    issued: list[IssuedCertificate] = []

    def certify(gate_id: str) -> IssuedCertificate:
        issued.append(home.tls.issue_client("gate", gate_id))
        return issued[-1]

    with Store(home) as store:
        gate, key = store.add_gate("North", None, certify)
    files = {k: Path(v) for k, v in issued[0].write(home.path / "gates", gate).items()}
    proc = subprocess.Popen(
        [str(BIN / "backoffice"), *home_args(home), "serve", "--bind",
         "127.0.0.1:0", "--no-engine"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "backoffice listening on https://127.0.0.1:" in line, line
        host, port = line.rsplit("//", 1)[1].strip().split(":")
        address = (host, int(port))
        tls = ClientTls(home.tls.file(SERVER_CA), files["cert_file"], files["key_file"]).context()
        tap = plain_tap(home.sealing_public_key(), gate, 1, DAY)
        auth = f"Bearer {gate}:{key}"
        assert call(address, "POST", "/v1/taps", {"taps": [tap]}, auth, tls) == (
            200, {"accepted": [f"{gate}:1"], "duplicates": []},
        )  # fmt: skip
        with pytest.raises((ssl.SSLError, ConnectionError)):  # no certificate: refused
            call(address, "GET", "/v1/health", tls=ClientTls(home.tls.file(SERVER_CA)).context())
        idle = http.client.HTTPSConnection(host, int(port), timeout=10, context=tls)
        idle.request("GET", "/v1/health")
        assert idle.getresponse().read() == b'{"status":"ok"}'
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 5
        rest = proc.stderr.read()
        assert "Traceback" not in rest
        assert rest.strip().splitlines()[-1] == "stopped"
        idle.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
