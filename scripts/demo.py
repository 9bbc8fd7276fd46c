"""The tapstack demo: a day of real taps, from provisioning to the issuer's ledger.

Run with ``scripts/demo`` (which sets up .venv). With embedded defaults (SQLite,
software cards), in a temporary folder, it

1. runs emvwire's self-check (published EMV vectors, an ODA round trip);
2. makes an issuer (``issuer init``: its own CA and server certificate in the
   temporary folder), three accounts, a Visa card for Ada, a Mastercard phone token
   (bound to a Mastercard card) for Grace and a UnionPay card for Li Lei, a visitor,
   and three terminals with their TLS client
   certificates: a shop (MCC 5411), the metro's back office (4111) and a car park
   (7523); the back office makes its own CA and its gate's certificate;
3. starts ``issuer serve`` and the transit back office (``backoffice serve``), both
   with mutual TLS: each client presents its certificate and verifies its server's
   with the demo's CAs;
4. taps, each card served by ``card serve`` behind pcscd + vpcd when pcscd runs, on
   the software card in process (``emulated:``) otherwise:
   a retail purchase and a partial refund (``terminal retail``), Li Lei's purchase
   with his UnionPay card (kernel 7) in the same shop, two shop sales paid by QR code
   with Grace's phone (its consumer-presented code scanned by the till; the till's
   dynamic code paid by the phone's wallet, ``card qr`` and ``card pay-qr``), the day
   closed at the shop, four metro rides with
   the phone (``terminal gate transit``; the third reaches the daily cap), the
   back office's deferred authorisation and aggregation at the issuer, and a parking
   stay of 2 h 15 min with the Visa card (``terminal gate parking``);
5. prints each outcome as it happens (a gate's taps as they come) and a summary
   (issuer balances, back office trips and fares), and checks that they agree.

``--in-process`` taps in process even when pcscd runs. ``--show-commands`` prints, before
each step's outcome, the command lines that reproduce it (``$ issuer account create
...``): the demo's folder as ``$DEMO``, the keys a command printed once as shell
variables (``$SHOP_KEY``), never their values. Exit status 0 when every step did what
it should and the books agree; 1 otherwise.
Every number shown is masked (PANs, tokens) as the commands print them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_READER = 1  # 'Virtual PCD 00 01', unless --reader says otherwise
#: Not a secret: the demo's key store lives in a temporary folder that is thrown away.
PASSPHRASE = "demo passphrase"  # noqa: S105


class DemoError(Exception):
    """A step did not do what it should: the message says which and why."""


def _pcsc_available(reader: int) -> str | None:
    """Why the PC/SC path through vpcd reader ``reader`` cannot be used, or None when it
    can."""
    if not PCSCD_SOCKET.exists():
        return "pcscd is not running"
    try:
        from smartcard.System import readers
    except ImportError:
        return "pyscard is not installed"
    try:
        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises several unrelated types
        return f"pcscd did not answer ({exc})"
    if f"Virtual PCD 00 0{reader}" not in names:
        return "no vpcd virtual reader (install vsmartcard-vpcd)"
    return None


def _eur(minor: int) -> str:
    return f"{minor / 100:.2f} EUR"


class Demo:
    """The demo's folder, environment and background services; with ``show_commands``
    each command line is printed before it runs (module docstring)."""

    def __init__(
        self, folder: Path, via_pcsc: bool, show_commands: bool = False, reader: int = VPCD_READER
    ) -> None:
        self.folder = folder
        self.via_pcsc = via_pcsc
        self.reader = reader
        self.show_commands = show_commands
        #: Values a command printed once (keys), shown as shell variables: value -> name.
        self.secrets: dict[str, str] = {}
        self.env = {
            **os.environ,
            "TAPSTACK_ISSUER_HOME": str(folder / "issuer"),
            "TAPSTACK_KEYSTORE_KEY": PASSPHRASE,
            "TAPSTACK_BACKOFFICE_HOME": str(folder / "backoffice"),
            # each line a child prints reaches the demo when it is printed
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("TAPSTACK_DB", "TAPSTACK_ISSUER_URL", "TAPSTACK_TERMINAL_ID",
                     "TAPSTACK_TERMINAL_KEY", "TAPSTACK_READER", "TAPSTACK_ISSUER_CA",
                     "TAPSTACK_TERMINAL_CERT", "TAPSTACK_TERMINAL_CERT_KEY",
                     "TAPSTACK_DEV_PLAIN_HTTP"):  # fmt: skip
            self.env.pop(name, None)
        self.services: list[subprocess.Popen[str]] = []

    # -- commands ------------------------------------------------------------------------

    def secret(self, value: str, name: str) -> None:
        """From now on show ``value`` (a key a command printed once) as ``$name``."""
        self.secrets[value] = name
        if self.show_commands:
            print(f"   # ${name}: the key the command above printed (once)")

    def show(self, args: tuple[str, ...] | list[str], background: bool = False) -> None:
        """Print the command line of ``args`` (with ``show_commands``)."""
        if not self.show_commands:
            return
        folder = str(self.folder)
        words = []
        for arg in args:
            if arg in self.secrets:
                words.append(f'"${self.secrets[arg]}"')
            elif folder in arg:
                words.append('"' + arg.replace(folder, "$DEMO") + '"')
            else:
                words.append(shlex.quote(arg))
        print(f"   $ {' '.join(words)}{' &' if background else ''}")

    def environment(self) -> None:
        """Print the environment every command of the demo runs with."""
        if self.show_commands:
            print(f"   $ export DEMO={shlex.quote(str(self.folder))}")
            for name in ("TAPSTACK_ISSUER_HOME", "TAPSTACK_BACKOFFICE_HOME"):
                where = self.env[name].replace(str(self.folder), "$DEMO")
                print(f'   $ export {name}="{where}"')
            print(f"   $ export TAPSTACK_KEYSTORE_KEY={shlex.quote(PASSPHRASE)}"
                  "   # the demo's own, thrown away with its folder")  # fmt: skip

    def run(self, *args: str, ok: tuple[int, ...] = (0,), stdin: str | None = None) -> str:
        """A tapstack command (``issuer ...``, ``terminal ...``); its standard output."""
        self.show(args)
        done = subprocess.run(  # noqa: S603 - our own console scripts
            [str(BIN / args[0]), *args[1:]], env=self.env, input=stdin,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode not in ok:
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
            raise DemoError(f"`{' '.join(args[:3])}` exited {done.returncode}: {' | '.join(why)}")
        return done.stdout

    def json(self, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        return json.loads(self.run(*args, "--json", ok=ok))

    def lines(
        self, *args: str, ok: tuple[int, ...] = (0,), stdin: str | None = None
    ) -> list[dict[str, Any]]:
        """A command printing one JSON object per line."""
        out = self.run(*args, "--json", ok=ok, stdin=stdin)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def stream(self, *args: str) -> Iterator[dict[str, Any]]:
        """A command printing one JSON object per line: each object as it is printed
        (a gate's taps as they come), then :class:`DemoError` if it failed."""
        argv = [*args, "--json"]
        self.show(argv)
        proc = subprocess.Popen(  # noqa: S603 - our own console scripts
            [str(BIN / argv[0]), *argv[1:]], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stderr is not None
        for line in proc.stdout:
            if line.startswith("{"):
                yield json.loads(line)
        err = proc.stderr.read()
        if proc.wait(timeout=120) != 0:
            why = err.strip().splitlines()[-3:]
            raise DemoError(f"`{' '.join(args[:3])}` exited {proc.returncode}: {' | '.join(why)}")

    def serve(self, *args: str) -> str:
        """Start a service in the background; its URL (from its first line on stderr)."""
        self.show(args, background=True)
        proc = subprocess.Popen(  # noqa: S603
            [str(BIN / args[0]), *args[1:]], env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.services.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"https?://[\w.]+:\d+", line)
        if not match:
            raise DemoError(f"`{' '.join(args[:2])}` did not start: {line.strip()}")
        # Keep reading its messages so that it never blocks on a full pipe.
        proc.stderr.close()
        return match.group(0)

    def stop(self) -> None:
        for proc in reversed(self.services):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @contextmanager
    def card(self, profile: Path, taps: int) -> Iterator[str]:
        """The reader path for ``taps`` taps of the card of ``profile``: ``card serve``
        on vpcd (pcscd; the card leaves the field 0.4 s after its last command, as a
        hand does) or the software card in process."""
        if not self.via_pcsc:
            yield f"emulated:{profile}"
            return
        args = ["card", "serve", str(profile), "--via", "pcsc", "--reader", str(self.reader),
                "--taps", str(taps), "--idle-timeout", "0.4"]  # fmt: skip
        self.show(args, background=True)
        server = subprocess.Popen(  # noqa: S603
            [str(BIN / args[0]), *args[1:]],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stderr is not None
            line = server.stderr.readline()
            if "presenting" not in line:
                raise DemoError(f"card serve did not start: {line.strip()}")
            time.sleep(0.3)  # pcscd notices the card
            yield f"pcsc:{self.reader}"
        finally:
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.terminate()
                server.wait(timeout=5)
            if server.stderr is not None:
                server.stderr.close()


def _issuer(demo: Demo) -> dict[str, Any]:
    print("== the issuer: accounts, a Visa card, a Mastercard phone token, a UnionPay card,"
          " terminals")  # fmt: skip
    demo.json("issuer", "init", "--kdf-cost", "10")
    ada = demo.json("issuer", "account", "create", "--holder", "Ada Lovelace")["id"]
    grace = demo.json("issuer", "account", "create", "--holder", "Grace Hopper")["id"]
    lei = demo.json("issuer", "account", "create", "--holder", "Li Lei")["id"]
    for account in (ada, grace, lei):
        demo.json("issuer", "account", "credit", account, "--amount", "100.00")
    visa = demo.folder / "ada-visa-card.json"
    shown = demo.json("issuer", "card", "provision", "--account", ada, "--scheme", "visa",
                      "--form", "card", "--out", str(visa))  # fmt: skip
    phone = demo.folder / "grace-mastercard-phone.json"
    token = demo.json("issuer", "card", "provision", "--account", grace, "--scheme",
                      "mastercard", "--form", "phone", "--out", str(phone))  # fmt: skip
    unionpay = demo.folder / "lei-unionpay-card.json"
    quickpass = demo.json("issuer", "card", "provision", "--account", lei, "--scheme",
                          "unionpay", "--form", "card", "--out", str(unionpay))  # fmt: skip
    print(f"   Ada   {ada}: Visa card {_masked(shown)}, 100.00 EUR")
    print(f"   Grace {grace}: Mastercard phone token {_masked(token)}, 100.00 EUR")
    print(f"   Lei   {lei}: UnionPay card {_masked(quickpass)}, 100.00 EUR")
    terminals = {}
    for role, merchant, mcc in (("shop", "Corner Shop", "5411"), ("metro", "Metro", "4111"),
                                ("park", "City Car Park", "7523")):  # fmt: skip
        t = demo.json("issuer", "terminal", "add", "--merchant", merchant, "--mcc", mcc,
                      "--city", "Paris", "--cert-dir", str(demo.folder / "certs"))  # fmt: skip
        terminals[role] = (t["id"], t["credential"], t["certificate"])
        demo.secret(t["credential"], f"{role.upper()}_KEY")
        print(f"   terminal {t['id']}: {merchant} (MCC {mcc}), TLS certificate "
              f"{t['certificate']['serial'][:12]}...")  # fmt: skip
    wallet = demo.json("issuer", "wallet", "add", "--name", "Grace's phone",
                       "--cert-dir", str(demo.folder / "certs"))  # fmt: skip
    demo.secret(wallet["credential"], "WALLET_KEY")
    print(f"   wallet {wallet['id']}: Grace's phone, TLS certificate "
          f"{wallet['certificate']['serial'][:12]}...")  # fmt: skip
    url = demo.serve("issuer", "serve", "--bind", "127.0.0.1:0")
    print(f"   issuer serve: {url}")
    return {"ada": ada, "grace": grace, "lei": lei, "visa": visa, "phone": phone,
            "unionpay": unionpay, "url": url, "terminals": terminals,
            "wallet": wallet}  # fmt: skip


def _masked(provisioned: dict[str, Any]) -> str:
    """The token, else the PAN, of ``issuer card provision --json`` (masked there)."""
    token, card = provisioned.get("token"), provisioned.get("card")
    if isinstance(token, dict):
        return str(token["token"])
    return str(card["pan"]) if isinstance(card, dict) else "(masked)"


def _tls(url: str, cert: dict[str, str], ca_option: str, ca_file: str) -> list[str]:
    """The TLS options of a client: its certificate and key from the demo's CAs and the
    CA its server (at ``url``, which must be ``https://``) is verified with."""
    if not url.startswith("https://"):
        raise DemoError(f"a service of the demo does not speak TLS: {url}")
    return [ca_option, ca_file, "--cert", cert["cert_file"], "--cert-key", cert["key_file"]]


def _host(setup: dict[str, Any], role: str) -> list[str]:
    terminal_id, key, cert = setup["terminals"][role]
    return ["--issuer", setup["url"], "--terminal-id", terminal_id, "--terminal-key", key,
            *_tls(setup["url"], cert, "--issuer-ca", cert["issuer_ca_file"])]  # fmt: skip


def _retail(demo: Demo, setup: dict[str, Any]) -> dict[str, int]:
    print("\n== the shop: a purchase of 12.50 with Ada's Visa card, then a refund of 2.50;"
          " Li Lei pays 8.80 with his UnionPay card")  # fmt: skip
    till = ["--home", str(demo.folder / "retail"), *_host(setup, "shop")]
    txn = _sale(demo, till, setup["visa"], "12.50")
    _sale(demo, till, setup["unionpay"], "8.80")
    refund = demo.json("terminal", "retail", *till, "refund", txn, "2.50")
    print(f"   REFUNDED 2.50 of {txn}: {refund.get('status', refund.get('result', 'done'))}")
    _qr_sales(demo, setup, till)
    closed = demo.json("terminal", "retail", *till, "close")
    if not closed.get("match"):
        raise DemoError(f"the till and the issuer disagree: {closed.get('differences')}")
    till = closed["till"]
    print(f"   end of day: till and issuer MATCH: {till['sales']['count']} sales "
          f"{_eur(till['sales']['amount'])} ({till['qr']['count']} by QR code), "
          f"{till['refunds']['count']} refund {_eur(till['refunds']['amount'])}, "
          f"net {_eur(till['net'])}")  # fmt: skip
    return {"ada": -1250 + 250, "grace": -420 - 380, "lei": -880}


def _qr_sales(demo: Demo, setup: dict[str, Any], till: list[str]) -> None:
    """Two shop sales paid by QR code with Grace's phone: its code scanned (4.20), the
    till's code paid by its wallet (3.80)."""
    print("   Grace pays 4.20 with her phone's QR code, then 3.80 by scanning the till's")
    code = demo.run("card", "qr", str(setup["phone"]), "--text").strip()
    (scanned,) = demo.lines("terminal", "retail", *till, "--amount", "4.20", "--scan",
                            stdin=code + "\n")  # fmt: skip
    if not scanned.get("approved"):
        raise DemoError(f"the scanned code was not approved: {scanned.get('reason')}")
    print(f"   APPROVED {scanned['card']} by its consumer-presented code: {scanned['amount']}, "
          f"ATC {scanned['atc']}, transaction {scanned['transaction_id']}")  # fmt: skip
    shown = demo.folder / "shop-code.png"
    wallet = setup["wallet"]
    pay = ["card", "pay-qr", str(setup["phone"]), "--image", str(shown), "--yes",
           "--issuer", setup["url"], "--wallet-id", wallet["id"], "--wallet-key",
           wallet["credential"], *_tls(setup["url"], wallet["certificate"], "--issuer-ca",
           wallet["certificate"]["issuer_ca_file"])]  # fmt: skip
    showing = subprocess.Popen(  # noqa: S603 - our own console script
        [str(BIN / "terminal"), "retail", *till, "--amount", "3.80", "--show-code",
         "--code-png", str(shown), "--qr-wait", "60", "--json"],
        env=demo.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (shown.exists() and shown.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        paid = demo.json(*pay)
        out, _ = showing.communicate(timeout=60)
    finally:
        if showing.poll() is None:
            showing.kill()
            showing.wait()
    receipt = json.loads(out.splitlines()[-1]) if out.strip() else {}
    if not (paid.get("approved") and receipt.get("approved")):
        raise DemoError(f"the till's code was not paid: {paid.get('reason')}")
    print(f"   APPROVED {paid['card']} paid the till's dynamic code (read from its PNG): "
          f"{receipt['amount']}, the till told by long poll, transaction "
          f"{receipt['transaction_id']}")  # fmt: skip


def _sale(demo: Demo, till: list[str], card: Path, amount: str) -> str:
    """One ``terminal retail`` purchase of ``amount`` with ``card``, approved online and
    shown: its transaction id."""
    with demo.card(card, 1) as reader:
        (sale,) = demo.lines("terminal", "retail", *till, "--reader", reader,
                             "--amount", amount, "--timeout", "20")  # fmt: skip
    receipt = sale.get("receipt", sale)
    if receipt.get("status") != "approved" and not receipt.get("approved"):
        raise DemoError(f"the purchase of {amount} was not approved: {receipt.get('reason')}")
    txn = str(receipt.get("transaction_id") or receipt.get("id"))
    print(f"   APPROVED {receipt.get('card', '')} {receipt.get('aid', '')} "
          f"{receipt.get('label', '')}: {receipt.get('amount')}, ATC {receipt.get('atc')}, "
          f"cryptogram {receipt.get('cryptogram')}, transaction {txn}")  # fmt: skip
    return txn


def _transit(demo: Demo, setup: dict[str, Any]) -> dict[str, int]:
    print("\n== the metro: four rides with Grace's phone (flat fare 2.00, daily cap 6.00)")
    demo.json("backoffice", "init")
    gate = demo.json("backoffice", "gate", "add", "--name", "Central",
                     "--cert-dir", str(demo.folder / "certs"))  # fmt: skip
    demo.secret(gate["key"], "GATE_KEY")
    office = demo.serve("backoffice", "serve", "--bind", "127.0.0.1:0",
                        *_host(setup, "metro"), "--interval", "1")  # fmt: skip
    print(f"   back office: {office}, gate {gate['gate_id']} registered")
    rides = 4
    taps = []
    with demo.card(setup["phone"], rides) as reader:
        for tap in demo.stream(
            "terminal", "gate", "transit", "--reader", reader,
            "--home", str(demo.folder / "gate"), "--backoffice", office,
            "--gate-id", gate["gate_id"], "--gate-key", gate["key"],
            "--seal-key", gate["sealing_public_key"], "--taps", str(rides),
            *_tls(office, gate["certificate"], "--backoffice-ca",
                  gate["certificate"]["backoffice_ca_file"]),
            # Taps in process come milliseconds apart, before the first upload is
            # acknowledged: let an unknown card ride up to the four of the demo.
            "--first-ride-limit", str(rides), "--timeout", "20",
        ):  # fmt: skip
            taps.append(tap)
            ms = tap.get("ms", tap.get("decision_ms"))
            took = f"{float(ms):.1f} ms" if ms is not None else "?"
            print(
                f"   {str(tap.get('decision', '?')).upper():<4} {tap.get('masked_pan', '')} "
                f"decided offline in {took}, tap {tap.get('tap_id')}"
            )
    opened = sum(1 for t in taps if t.get("decision") == "open")
    if opened != rides:
        raise DemoError(f"{opened} of {rides} rides opened the gate")
    result = demo.json("backoffice", "aggregate", "--all", *_host(setup, "metro"))
    print(
        f"   back office at the issuer: {result.get('completed', 0)} aggregation completed, "
        f"{_eur(int(result.get('captured', 0)))} captured (deferred authorisation of the "
        f"first ride at the nominal 1.00 EUR, completion up to the transit limit)"
    )
    trips = demo.json("backoffice", "trips")
    trips = trips.get("trips", trips) if isinstance(trips, dict) else trips
    charged = 0
    for trip in sorted(trips, key=lambda t: t.get("trip_id", 0)):
        charge = int(trip.get("charge", 0))
        charged += charge
        adjusted = f", {trip['adjustment']}" if trip.get("adjustment") else ""
        print(f"   trip #{trip['trip_id']}: {trip['fare_type']} {_eur(int(trip['fare']))}, "
              f"charged {_eur(charge)}{adjusted}")  # fmt: skip
    if charged != 600:
        raise DemoError(f"the rides cost {_eur(charged)}, not the daily cap of 6.00 EUR")
    return {"grace": -charged}


def _parking(demo: Demo, setup: dict[str, Any]) -> dict[str, int]:
    print("\n== the car park: Ada's Visa card in at 2 h 15 min ago, out now")
    now = datetime.now(UTC).replace(microsecond=0)
    lane = ["terminal", "gate", "parking", "--home", str(demo.folder / "park"),
            *_host(setup, "park"), "--taps", "1", "--timeout", "20"]  # fmt: skip
    fee = 0
    for when, name in ((now - timedelta(hours=2, minutes=15), "entry"), (now, "exit")):
        with demo.card(setup["visa"], 1) as reader:
            (tap,) = demo.lines(*lane, "--reader", reader, "--lane", name,
                                "--now", when.isoformat())  # fmt: skip
        barrier = "OPEN" if tap.get("open") else "CLOSED"
        money = "pre-authorised" if name == "entry" else "charged"
        amount = tap["captured"] if name == "exit" else tap["amount"]
        print(f"   {name.upper():<5} {tap['card']} barrier {barrier}: {money} "
              f"{_eur(int(amount))} ({tap.get('message', '')})")  # fmt: skip
        if not tap.get("open"):
            raise DemoError(f"the {name} barrier stayed closed: {tap.get('reason')}")
        if name == "exit":
            fee = int(tap["captured"])
    if fee <= 0:
        raise DemoError("the exit charged no fee")
    return {"ada": -fee}


def _summary(demo: Demo, setup: dict[str, Any], moves: list[dict[str, int]]) -> bool:
    print("\n== the books")
    good = True
    for who in ("ada", "grace", "lei"):
        found = demo.json("issuer", "account", "show", setup[who])
        account = found.get("account", found)
        expected = 10000 + sum(m.get(who, 0) for m in moves)
        agree = account["balance"] == expected and account["held"] == 0
        good &= agree
        print(f"   {who.title():<6} balance {_eur(account['balance'])}, held "
              f"{_eur(account['held'])}; expected {_eur(expected)}: "
              f"{'agree' if agree else 'DISAGREE'}")  # fmt: skip
    check = demo.json("issuer", "ledger", "check", ok=(0, 11))  # 11: not consistent
    consistent = bool(check["consistent"])
    good &= consistent
    print(
        f"   issuer ledger: {'balances equal their entries' if consistent else check['problems']}"
    )
    riders = demo.json("backoffice", "riders")
    riders = riders.get("riders", riders) if isinstance(riders, dict) else riders
    for r in riders:
        print(f"   back office rider {r.get('rider_id')}: {r.get('trips')} trips, "
              f"charged {_eur(int(r.get('charged', 0)))}")  # fmt: skip
    return good


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true",
                        help="tap the software cards in process even when pcscd runs")  # fmt: skip
    parser.add_argument("--show-commands", action="store_true",
                        help="print the command lines that reproduce each step")  # fmt: skip
    parser.add_argument("--reader", type=int, choices=(0, 1), default=VPCD_READER,
                        help="the vpcd reader of the taps (default: %(default)s)")  # fmt: skip
    args = parser.parse_args(argv)
    # Each outcome is printed as it happens, also into a pipe or a log.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print("== emvwire self-check")
    check = subprocess.run([sys.executable, "-m", "emvwire"], check=False)
    if check.returncode:
        return check.returncode
    why_not = "--in-process" if args.in_process else _pcsc_available(args.reader)
    via = (
        f"through pcscd + vpcd (Virtual PCD 00 0{args.reader})"
        if why_not is None
        else f"in process ({why_not})"
    )
    print(f"\n   cards are tapped {via}\n")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tapstack-demo-") as tmp:
        demo = Demo(
            Path(tmp), via_pcsc=why_not is None, show_commands=args.show_commands,
            reader=args.reader,
        )  # fmt: skip
        demo.environment()
        try:
            setup = _issuer(demo)
            moves = [_retail(demo, setup), _transit(demo, setup), _parking(demo, setup)]
            good = _summary(demo, setup, moves)
        except DemoError as exc:
            print(f"\n!! {exc}", file=sys.stderr)
            return 1
        finally:
            demo.stop()
    seconds = time.perf_counter() - started
    print(f"\n{'All consistent' if good else 'THE BOOKS DISAGREE'} ({seconds:.0f} s).")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
