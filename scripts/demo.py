"""The tapstack demo: real taps of the four fixture cards, end to end through the kernel.

Run with ``scripts/demo`` (which sets up .venv). It

1. runs emvwire's self-check (published EMV vectors, an ODA round trip);
2. copies the fixture cards to a temporary folder (their counters live there);
3. taps each card on the reader side with ``terminal pay``: through pcscd and the vpcd
   virtual reader (the card served by ``card serve --via pcsc``) when pcscd is running,
   in-process (``emulated:``) otherwise; once under the CVM limit and once over it;
4. prints each outcome as it happens and a summary table.

Until the issuer service lands the taps stop at "online request" (or an offline
approval), which is the kernel's final word without an issuer. Exit status 0 when
every tap reached the outcome expected of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARDS = ["visa-card", "visa-phone", "mastercard-card", "mastercard-phone"]
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_READER = 1  # 'Virtual PCD 00 01'


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _pcsc_available() -> str | None:
    """Why the PC/SC path cannot be used, or None when it can."""
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
    if f"Virtual PCD 00 0{VPCD_READER}" not in names:
        return "no vpcd virtual reader (install vsmartcard-vpcd)"
    return None


def _tap(profile: Path, amount: str, via_pcsc: bool) -> dict[str, object]:
    """One purchase of ``amount`` EUR with ``terminal pay``; its JSON result."""
    server = None
    if via_pcsc:
        server = subprocess.Popen(  # noqa: S603 - our own console scripts
            [_bin("card"), "serve", str(profile), "--via", "pcsc",
             "--reader", str(VPCD_READER), "--taps", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        reader = f"pcsc:{VPCD_READER}"
    else:
        reader = f"emulated:{profile}"
    try:
        done = subprocess.run(  # noqa: S603
            [_bin("terminal"), "pay", "--reader", reader, "--amount", amount,
             "--timeout", "10", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        if server is not None:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.terminate()
                server.wait(timeout=5)
    if not done.stdout.strip():
        return {"outcome": "error", "message": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> int:
    print("== emvwire self-check")
    check = subprocess.run([sys.executable, "-m", "emvwire"], check=False)
    if check.returncode:
        return check.returncode
    why_not = _pcsc_available()
    via = "pcscd + vpcd (Virtual PCD 00 01)" if why_not is None else f"in-process ({why_not})"
    print(f"\n== taps of the fixture cards through {via}")
    rows = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="tapstack-demo-") as tmp:
        for name in CARDS:
            profile = Path(tmp) / f"{name}.json"
            shutil.copy(ROOT / "fixtures" / "cards" / f"{name}.json", profile)
            os.chmod(profile, 0o600)
            for amount in ("12.34", "75.00"):
                started = time.perf_counter()
                result = _tap(profile, amount, via_pcsc=why_not is None)
                ms = (time.perf_counter() - started) * 1e3
                outcome = str(result.get("outcome"))
                good = outcome in ("online request", "approved")
                ok &= good
                line = (
                    f"{name:<17} {amount:>6} EUR  {outcome:<15} "
                    f"{result.get('pan', ''):<17} CVM {result.get('cvm', '-'):<20} "
                    f"ODA {result.get('oda', '-')}"
                )
                print(("   " if good else "!! ") + line + f"  ({ms:.0f} ms)")
                rows.append((name, amount, outcome))
    print(f"\n{sum(1 for r in rows if r[2] != 'error')} taps, "
          f"{'all reached their outcome' if ok else 'SOME FAILED'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
