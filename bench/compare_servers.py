"""Side by side: HTTP servers for the issuer's authorisation API, with the real work.

    .venv/bin/python bench/compare_servers.py
        [--servers baseline,uvicorn,granian,issuer,issuer-tls]
        [--workers 2] [--clients 32] [--procs 2] [--seconds 10] [--empty-seconds 5]
        [--rounds 1] [--db URL] [--baseline REV] [--json FILE]

Each server answers two runs, one after another, on this machine:

- ``auth``: authorisations over HTTP, each verified and decided by the service (ARQC,
  ATC, funds, hold, durable commit), on a fresh issuer (SQLite in a temporary home, or
  ``--db`` PostgreSQL) made by ``bench/load_issuer.py``'s ``setup`` with enough cards
  for the run, driven by its raw keep-alive client (``--clients`` terminals from
  ``--procs`` processes, one request in flight each) for ``--seconds``;
- ``empty``: the same requests to an application that reads the body and answers
  ``{}`` at once: what the HTTP layer alone costs, for ``--empty-seconds`` (for
  ``issuer``: the service's HTTP layer, its router, body reading and JSON answer,
  with nothing behind it).

The servers (``--workers`` processes each, sharing one listening socket):

- ``baseline``: the hand-written HTTP/1.1 event loop that served the API before,
  taken from git (``--baseline REV``; default: the parent of the commit that deleted
  ``issuer/service/server.py``) and run as that revision's ``issuer serve``;
- ``uvicorn``: uvicorn with httptools and uvloop, stock settings, running the
  service's ASGI application (:class:`issuer.service.app.ServiceApp`);
- ``granian``: granian (Rust, ASGI interface, uvloop) running the same application;
- ``issuer``: today's ``issuer serve`` (uvicorn with the limits and process life of
  :mod:`httpserve`) in plain HTTP (``--dev-plain-http``), like the others;
- ``issuer-tls``: today's ``issuer serve`` as deployed, with mutual TLS: each
  terminal's keep-alive connection presents its client certificate (the handshakes
  happen before the run; the empty run's server has a TLS folder made for it).

For each run it prints requests/s, p50/p99 latency, the server's CPU time per request
(its processes' user + system time, taken with ``wait4``: steadier than the rate on a
shared machine), the client's, the outcomes and, after ``auth``, the ledger check;
and the machine's 1-minute load average before the run. ``--rounds`` repeats the
whole set, interleaved, so that a neighbour's load falls on every server alike.
Loopback only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
_TREE = os.environ.get("COMPARE_TREE")  # a child of the baseline: its source tree first
sys.path.insert(0, _TREE or str(ROOT))
sys.path.insert(1, str(BENCH))

PASS = "bench passphrase"
#: The hand-written server, deleted when uvicorn took over.
_DELETED = "issuer/service/server.py"
#: Authorisations per card in a plan (load_issuer.PER_CARD) and the rate a plan is
#: sized for: enough cards that no run runs out.
PER_CARD = 45
PLAN_RATE = 6000


# --- the applications --------------------------------------------------------------------


class EmptyApp:
    """An ASGI application that reads the body and answers ``{}``."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({
            "type": "http.response.start", "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": b"{}"})


def _issuer_app() -> Any:
    """The service's ASGI application on the issuer of ``COMPARE_HOME``."""
    from issuer.bootstrap import open_issuer
    from issuer.service.api import Api
    from issuer.service.app import ServiceApp

    home = Path(os.environ["COMPARE_HOME"])
    app = open_issuer(home, db_url=os.environ.get("COMPARE_DB") or None, passphrase=PASS)
    return ServiceApp(Api(app))


def granian_issuer() -> Any:
    """granian's factory (``--factory``): the service's application, per worker."""
    return _issuer_app()


def granian_empty() -> Any:
    """granian's factory for the empty application."""
    return EmptyApp()


# --- the servers (child processes) ----------------------------------------------------------


def _child_uvicorn(workers: int, empty: bool) -> None:
    """Stock uvicorn (httptools, uvloop) on one socket, ``workers`` forked processes."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    parent = len(children) == workers - 1 and (workers == 1 or bool(children))
    app = EmptyApp() if empty else _issuer_app()
    config = uvicorn.Config(
        app, http="httptools", loop="uvloop", lifespan="off", log_level="warning",
        access_log=False, server_header=False,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # uvicorn raises it again
    if parent:
        print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr)
        sys.stderr.flush()
    uvicorn.Server(config).run(sockets=[sock])
    for pid in children:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def _child_baseline_empty(workers: int) -> None:
    """The baseline's event loop around an API that answers ``{}`` at once."""
    import importlib

    from issuer.service.api import Prepared, Response

    serve = importlib.import_module("issuer.service.server").serve  # the baseline's

    class Empty:
        class app:  # noqa: N801 - what serve() closes
            @staticmethod
            def close() -> None:
                pass

        def prepare_many(self, requests: list[Any]) -> list[Any]:
            return [Prepared(Response(200, {})) for _ in requests]

        def ready_to_write(self) -> bool:
            return True

        def finish_many(self, prepared: list[Any]) -> list[Any]:
            return [p.answer for p in prepared]

    def ready(host: str, port: int) -> None:
        print(f"listening on http://{host}:{port}", file=sys.stderr)
        sys.stderr.flush()

    serve(Empty, "127.0.0.1", 0, workers=workers, ready=ready)


def _child_issuer_empty(workers: int, tls: Path | None) -> None:
    """Today's server (:func:`httpserve.server.serve`) with the service's HTTP layer
    and nothing behind it: the router, the body read within its limit, a JSON
    answer; over mutual TLS with the TLS folder ``tls`` if given."""
    from emvwire.tls import TlsFolder
    from httpserve.asgi import read_body, send_json
    from httpserve.routing import JsonRouter
    from httpserve.server import serve

    async def empty(scope: Any, receive: Any, send: Any) -> None:
        await read_body(scope, receive, 16 * 1024)
        await send_json(send, 200, b"{}")

    def app() -> Any:
        return JsonRouter([("POST", "/v1/authorisations", empty), ("GET", "/health", empty)])

    def ready(host: str, port: int) -> None:
        print(f"listening on http{'s' if tls else ''}://{host}:{port}", file=sys.stderr)
        sys.stderr.flush()

    context = TlsFolder(tls).server_context() if tls else None
    serve(app, "127.0.0.1", 0, workers=workers, ready=ready, ssl_context=context)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server never answered")


def _start(
    kind: str, run: str, home: Path, args: argparse.Namespace, tree: Path | None
) -> tuple[subprocess.Popen[str], str]:
    """Start server ``kind`` for run ``run`` (auth or empty): the process and its URL."""
    env = {
        **os.environ, "TAPSTACK_ISSUER_HOME": str(home), "TAPSTACK_KEYSTORE_KEY": PASS,
        "COMPARE_HOME": str(home), "COMPARE_DB": args.db or "",
    }  # fmt: skip
    py = sys.executable
    me = str(Path(__file__).resolve())
    workers = str(args.workers)
    if kind == "granian":
        port = _free_port()
        target = (
            "compare_servers:granian_empty" if run == "empty" else "compare_servers:granian_issuer"
        )
        cmd = [
            str(Path(py).parent / "granian"), "--interface", "asgi", "--factory", "--http", "1",
            "--no-ws", "--loop", "uvloop", "--workers", workers, "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--working-dir", str(BENCH), target,
        ]  # fmt: skip
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENCH)])
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        _wait_port(port, proc)
        return proc, f"http://127.0.0.1:{port}"
    if kind == "baseline":
        assert tree is not None
        env["PYTHONPATH"] = str(tree)
        env["COMPARE_TREE"] = str(tree)
        if run == "empty":
            cmd = [py, me, "--child", "baseline-empty", "--workers", workers]
        else:
            code = "import sys; from issuer.cli import main; sys.argv[0] = 'issuer'; main()"
            cmd = [py, "-c", code]
            if args.db:
                cmd += ["--db", args.db]
            cmd += ["serve", "--bind", "127.0.0.1:0", "--workers", workers]
    elif kind == "uvicorn":
        cmd = [
            py,
            me,
            "--child",
            "uvicorn" + ("-empty" if run == "empty" else ""),
            "--workers",
            workers,
        ]
    elif run == "empty":
        cmd = [py, me, "--child", "issuer-empty", "--workers", workers]
        if kind == "issuer-tls":
            cmd += ["--tls", str(home / "tls")]
    else:
        cmd = [str(Path(py).parent / "issuer")]
        if args.db:
            cmd += ["--db", args.db]
        cmd += ["serve", "--bind", "127.0.0.1:0", "--workers", workers]
        if kind == "issuer":
            cmd.append("--dev-plain-http")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=str(tree or ROOT))
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"https?://[\d.]+:\d+", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"{kind} did not start: {line}{proc.stderr.read()[-2000:]}")
    if kind != "issuer-tls":  # the probe speaks plain HTTP; serve() printed once listening
        _wait_port(int(match.group(0).rsplit(":", 1)[1]), proc)
    return proc, match.group(0)


def _stop(proc: subprocess.Popen[str]) -> Any:
    """SIGTERM, then the server's resource usage, its workers' included (``wait4``)."""
    proc.send_signal(signal.SIGINT if proc.args[0].endswith("granian") else signal.SIGTERM)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if proc.stderr is not None:
            proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


# --- the runs -----------------------------------------------------------------------------------


def _baseline_tree(rev: str | None, into: Path) -> Path:
    """The source of revision ``rev`` (default: the one before ``server.py`` went)."""
    if rev is None:
        found = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--diff-filter=D", "--", _DELETED],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        rev = f"{found}^" if found else "HEAD"
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _baseline_plan(
    tree: Path, home: Path, db: str | None, clients: int, cards: int
) -> dict[str, Any]:
    """The plan made by the baseline's own ``bench/load_issuer.py`` (a ledger at its
    schema, terminals without certificates), in a child process of its tree."""
    from load_issuer import Terminal

    out = home.parent / "plan.json"
    code = (
        "import json, sys; from pathlib import Path; from bench.load_issuer import setup; "
        "plan = setup(Path(sys.argv[1]), sys.argv[2] or None, int(sys.argv[3]), "
        "int(sys.argv[4])); Path(sys.argv[5]).write_text(json.dumps(plan))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(home), db or "", str(clients), str(cards), str(out)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
    )  # fmt: skip
    plan: dict[str, Any] = json.loads(out.read_text())
    plan["terminals"] = [Terminal(t[0], t[1], "", "") for t in plan["terminals"]]
    plan["server_ca"] = None
    return plan


def _fake_plan(home: Path, clients: int, seconds: float) -> dict[str, Any]:
    """Requests of an authorisation's size for the empty application (enough for
    100,000 a second), from one terminal with a client certificate of a TLS folder
    made in ``home/tls`` (for ``issuer-tls``)."""
    from load_issuer import Terminal

    from emvwire.tls import SERVER_CA, TlsFolder, plan_folder

    folder = TlsFolder(home / "tls")
    folder.create(plan_folder("compare CA", hosts=("127.0.0.1",)))
    ident = f"trm_{'a' * 16}"
    files = folder.issue_client("terminal", ident).write(home / "terminals", ident)
    terminal = Terminal(ident, "x", files["cert_file"], files["key_file"])
    icc = "9f2608" + "00" * 8 + "9f270180" + "9f100706011203a00000" + "00" * 60
    track2 = "4761739001010010d29122010000000000"
    stream = [(icc, track2)] * int(seconds * 100_000 / clients + 1)
    return {"terminals": [terminal] * clients, "streams": [stream] * clients,
            "server_ca": str(folder.file(SERVER_CA))}  # fmt: skip


def _run(kind: str, run: str, args: argparse.Namespace, tree: Path | None) -> dict[str, Any]:
    """One run of one server, on a PostgreSQL schema of its own with ``--db``."""
    import load_issuer

    with load_issuer.own_schema(args.db if run == "auth" else None, "compare") as db:
        return _run_on(kind, run, argparse.Namespace(**{**vars(args), "db": db}), tree)


def _run_on(kind: str, run: str, args: argparse.Namespace, tree: Path | None) -> dict[str, Any]:
    import load_issuer

    seconds = args.seconds if run == "auth" else args.empty_seconds
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        load = os.getloadavg()[0]
        if run == "auth":
            cards = max(args.clients, int(seconds * PLAN_RATE / PER_CARD) + 1)
            if kind == "baseline":
                assert tree is not None
                plan = _baseline_plan(tree, home, args.db, args.clients, cards)
            else:
                plan = load_issuer.setup(home, args.db, args.clients, cards)
        else:
            home.mkdir()
            plan = _fake_plan(home, args.clients, seconds)
        proc, url = _start(kind, run, home, args, tree)
        try:
            time.sleep(0.3)
            procs = max(1, args.procs)
            terms, streams = plan["terminals"], plan["streams"]
            jobs = [
                load_issuer.Job(url, terms[i::procs], streams[i::procs], seconds, plan["server_ca"])
                for i in range(procs)
            ]
            with multiprocessing.Pool(procs) as pool:
                before = os.times()
                results = pool.map(load_issuer._drive_raw, jobs)
                pool.close()
                pool.join()
            after = os.times()
            elapsed = max(took for _, _, took in results)
            client_cpu = (after.children_user + after.children_system) - (
                before.children_user + before.children_system
            )
        finally:
            usage = _stop(proc)
        latencies = sorted(x for lat, _, _ in results for x in lat)
        outcomes: dict[str, int] = {}
        for _, counts, _ in results:
            for k, v in counts.items():
                outcomes[k] = outcomes.get(k, 0) + v
        n = len(latencies)
        cpu = usage.ru_utime + usage.ru_stime
        report: dict[str, Any] = {
            "server": kind,
            "run": run,
            "requests": n,
            "seconds": round(elapsed, 2),
            "per_second": round(n / elapsed, 1),
            "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
            "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
            "server_cpu_ms_per_request": round(cpu * 1000 / n, 4) if n else None,
            "client_cpu_ms_per_request": round(client_cpu * 1000 / n, 4) if n else None,
            "outcomes": outcomes if run == "auth" else {"answered": n},
            "machine_load_1min_before": round(load, 2),
        }
        if run == "auth":
            from issuer.bootstrap import open_issuer

            with open_issuer(home, db_url=args.db, passphrase=PASS) as app:
                report["ledger_consistent"] = not app.ledger.check()
        return report


def _table(reports: list[dict[str, Any]]) -> str:
    head = f"{'server':<10} {'run':<6} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10}"
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(
            f"{r['server']:<10} {r['run']:<6} {r['per_second']:>9.0f} {r['p50_ms'] or 0:>7.2f} "
            f"{r['p99_ms'] or 0:>7.2f} {r['server_cpu_ms_per_request'] or 0:>10.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="baseline,uvicorn,granian,issuer,issuer-tls")
    parser.add_argument("--runs", default="auth,empty")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--empty-seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--db", help="PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument("--baseline", metavar="REV", help="git revision of the baseline")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tls", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    children: dict[str, Callable[[], None]] = {
        "uvicorn": lambda: _child_uvicorn(args.workers, False),
        "uvicorn-empty": lambda: _child_uvicorn(args.workers, True),
        "baseline-empty": lambda: _child_baseline_empty(args.workers),
        "issuer-empty": lambda: _child_issuer_empty(args.workers, args.tls),
    }
    if args.child:
        children[args.child]()
        return
    args.seconds = min(args.seconds, 60.0)
    args.empty_seconds = min(args.empty_seconds, 60.0)
    servers = [s for s in args.servers.split(",") if s]
    runs = [r for r in args.runs.split(",") if r]
    tmp = Path(tempfile.mkdtemp(prefix="compare-"))
    reports = []
    try:
        tree = _baseline_tree(args.baseline, tmp / "baseline") if "baseline" in servers else None
        for _ in range(max(1, args.rounds)):
            for run in runs:
                for kind in servers:
                    report = _run(kind, run, args, tree if kind == "baseline" else None)
                    print(json.dumps(report), file=sys.stderr)
                    reports.append(report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(_table(reports))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
