"""The ``card`` command: run a software EMV card from a profile, or look inside one.

``card serve PROFILE --via pcsc|nfc`` presents the card (:class:`card.emv.EmvCard`) to
a reader: through pcscd and the vsmartcard vpcd driver (:mod:`card.vpcd`, ISO/IEC 7816-3
power control and ATR, ISO/IEC 7816-4 APDUs), or as an ISO/IEC 14443-4 Type A card
over nfcpy's udp frontend (:mod:`card.nfc`). Faults (fixtures/cards/README.md) come
from the profile and can be overridden per run by options.

What one *tap* is:

- ``--via pcsc``: one presentation to the vpcd reader (a TCP connection: the card is in
  the reader). It begins when the card is presented and ends, once at least one C-APDU
  came, when the reader powers the card off (a PC/SC client released it: pcscd powers
  an unused card down at once), when ``--idle-timeout`` passes without a C-APDU, or
  when the card leaves the field (the ``pull_after`` fault). The card is then removed
  (the connection closes) and presented again for the next tap. Every presentation,
  the first too, comes after the reader was empty for half a second, so that pcscd's
  400 ms presence poll has seen the previous card leave (:data:`card.vpcd.REMOVAL_GAP`).
- ``--via nfc``: one ISO-DEP session (RATS to DESELECT, field off, ``--idle-timeout``
  or the card pulled away) in which the reader sent at least one block
  (:func:`card.nfc.serve_nfc`).

``card qr PROFILE`` shows the phone's one-time consumer-presented QR code and ``card
pay-qr PROFILE`` pays a merchant's code (:mod:`card.qr_cli`).

``card show PROFILE`` prints what the card holds with the PAN and track data masked
(:mod:`emvwire.mask`) and keys shown only by their check values (ANSI X9.24-1 KCV).

Failures exit with the codes all four tools share (:mod:`clikit.exits`, listed by
``card --help``): 2 a bad option or profile, 9 a reader the card cannot be presented
to (vpcd not listening or busy, a udp port taken), 11 a counters folder that cannot be
made; ``--json`` adds the JSON error object on standard output (:mod:`clikit.errors`).

Both find a card's counters in the state folder (:func:`card.state.state_dir`,
``--state-dir``, ``$TAPSTACK_STATE_DIR``), never beside the profile: serving a card
from a source tree leaves that tree as it was.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import click

from card.qr_cli import pay_qr, qr
from card.scripted import ScriptedCard, ScriptError, is_scripted_profile
from card.state import CardState, StateError, default_state_path
from card.transport import CardApplication, CardRemoved
from card.vpcd import REMOVAL_GAP, VPCD_PORT, ReaderBusyError, TapEnd, serve_tap
from clikit.errors import ToolFailure, ToolGroup
from clikit.exits import Exit
from emvwire import dol
from emvwire.dictionary import Kernel, name_of
from emvwire.dump import render_value
from emvwire.errors import EmvWireError
from emvwire.mask import is_sensitive, mask_pan, mask_value
from emvwire.profile import Application, CardProfile, Faults, ProfileError, load_profile
from emvwire.tags import Tag
from emvwire.tlv import tag_hex

if TYPE_CHECKING:  # imported by ``card serve`` when it makes the card (not by --help)
    from card.emv import EmvCard  # noqa: F401 - _TapWatch names it in a string

__all__ = ["DEFAULT_NFC_PORT", "REVEALABLE_TAGS", "ReaderFailure", "cli", "describe_card", "main"]

#: nfcpy's default udp port (nfc/clf/device.py).
DEFAULT_NFC_PORT: Final = 54321
#: What ``--reveal`` unmasks: the PAN (5A) and track 2 images (57, 9F6B; Book 3 Annex A,
#: Book C-2 Annex A). Every other sensitive object (names, track 1) stays masked.
REVEALABLE_TAGS: Final = frozenset({Tag.PAN, Tag.TRACK2_EQUIVALENT, Tag.TRACK2_DATA})
#: Kernel numbers of the profile's kernels (Book B §3.2), for the dictionary.
_KERNEL_NUMBER: Final = {
    "visa": int(Kernel.VISA),
    "mastercard": int(Kernel.MASTERCARD),
    "amex": int(Kernel.AMEX),
    "unionpay": int(Kernel.VISA),  # qUICS's tags mean what kernel 3's do
}
#: Seconds between two pcsc presentations (card.vpcd.REMOVAL_GAP; tests shorten it).
_REMOVAL_GAP: Final = REMOVAL_GAP
#: Seconds to wait for vpcd's first message before calling the reader busy.
_BUSY_TIMEOUT: Final = 3.0
#: Text output shows at most this many hex digits of a long value.
_SHOW_HEX: Final = 40
_STATUS_WORD_FIRST = frozenset(range(0x61, 0x70)) | frozenset(range(0x90, 0xA0))

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: ``--state-dir``, as ``serve`` and ``show`` take it (card.state.state_dir).
_state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the counters files, one per profile, named from its file name and"
    " path (default: $TAPSTACK_STATE_DIR, else $XDG_STATE_HOME/tapstack/cards, else"
    " ~/.local/state/tapstack/cards; never beside the profile).",
)


class ReaderFailure(ToolFailure):
    """The reader the card is presented to cannot be reached, is busy or went away
    (exit 9)."""

    exit_code = Exit.READER


@click.group(cls=ToolGroup, context_settings=CONTEXT)
@click.version_option(package_name="tapstack")
def cli() -> None:
    """tapstack card: EMV contactless cards in software."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="card")


# --- options -------------------------------------------------------------------------


def _hex_byte_pairs(
    value: tuple[str, ...], option: str, parse_right: Callable[[str], Any], example: str
) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for item in value:
        left, sep, right = item.partition("=")
        try:
            if not sep or len(left.strip()) != 2:
                raise ValueError
            ins = bytes.fromhex(left.strip())[0]
            out[ins] = parse_right(right.strip())
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise click.BadParameter(
                f"{item!r}: expected INS={example}{detail}", param_hint=option
            ) from None
    return out


def _status_word(text: str) -> int:
    if len(text) != 4:
        raise ValueError("the status word is 4 hex digits")
    sw = int.from_bytes(bytes.fromhex(text), "big")
    if sw >> 8 not in _STATUS_WORD_FIRST:
        raise ValueError("SW1 must be 61-6F or 90-9F (ISO/IEC 7816-4 §5.1.3)")
    return sw


def _corrupt_mode(text: str) -> str:
    if text not in ("truncate", "garble"):
        raise ValueError("the mode is truncate or garble")
    return text


def _wrong_sw_option(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Any:
    return _hex_byte_pairs(value, "--wrong-sw", _status_word, "SW in hex, e.g. A8=6985")


def _corrupt_option(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Any:
    return _hex_byte_pairs(value, "--corrupt", _corrupt_mode, "truncate|garble, e.g. A8=garble")


def _load(path: Path) -> CardProfile:
    try:
        return load_profile(path)
    except ProfileError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="PROFILE") from None


def _faults(
    base: Faults,
    *,
    pull_after: int | None,
    delay_ms: float | None,
    wrong_sw: Mapping[int, int],
    corrupt: Mapping[int, str],
    wrong_key: bool,
    atc_rollback: int | None,
) -> Faults:
    """The profile's faults with the command line's on top (mappings merge per INS)."""
    return Faults(
        pull_after=base.pull_after if pull_after is None else pull_after,
        delay_ms=base.delay_ms if delay_ms is None else delay_ms,
        wrong_sw={**base.wrong_sw, **wrong_sw},
        corrupt={**base.corrupt, **corrupt},
        wrong_key=base.wrong_key or wrong_key,
        atc_rollback=base.atc_rollback if atc_rollback is None else atc_rollback,
    )


def _describe_faults(f: Faults) -> str:
    parts = []
    if f.pull_after is not None:
        parts.append(f"pull after {f.pull_after} APDUs")
    if f.delay_ms:
        parts.append(f"delay {f.delay_ms:g} ms")
    parts += [f"INS {ins:02X} -> {sw:04X}" for ins, sw in sorted(f.wrong_sw.items())]
    parts += [f"INS {ins:02X} {mode}" for ins, mode in sorted(f.corrupt.items())]
    if f.wrong_key:
        parts.append("wrong key")
    if f.atc_rollback:
        parts.append(f"ATC rollback {f.atc_rollback}")
    return ", ".join(parts) or "none"


# --- serve ---------------------------------------------------------------------------


_C = TypeVar("_C", bound=CardApplication)


@dataclass
class _Watch(Generic[_C]):
    """A :class:`~card.transport.CardApplication` in front of a card, counting a tap:
    the C-APDUs received and answered, and the time from the first to the last answer."""

    card: _C
    received: int = 0
    answered: int = 0
    first: float = 0.0
    last: float = 0.0

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> None:
        self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def process(self, c_apdu: bytes) -> bytes:
        now = time.perf_counter()
        if not self.received:
            self.first = now
        self.received += 1
        try:
            answer = self._answer(c_apdu)
        finally:
            self.last = time.perf_counter()
            self._answered_by()
        self.answered += 1
        return answer

    def _answer(self, c_apdu: bytes) -> bytes:
        """The card's R-APDU (a subclass notes what it must on the way)."""
        return self.card.process(c_apdu)

    def _answered_by(self) -> None:
        """After each C-APDU, answered or not: a subclass notes the selected application."""

    def reset(self) -> None:
        self.received = self.answered = 0

    def _identity(self) -> tuple[str | None, str | None, int]:
        """The tap's AID (hex), application label and ATC for :meth:`report`."""
        raise NotImplementedError

    def report(self, number: int, via: str, end: str) -> dict[str, Any]:
        """The tap as JSON-ready data (no PAN: AID, label, counts, ATC)."""
        aid, label, atc = self._identity()
        return {
            "tap": number,
            "via": via,
            "apdus": self.answered,
            "end": end,
            "aid": aid,
            "label": label,
            "atc": atc,
            "ms": round(1e3 * (self.last - self.first), 3) if self.received else 0.0,
        }


@dataclass
class _TapWatch(_Watch["EmvCard"]):
    """The :class:`_Watch` of an EMV card: notes a card pulled away and the AID used."""

    pulled: bool = False
    aid: bytes | None = None

    def _answer(self, c_apdu: bytes) -> bytes:
        try:
            return self.card.process(c_apdu)
        except CardRemoved:
            self.pulled = True
            raise

    def _answered_by(self) -> None:
        selected = self.card.selected
        if selected is not None:
            self.aid = selected.aid

    def reset(self) -> None:
        super().reset()
        self.pulled = False
        self.aid = None

    def _identity(self) -> tuple[str | None, str | None, int]:
        app = next(
            (a for a in self.card.profile.applications if a.aid == self.aid),
            self.card.profile.applications[0],
        )
        atc = self.card.counters(app.aid).atc
        if self.aid is None:
            return None, None, atc
        return app.aid.hex().upper(), app.label, atc


@dataclass
class _ScriptedWatch(_Watch[ScriptedCard]):
    """The :class:`_Watch` of a scripted card (:mod:`card.scripted`): no AID is noted and
    a scripted card has no ATC (0); the label is the card's name."""

    def _identity(self) -> tuple[str | None, str | None, int]:
        return None, self.card.name, 0


def _serve_scripted(
    profile: Path, port: int, taps: int | None, idle_timeout: float | None, as_json: bool
) -> None:
    """``card serve`` of a scripted card profile (entry point tests), through vpcd."""
    try:
        card = ScriptedCard.from_file(profile)
    except ScriptError as exc:
        raise click.BadParameter(f"{profile}: {exc}", param_hint="PROFILE") from None
    click.echo(f"presenting scripted card {card.name!r} on vpcd port {port}", err=True)
    with _stop_on_signals() as stop:
        done = _serve_pcsc(_ScriptedWatch(card), port, taps, idle_timeout, stop, as_json)
        if stop.is_set():
            click.echo(f"stopped after {done} taps", err=True)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM (in the main thread; elsewhere just an event)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _emit(report: dict[str, Any], as_json: bool) -> None:
    atc = f"ATC {report['atc']:04X}"
    where = f", {report['label']}" if report["label"] else ""
    click.echo(
        f"tap {report['tap']}: {report['apdus']} APDUs, {atc}{where}, {report['end']}"
        f" ({report['ms']:.1f} ms)",
        err=True,
    )
    if as_json:
        click.echo(json.dumps(report, separators=(",", ":")))


def _serve_pcsc(
    watch: _TapWatch | _ScriptedWatch,
    port: int,
    taps: int | None,
    idle_timeout: float | None,
    stop: threading.Event,
    as_json: bool,
) -> int:
    done = 0
    # every presentation, the first too, after the reader was empty for a pcscd poll
    while (taps is None or done < taps) and not stop.wait(_REMOVAL_GAP):
        watch.reset()
        try:
            tap = serve_tap(
                watch,
                port=port,
                stop=stop,
                end_on_power_off=True,
                idle_timeout=idle_timeout,
                busy_timeout=_BUSY_TIMEOUT,
            )
        except ReaderBusyError:
            raise ReaderFailure(
                f"the vpcd reader on port {port} is busy: another card is presented there "
                f"(or pcscd does not poll it); stop that card, or serve on the other reader "
                f"(--reader)"
            ) from None
        except ConnectionRefusedError:
            raise ReaderFailure(
                f"vpcd is not listening on 127.0.0.1:{port}: is pcscd with vsmartcard-vpcd "
                f"running? (apt-get install pcscd vsmartcard-vpcd; pcscd --foreground)"
            ) from None
        except OSError as exc:
            raise ReaderFailure(
                f"cannot reach vpcd on port {port}: {exc}; check that pcscd runs"
            ) from None
        if watch.received:
            done += 1
            _emit(watch.report(done, "pcsc", tap.end.value), as_json)
        elif tap.end is TapEnd.CLOSED:
            raise ReaderFailure(
                f"vpcd on port {port} closed the connection (pcscd stopped?): start pcscd "
                "again, then the card"
            )
        if tap.end is TapEnd.STOPPED:
            break
    return done


def _check_udp_port(port: int) -> None:
    """nfcpy's udp listener fails to bind in silence and retries for ever: check first."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))  # where nfcpy's udp card listens  # noqa: S104
        except OSError as exc:
            raise ReaderFailure(
                f"udp port {port} is busy ({exc.strerror}): another card or program uses it; "
                "stop it, or choose another --port"
            ) from None


def _serve_nfc(
    watch: _TapWatch,
    port: int,
    taps: int | None,
    idle_timeout: float | None,
    stop: threading.Event,
    as_json: bool,
) -> int:
    from card.nfc import PiccParameters, ServeStats, serve_nfc

    _check_udp_port(port)
    uid = watch.card.uid
    params = PiccParameters(uid=uid if len(uid) in (4, 7) and uid[0] != 0x88 else None)
    path = f"udp:127.0.0.1:{port}"
    done = 0
    while (taps is None or done < taps) and not stop.is_set():
        watch.reset()
        stats = ServeStats()
        try:
            serve_nfc(
                watch,
                path=path,
                taps=1,
                stop=stop,
                params=params,
                idle_timeout=idle_timeout,
                stats=stats,
            )
        except OSError as exc:
            raise ReaderFailure(
                f"cannot listen on {path}: {exc.strerror or exc} (is the port busy?); choose "
                "another --port"
            ) from None
        if stats.taps:
            done += 1
            _emit(watch.report(done, "nfc", stats.ends[-1].value), as_json)
    return done


@cli.command(context_settings=CONTEXT)
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--via",
    type=click.Choice(["pcsc", "nfc"]),
    required=True,
    help="pcsc: a vpcd reader of pcscd; nfc: nfcpy's udp frontend.",
)
@click.option(
    "--reader",
    type=click.IntRange(min=0),
    default=None,
    help="vpcd reader number (pcsc): 0 = 'Virtual PCD 00 00' (port 35963), 1 = '00 01'.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), help="TCP port of vpcd, or udp port for nfc (54321)."
)
@click.option(
    "--taps",
    type=click.IntRange(min=1),
    help="Serve this many taps, then exit (default: until Ctrl-C).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Counters file (default: the profile's file in the state folder, --state-dir).",
)
@_state_dir_option
@click.option("--no-persist", is_flag=True, help="Keep counters in memory only.")
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="End a tap this long after its last C-APDU (default: never).",
)
@click.option("--no-faults", is_flag=True, help="Ignore the profile's faults.")
@click.option(
    "--pull-after",
    type=click.IntRange(min=0),
    metavar="N",
    help="Fault: leave the field after answering N C-APDUs.",
)
@click.option(
    "--delay-ms",
    type=click.FloatRange(min=0),
    metavar="MS",
    help="Fault: hold every answer back MS milliseconds.",
)
@click.option(
    "--wrong-sw",
    multiple=True,
    callback=_wrong_sw_option,
    metavar="INS=SW",
    help="Fault: answer INS with status word SW (hex, repeatable), e.g. A8=6985.",
)
@click.option(
    "--corrupt",
    multiple=True,
    callback=_corrupt_option,
    metavar="INS=MODE",
    help="Fault: truncate or garble the answer to INS (repeatable).",
)
@click.option("--wrong-key", is_flag=True, help="Fault: cryptograms under a key the issuer lacks.")
@click.option(
    "--atc-rollback",
    type=click.IntRange(0, 0xFFFF),
    metavar="N",
    help="Fault: set the ATC back by N at every power on (a clone).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per tap on stdout.")
def serve(
    profile: Path,
    via: str,
    reader: int | None,
    port: int | None,
    taps: int | None,
    state: Path | None,
    state_dir: Path | None,
    no_persist: bool,
    idle_timeout: float | None,
    no_faults: bool,
    pull_after: int | None,
    delay_ms: float | None,
    wrong_sw: dict[int, int],
    corrupt: dict[int, str],
    wrong_key: bool,
    atc_rollback: int | None,
    as_json: bool,
) -> None:
    """Present the card of PROFILE to a reader, one tap after another.

    A pcsc tap ends when the reader powers the card off after a C-APDU (the client
    released it), after --idle-timeout, or when the card is pulled (pull-after); the
    card is then removed and presented again. Progress goes to stderr; Ctrl-C or
    SIGTERM stops cleanly. The counters (ATC, offline counters) persist in the state
    folder (--state-dir), so the ATC keeps rising from one run to the next.
    """
    if state is not None and no_persist:
        raise click.UsageError("--state and --no-persist exclude each other")
    if state_dir is not None and (state is not None or no_persist):
        raise click.UsageError("--state-dir goes with neither --state nor --no-persist")
    if via == "nfc" and reader is not None:
        raise click.UsageError("--reader is for --via pcsc; give --port for nfc")
    if is_scripted_profile(profile):  # a scripted card (card.scripted): vpcd only
        if via != "pcsc":
            raise click.UsageError("a scripted card profile is served with --via pcsc")
        options = (pull_after, delay_ms, atc_rollback, state, state_dir)
        if any(o is not None for o in options) or wrong_sw or corrupt or wrong_key:
            raise click.UsageError(
                "faults and counters do not apply to a scripted card: its profile scripts"
                " every answer (events: collisions, remove_after)"
            )
        target = port if port is not None else VPCD_PORT + (reader or 0)
        _serve_scripted(profile, target, taps, idle_timeout, as_json)
        return
    loaded = _load(profile)
    faults = _faults(
        Faults() if no_faults else loaded.faults,
        pull_after=pull_after,
        delay_ms=delay_ms,
        wrong_sw=wrong_sw,
        corrupt=corrupt,
        wrong_key=wrong_key,
        atc_rollback=atc_rollback,
    )
    loaded = replace(loaded, faults=faults)
    state_path = None if no_persist else (state or default_state_path(profile, state_dir))
    from card.emv import EmvCard

    try:
        card = EmvCard(loaded, state_path=state_path)
    except StateError as exc:
        raise click.BadParameter(f"{state_path}: {exc}", param_hint="--state") from None
    if state_path is not None:
        try:
            state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ToolFailure.of(
                f"cannot make the counters folder {state_path.parent}: {exc.strerror}; "
                "choose another with --state-dir (or --no-persist)",
                Exit.STORAGE,
            ) from None
    if via == "pcsc":
        target = port if port is not None else VPCD_PORT + (reader or 0)
        where = f"vpcd port {target}"
        if port is None:  # the reader name of Debian's vpcd configuration
            where += f" (reader 'Virtual PCD 00 {reader or 0:02d}')"
    else:
        target = port if port is not None else DEFAULT_NFC_PORT
        where = f"nfcpy udp:127.0.0.1:{target}"
    click.echo(
        f"presenting {loaded.name!r} on {where}; faults: {_describe_faults(faults)}; "
        f"counters: {state_path or 'in memory'}",
        err=True,
    )
    watch = _TapWatch(card)
    with _stop_on_signals() as stop:
        run = _serve_pcsc if via == "pcsc" else _serve_nfc
        done = run(watch, target, taps, idle_timeout, stop, as_json)
        if stop.is_set():
            click.echo(f"stopped after {done} taps", err=True)


# --- show ----------------------------------------------------------------------------


def _key_check(key: bytes, cvn: int) -> dict[str, str]:
    """KCV of a key (never the key), by the cipher of the CVN's master keys: TDES, AES
    (CMAC method) or SM4 (SM4 of a zero block)."""
    # The ciphers load for `card show` only.
    from emvwire.crypto import kcv, kcv_aes
    from emvwire.crypto.cryptogram import MasterKeyDerivation, cvn_spec
    from emvwire.crypto.sm import kcv_sm4

    method = cvn_spec(cvn).master_key
    if method is MasterKeyDerivation.SM4:
        return {"algorithm": "SM4", "kcv": kcv_sm4(key).hex().upper()}
    if method is MasterKeyDerivation.AES or len(key) == 32:
        return {"algorithm": "AES", "kcv": kcv_aes(key).hex().upper()}
    return {"algorithm": "TDES", "kcv": kcv(key).hex().upper()}


def _sm2_summary(private: bytes) -> dict[str, Any]:
    """The ICC SM2 key of the SM suite: its curve and a fingerprint of its public key
    (the leftmost 3 bytes of SM3(x || y)), never the key."""
    from emvwire.crypto.sm import sm3
    from emvwire.crypto.sm2 import Sm2PrivateKey

    key = Sm2PrivateKey.from_bytes(private)
    fingerprint = sm3(key.public.to_bytes(prefix=False))[:3].hex().upper()
    return {"curve": key.curve.name, "fingerprint": fingerprint}


def _rsa_summary(pem: bytes) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return {"error": "not a readable PEM private key"}
    if not isinstance(key, rsa.RSAPrivateKey):
        return {"error": "not an RSA key"}
    public = key.public_key().public_numbers()
    return {"bits": public.n.bit_length(), "exponent": public.e}


def _data_object(tag: int, value: bytes, kernel: int, reveal: bool) -> dict[str, Any]:
    clear = reveal and tag in REVEALABLE_TAGS
    masked = is_sensitive(tag) and not clear
    return {
        "tag": tag_hex(tag),
        "name": name_of(tag, kernel),
        "length": len(value),
        "value": mask_value(tag, value) if masked else value.hex().upper(),
        "display": render_value(tag, value, reveal=not masked, kernel=kernel),
        "masked": masked,
    }


def _date(value: bytes | None) -> str | None:
    if value is None or len(value) != 3:
        return None
    text = value.hex()
    return f"20{text[:2]}-{text[2:4]}-{text[4:]}" if text.isdigit() else None


def _application(app: Application, counters: dict[str, Any], reveal: bool) -> dict[str, Any]:
    kernel = _KERNEL_NUMBER[app.kernel]
    in_records = {tag for rec in app.records for tag in rec.tags}
    try:
        pdol = [
            {"tag": tag_hex(e.tag), "name": name_of(e.tag, kernel), "length": e.length}
            for e in dol.parse(app.pdol)
        ]
    except EmvWireError:
        pdol = [{"error": "malformed PDOL", "hex": app.pdol.hex().upper()}]
    return {
        "aid": app.aid.hex().upper(),
        "label": app.label,
        "kernel": app.kernel,
        "cvn": app.cvn,
        "pan": app.pan if reveal else mask_pan(app.pan),
        "psn": app.psn,
        "expiry": _date(app.data.get(Tag.EXPIRATION_DATE)),
        "effective": _date(app.data.get(Tag.EFFECTIVE_DATE)),
        "priority": app.priority,
        "kernel_id": app.kernel_id.hex().upper() if app.kernel_id is not None else None,
        "aip": app.aip.hex().upper(),
        "afl": app.afl().hex().upper(),
        "pdol": pdol,
        "keys": {
            "ac": _key_check(app.keys.ac, app.cvn),
            "smi": _key_check(app.keys.smi, app.cvn),
            "smc": _key_check(app.keys.smc, app.cvn),
        },
        "icc_rsa_key": _rsa_summary(app.rsa.pem) if app.rsa is not None else None,
        "icc_sm2_key": _sm2_summary(app.sm2.private) if app.sm2 is not None else None,
        "token": (
            {
                "requestor_id": app.token.requestor_id,
                "par": mask_value(Tag.PAR, app.token.par.encode())
                if is_sensitive(Tag.PAR)
                else app.token.par,
                "pan_last4": app.token.pan_last4,
            }
            if app.token is not None
            else None
        ),
        "cdcvm": app.cdcvm,
        "limits": dict(app.limits),
        "counters": counters,
        "records": [
            {
                "sfi": rec.sfi,
                "record": rec.number,
                "oda": rec.oda,
                "objects": [
                    _data_object(t, app.data[t], kernel, reveal)
                    if t in app.data
                    else {"tag": tag_hex(t), "name": name_of(t, kernel), "missing": True}
                    for t in rec.tags
                ],
            }
            for rec in app.records
        ],
        "other_data": [
            _data_object(t, v, kernel, reveal) for t, v in app.data.items() if t not in in_records
        ],
    }


def describe_card(
    profile: CardProfile, state_path: Path | None, *, reveal: bool = False
) -> dict[str, Any]:
    """What ``card show`` prints, as JSON-ready data: no key, PAN and tracks masked.

    Counters come from ``state_path`` when that file exists, else from the profile.
    ``reveal`` unmasks the PAN and track 2 only (:data:`REVEALABLE_TAGS`).
    """
    source = "profile"
    state = None
    if state_path is not None and state_path.exists():
        state = CardState(profile.applications, state_path)
        source = str(state_path)
    apps = []
    for app in profile.applications:
        if state is not None:
            counters = state[app.aid].to_json()
        else:
            c = app.counters
            counters = {
                "atc": c.atc,
                "last_online_atc": c.last_online_atc,
                "offline_count": c.offline_count,
                "offline_amount": c.offline_amount,
                "blocked": False,
            }
        apps.append(_application(app, counters, reveal))
    return {
        "name": profile.name,
        "form": profile.form,
        "atr": profile.atr.hex().upper(),
        "uid": profile.uid.hex().upper(),
        "pse": profile.pse,
        "faults": _describe_faults(profile.faults),
        "counters_from": source,
        "applications": apps,
    }


def _object_line(obj: dict[str, Any]) -> str:
    head = f"      {obj['tag']:<6} {obj['name']}: "
    if obj.get("missing"):
        return head + "(not held)"
    if obj["masked"] or len(obj["value"]) <= _SHOW_HEX:
        return head + str(obj["display"])
    return head + f"{obj['value'][:_SHOW_HEX]}... ({obj['length']} bytes)"


def _render(info: dict[str, Any]) -> str:
    lines = [
        f"{info['name']} ({info['form']})",
        f"  ATR {info['atr']}, UID {info['uid']}, PSE {'yes' if info['pse'] else 'no'}",
        f"  faults: {info['faults']}",
        f"  counters from: {info['counters_from']}",
    ]
    for a in info["applications"]:
        keys = ", ".join(
            f"{name.upper()} {k['algorithm']} KCV {k['kcv']}" for name, k in a["keys"].items()
        )
        c = a["counters"]
        lines += [
            "",
            f"Application {a['aid']} {a['label']!r}: {a['kernel']}, CVN {a['cvn']}",
            f"  PAN {a['pan']}, PSN {a['psn']}, expiry {a['expiry']} (effective {a['effective']})",
            f"  priority {a['priority']}, kernel id {a['kernel_id']}, AIP {a['aip']},"
            f" AFL {a['afl']}",
        ]
        lines += [f"  PDOL:{' none' if not a['pdol'] else ''}"] + [
            f"      {e['tag']:<6} {e['name']}: {e['length']} bytes"
            if "tag" in e
            else f"      {e['error']}: {e['hex']}"
            for e in a["pdol"]
        ]
        lines.append(f"  keys: {keys}")
        rsa = a["icc_rsa_key"]
        if rsa is not None:
            lines.append(
                f"  ICC RSA key: {rsa['bits']} bits, exponent {rsa['exponent']}"
                if "bits" in rsa
                else f"  ICC RSA key: {rsa['error']}"
            )
        sm2 = a["icc_sm2_key"]
        if sm2 is not None:
            lines.append(f"  ICC SM2 key: {sm2['curve']}, public key SM3 {sm2['fingerprint']}")
        token = a["token"]
        if token is not None:
            lines.append(
                f"  token: requestor {token['requestor_id']}, PAR {token['par']},"
                f" PAN last 4 {token['pan_last4']}"
            )
        limits = ", ".join(f"{k} {v}" for k, v in a["limits"].items()) or "none"
        lines += [
            f"  CDCVM {'yes' if a['cdcvm'] else 'no'}; limits: {limits}",
            f"  counters: ATC {c['atc']:04X}, last online ATC {c['last_online_atc']:04X},"
            f" offline {c['offline_count']} taps / {c['offline_amount']},"
            f" {'BLOCKED' if c['blocked'] else 'not blocked'}",
            "  records:",
        ]
        for rec in a["records"]:
            oda = ", signed for ODA" if rec["oda"] else ""
            lines.append(f"    SFI {rec['sfi']} record {rec['record']}{oda}")
            lines += [_object_line(o) for o in rec["objects"]]
        lines.append("  other data (FCI, GPO, GENERATE AC):")
        lines += [_object_line(o) for o in a["other_data"]]
    return "\n".join(lines)


@cli.command(context_settings=CONTEXT)
@click.argument("profile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")
@click.option("--reveal", is_flag=True, help="Show the PAN and track 2 in clear (never keys).")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Counters file (default: the profile's file in the state folder, if there).",
)
@_state_dir_option
def show(
    profile: Path, as_json: bool, reveal: bool, state: Path | None, state_dir: Path | None
) -> None:
    """What the card of PROFILE holds: applications, masked data, key KCVs, counters."""
    if state is not None and state_dir is not None:
        raise click.UsageError("--state and --state-dir exclude each other")
    loaded = _load(profile)
    target = state or default_state_path(profile, state_dir)
    try:
        info = describe_card(loaded, target, reveal=reveal)
    except StateError as exc:
        raise click.BadParameter(str(exc), param_hint="--state") from None
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(_render(info))


cli.add_command(qr)
cli.add_command(pay_qr)
