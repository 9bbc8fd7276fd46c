"""The card profile: the personalisation of a software EMV card, as data.

A profile is what an issuer's personalisation writes and what ``card`` runs: for each
application its AID, label, priority and kernel id (Book B §3.3 directory entry), the
data objects it holds (Book 3 Annex A), how they are laid out in records (Book 3
§10.2, the AFL follows from the layout), its PDOL and AIP, the cryptogram version
(CVN) with its ICC master keys (AC, SMI, SMC; Book 2 A1.4), the ICC RSA key (or, on
a card of UnionPay's SM suite, the ICC SM2 key) for offline data authentication, its
limits and counters. Faults a test can ask for are part of the profile too, so no test
edits code to get a misbehaving card.

The format is JSON (schema ``tapstack.card-profile/1``, documented in
``fixtures/cards/README.md``): byte strings in hex, tags as hex strings. Loading
validates everything and reports the first problem with its path
(``applications[0].keys.ac: 15 bytes, need 16``) as a :class:`ProfileError`.

The profile holds secrets (keys, PAN): its repr masks them, and nothing here logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from emvwire.errors import EmvWireError
from emvwire.mask import mask_pan

__all__ = [
    "SCHEMA",
    "Application",
    "CardProfile",
    "Counters",
    "Faults",
    "IccKeys",
    "IccRsaKey",
    "IccSm2Key",
    "ProfileError",
    "Record",
    "TokenInfo",
    "load_profile",
    "parse_profile",
]

SCHEMA = "tapstack.card-profile/1"

Kernel = Literal["visa", "mastercard", "amex", "unionpay"]
Form = Literal["card", "phone"]

#: CVNs a software card can compute, by kernel (the issuer verifies the same set).
SUPPORTED_CVNS: Mapping[str, frozenset[int]] = {
    "visa": frozenset({10, 18, 22}),
    "mastercard": frozenset({16, 17, 20, 21}),
    # The EMV common core with TDES (CCI A5): emvwire.crypto.cryptogram.Cvn.EMV_CCD_TDES.
    "amex": frozenset({0xA5}),
    # TDES (01) or the SM4 suite (04): emvwire.crypto.cryptogram.Cvn.UNIONPAY_*.
    "unionpay": frozenset({0x01, 0x04}),
}


class ProfileError(EmvWireError, ValueError):
    """A card profile is malformed; ``path`` says where (``applications[0].aid``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a file: which data objects it holds, in order.

    ``oda`` marks a record that takes part in offline data authentication (it is
    counted in the AFL's fourth byte and signed in the static data, Book 3 §10.3).
    """

    sfi: int
    number: int
    tags: tuple[int, ...]
    oda: bool = False


@dataclass(frozen=True, slots=True)
class IccKeys:
    """The ICC master keys (Book 2 A1.4): application cryptogram, SM integrity, SM
    confidentiality. 16 bytes each (TDES) or 16/24/32 (AES CVNs)."""

    ac: bytes
    smi: bytes
    smc: bytes

    def __repr__(self) -> str:
        return "IccKeys(<hidden>)"


@dataclass(frozen=True, slots=True)
class IccRsaKey:
    """The ICC private key for DDA/fDDA/CDA (Book 2 §6), in PEM (PKCS#8)."""

    pem: bytes

    def __repr__(self) -> str:
        return "IccRsaKey(<hidden>)"


@dataclass(frozen=True, slots=True)
class IccSm2Key:
    """The ICC SM2 private key ``d`` (32 bytes) for the SM variant of fDDA
    (:mod:`emvwire.oda.sm`)."""

    private: bytes

    def __repr__(self) -> str:
        return "IccSm2Key(<hidden>)"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A payment token's data (EMVCo tokenisation): requestor id (9F19, 11 digits),
    payment account reference (9F24, 29 characters), last 4 digits of the PAN (9F25)."""

    requestor_id: str
    par: str
    pan_last4: str


@dataclass(frozen=True, slots=True)
class Counters:
    """The card's counters: ATC (9F36) and the ATC of the last online transaction
    (9F13), plus the offline state the card's risk management keeps."""

    atc: int = 0
    last_online_atc: int = 0
    offline_count: int = 0
    offline_amount: int = 0


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour a test can ask of the card (all off by default).

    - ``pull_after``: the card leaves the field after answering this many C-APDUs.
    - ``delay_ms``: each answer is held back this long.
    - ``wrong_sw``: INS (hex) -> status word returned instead of the real answer.
    - ``corrupt``: INS (hex) -> ``"truncate"`` (cut the answer's last data bytes) or
      ``"garble"`` (break the outer TLV length).
    - ``wrong_key``: cryptograms computed with a key the issuer does not have.
    - ``atc_rollback``: at power on the ATC is set back by this much (a clone).
    """

    pull_after: int | None = None
    delay_ms: float = 0.0
    wrong_sw: Mapping[int, int] = field(default_factory=dict)
    corrupt: Mapping[int, str] = field(default_factory=dict)
    wrong_key: bool = False
    atc_rollback: int = 0


@dataclass(frozen=True, slots=True)
class Application:
    """One payment application of the card."""

    aid: bytes
    label: str
    kernel: Kernel
    cvn: int
    pan: str
    psn: str
    data: Mapping[int, bytes]
    records: tuple[Record, ...]
    pdol: bytes
    aip: bytes
    keys: IccKeys
    priority: int | None = None
    kernel_id: bytes | None = None
    rsa: IccRsaKey | None = None
    sm2: IccSm2Key | None = None
    token: TokenInfo | None = None
    cdcvm: bool = False
    limits: Mapping[str, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)

    def afl(self) -> bytes:
        """The Application File Locator the records imply (Book 3 §10.2).

        Consecutive records of one SFI make one entry; ODA records must come first
        within an entry (the fourth byte counts them from the first record).
        """
        out = bytearray()
        by_sfi: dict[int, list[Record]] = {}
        for rec in self.records:
            by_sfi.setdefault(rec.sfi, []).append(rec)
        for sfi, recs in by_sfi.items():
            recs.sort(key=lambda r: r.number)
            start = 0
            while start < len(recs):
                end = start
                while end + 1 < len(recs) and recs[end + 1].number == recs[end].number + 1:
                    end += 1
                run = recs[start : end + 1]
                oda = 0
                while oda < len(run) and run[oda].oda:
                    oda += 1
                out += bytes((sfi << 3, run[0].number, run[-1].number, oda))
                start = end + 1
        return bytes(out)

    def __repr__(self) -> str:
        return (
            f"Application({self.aid.hex().upper()}, {self.label!r}, {self.kernel}, "
            f"CVN {self.cvn}, PAN {mask_pan(self.pan)})"
        )


@dataclass(frozen=True, slots=True)
class CardProfile:
    """A whole card: its applications, how it answers power-up, and its faults."""

    name: str
    form: Form
    atr: bytes
    uid: bytes
    applications: tuple[Application, ...]
    faults: Faults = field(default_factory=Faults)
    pse: bool = True

    def with_faults(self, **changes: Any) -> CardProfile:
        """A copy with some faults changed (``profile.with_faults(pull_after=2)``)."""
        return replace(self, faults=replace(self.faults, **changes))

    def __repr__(self) -> str:
        return f"CardProfile({self.name!r}, {self.form}, {list(self.applications)!r})"

    def to_json(self) -> dict[str, Any]:
        """The profile as JSON-ready data (the inverse of :func:`parse_profile`)."""
        return {
            "schema": SCHEMA,
            "name": self.name,
            "form": self.form,
            "atr": self.atr.hex().upper(),
            "uid": self.uid.hex().upper(),
            "pse": self.pse,
            "applications": [_app_to_json(a) for a in self.applications],
            "faults": _faults_to_json(self.faults),
        }

    def dump(self, path: str | Path) -> None:
        """Write the profile as JSON (mode 0600: it holds keys)."""
        target = Path(path)
        text = json.dumps(self.to_json(), indent=2) + "\n"
        target.touch(mode=0o600, exist_ok=True)
        target.write_text(text)


def _hex(b: bytes) -> str:
    return b.hex().upper()


def _tag_hex(tag: int) -> str:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big").hex().upper()


def _app_to_json(app: Application) -> dict[str, Any]:
    out: dict[str, Any] = {
        "aid": _hex(app.aid),
        "label": app.label,
        "kernel": app.kernel,
        "cvn": app.cvn,
        "pan": app.pan,
        "psn": app.psn,
        "priority": app.priority,
        "kernel_id": _hex(app.kernel_id) if app.kernel_id is not None else None,
        "pdol": _hex(app.pdol),
        "aip": _hex(app.aip),
        "data": {_tag_hex(t): _hex(v) for t, v in app.data.items()},
        "records": [
            {"sfi": r.sfi, "record": r.number, "tags": [_tag_hex(t) for t in r.tags], "oda": r.oda}
            for r in app.records
        ],
        "keys": {"ac": _hex(app.keys.ac), "smi": _hex(app.keys.smi), "smc": _hex(app.keys.smc)},
        "rsa_private_key": app.rsa.pem.decode() if app.rsa else None,
        **({"sm2_private_key": _hex(app.sm2.private)} if app.sm2 else {}),
        "token": (
            {
                "requestor_id": app.token.requestor_id,
                "par": app.token.par,
                "pan_last4": app.token.pan_last4,
            }
            if app.token
            else None
        ),
        "cdcvm": app.cdcvm,
        "limits": dict(app.limits),
        "counters": {
            "atc": app.counters.atc,
            "last_online_atc": app.counters.last_online_atc,
            "offline_count": app.counters.offline_count,
            "offline_amount": app.counters.offline_amount,
        },
    }
    return out


def _faults_to_json(f: Faults) -> dict[str, Any]:
    return {
        "pull_after": f.pull_after,
        "delay_ms": f.delay_ms,
        "wrong_sw": {f"{ins:02X}": f"{sw:04X}" for ins, sw in f.wrong_sw.items()},
        "corrupt": {f"{ins:02X}": mode for ins, mode in f.corrupt.items()},
        "wrong_key": f.wrong_key,
        "atc_rollback": f.atc_rollback,
    }


# --- parsing ---------------------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object, with the path for error messages."""

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            raise ProfileError(path, f"expected an object, found {type(obj).__name__}")
        self.obj: dict[str, Any] = obj
        self.path = path

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: Any = ...) -> Any:
        if key not in self.obj:
            if default is ...:
                raise ProfileError(self._at(key), "missing")
            return default
        return self.obj[key]

    def text(self, key: str, default: Any = ...) -> Any:
        value = self.raw(key, default)
        if value is not None and value is not default and not isinstance(value, str):
            raise ProfileError(self._at(key), "expected a string")
        return value

    def integer(self, key: str, default: Any = ..., lo: int = 0, hi: int = 2**63) -> Any:
        value = self.raw(key, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(self._at(key), "expected an integer")
        if not lo <= value <= hi:
            raise ProfileError(self._at(key), f"{value} is outside {lo}..{hi}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ProfileError(self._at(key), "expected true or false")
        return value

    def hexbytes(self, key: str, default: Any = ..., lengths: tuple[int, ...] | None = None) -> Any:
        value = self.text(key, default)
        if value is None or value is default:
            return value
        return _parse_hex(value, self._at(key), lengths)

    def digits(self, key: str, lo: int, hi: int) -> str:
        value = self.text(key)
        if not (value.isascii() and value.isdigit() and lo <= len(value) <= hi):
            raise ProfileError(self._at(key), f"expected {lo} to {hi} decimal digits")
        return str(value)


def _parse_hex(value: str, path: str, lengths: tuple[int, ...] | None = None) -> bytes:
    try:
        out = bytes.fromhex(value)
    except ValueError:
        raise ProfileError(path, "not a hex string") from None
    if lengths is not None and len(out) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise ProfileError(path, f"{len(out)} bytes, need {want}")
    return out


def _parse_tag(text: Any, path: str) -> int:
    if not isinstance(text, str):
        raise ProfileError(path, "a tag is a hex string")
    raw = _parse_hex(text, path, (1, 2, 3))
    return int.from_bytes(raw, "big")


def _parse_app(obj: Any, path: str) -> Application:
    r = _Reader(obj, path)
    kernel = r.text("kernel")
    if kernel not in SUPPORTED_CVNS:
        raise ProfileError(
            f"{path}.kernel", f"unknown kernel {kernel!r} ({', '.join(SUPPORTED_CVNS)})"
        )
    cvn = r.integer("cvn")
    if cvn not in SUPPORTED_CVNS[kernel]:
        allowed = ", ".join(str(c) for c in sorted(SUPPORTED_CVNS[kernel]))
        raise ProfileError(f"{path}.cvn", f"CVN {cvn} is not one of {allowed} for {kernel}")
    data_obj = _Reader(r.raw("data"), f"{path}.data")
    data = {
        _parse_tag(t, f"{path}.data"): _parse_hex(v, f"{path}.data.{t}")
        if isinstance(v, str)
        else _bad(f"{path}.data.{t}", "expected a hex string")
        for t, v in data_obj.obj.items()
    }
    records_raw = r.raw("records")
    if not isinstance(records_raw, list):
        raise ProfileError(f"{path}.records", "expected a list")
    records = []
    seen: set[tuple[int, int]] = set()
    for i, rec_obj in enumerate(records_raw):
        rp = f"{path}.records[{i}]"
        rr = _Reader(rec_obj, rp)
        sfi = rr.integer("sfi", lo=1, hi=30)
        number = rr.integer("record", lo=1, hi=255)
        if (sfi, number) in seen:
            raise ProfileError(rp, f"SFI {sfi} record {number} appears twice")
        seen.add((sfi, number))
        tags_raw = rr.raw("tags")
        if not isinstance(tags_raw, list) or not tags_raw:
            raise ProfileError(f"{rp}.tags", "expected a non-empty list of tags")
        tags = tuple(_parse_tag(t, f"{rp}.tags") for t in tags_raw)
        for t in tags:
            if t not in data:
                raise ProfileError(f"{rp}.tags", f"tag {_tag_hex(t)} has no value in data")
        records.append(Record(sfi, number, tags, rr.flag("oda", False)))
    keys_r = _Reader(r.raw("keys"), f"{path}.keys")
    key_lengths = (16, 24, 32)
    keys = IccKeys(
        keys_r.hexbytes("ac", lengths=key_lengths),
        keys_r.hexbytes("smi", lengths=key_lengths),
        keys_r.hexbytes("smc", lengths=key_lengths),
    )
    pem = r.text("rsa_private_key", None)
    if pem is not None and "PRIVATE KEY" not in pem:
        raise ProfileError(f"{path}.rsa_private_key", "expected a PEM private key")
    sm2 = r.hexbytes("sm2_private_key", None, lengths=(32,))
    if sm2 is not None and pem is not None:
        raise ProfileError(f"{path}.sm2_private_key", "an application has an RSA or an SM2 key")
    token_obj = r.raw("token", None)
    token = None
    if token_obj is not None:
        tr = _Reader(token_obj, f"{path}.token")
        token = TokenInfo(
            tr.digits("requestor_id", 11, 11),
            _checked_par(tr.text("par"), f"{path}.token.par"),
            tr.digits("pan_last4", 4, 4),
        )
    limits_obj = _Reader(r.raw("limits", {}), f"{path}.limits")
    limits = {k: limits_obj.integer(k) for k in limits_obj.obj}
    counters_r = _Reader(r.raw("counters", {}), f"{path}.counters")
    counters = Counters(
        counters_r.integer("atc", 0, hi=0xFFFF),
        counters_r.integer("last_online_atc", 0, hi=0xFFFF),
        counters_r.integer("offline_count", 0),
        counters_r.integer("offline_amount", 0),
    )
    kernel_id = r.hexbytes("kernel_id", None, lengths=(1, 3))
    priority = r.integer("priority", None, lo=1, hi=15)
    aip = r.hexbytes("aip", lengths=(2,))
    return Application(
        aid=r.hexbytes("aid", lengths=tuple(range(5, 17))),
        label=r.text("label"),
        kernel=kernel,
        cvn=cvn,
        pan=r.digits("pan", 12, 19),
        psn=r.digits("psn", 2, 2),
        data=data,
        records=tuple(records),
        pdol=r.hexbytes("pdol", b""),
        aip=aip,
        keys=keys,
        priority=priority,
        kernel_id=kernel_id,
        rsa=IccRsaKey(pem.encode()) if pem is not None else None,
        sm2=IccSm2Key(sm2) if sm2 is not None else None,
        token=token,
        cdcvm=r.flag("cdcvm", False),
        limits=limits,
        counters=counters,
    )


def _bad(path: str, message: str) -> bytes:
    raise ProfileError(path, message)


def _checked_par(value: str, path: str) -> str:
    if len(value) != 29 or not value.isascii() or not value.isalnum():
        raise ProfileError(path, "a payment account reference is 29 letters or digits")
    return value


def _parse_faults(obj: Any) -> Faults:
    r = _Reader(obj, "faults")
    wrong_sw = _Reader(r.raw("wrong_sw", {}), "faults.wrong_sw")
    corrupt = _Reader(r.raw("corrupt", {}), "faults.corrupt")
    modes = ("truncate", "garble")
    parsed_corrupt = {}
    for ins, mode in corrupt.obj.items():
        if mode not in modes:
            raise ProfileError(f"faults.corrupt.{ins}", f"mode is one of {', '.join(modes)}")
        parsed_corrupt[_parse_hex(ins, f"faults.corrupt.{ins}", (1,))[0]] = mode
    delay = r.raw("delay_ms", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ProfileError("faults.delay_ms", "expected a number of milliseconds >= 0")
    return Faults(
        pull_after=r.integer("pull_after", None, lo=0),
        delay_ms=float(delay),
        wrong_sw={
            _parse_hex(ins, f"faults.wrong_sw.{ins}", (1,))[0]: int.from_bytes(
                _parse_hex(sw, f"faults.wrong_sw.{ins}", (2,)), "big"
            )
            for ins, sw in wrong_sw.obj.items()
        },
        corrupt=parsed_corrupt,
        wrong_key=r.flag("wrong_key", False),
        atc_rollback=r.integer("atc_rollback", 0, hi=0xFFFF),
    )


def parse_profile(obj: Any) -> CardProfile:
    """Validate JSON data and build a :class:`CardProfile` (or raise :class:`ProfileError`)."""
    r = _Reader(obj, "")
    schema = r.text("schema")
    if schema != SCHEMA:
        raise ProfileError("schema", f"expected {SCHEMA!r}, found {schema!r}")
    form = r.text("form")
    if form not in ("card", "phone"):
        raise ProfileError("form", "expected 'card' or 'phone'")
    apps_raw = r.raw("applications")
    if not isinstance(apps_raw, list) or not apps_raw:
        raise ProfileError("applications", "expected a non-empty list")
    apps = tuple(_parse_app(a, f"applications[{i}]") for i, a in enumerate(apps_raw))
    aids = [a.aid for a in apps]
    if len(set(aids)) != len(aids):
        raise ProfileError("applications", "two applications share an AID")
    return CardProfile(
        name=r.text("name"),
        form=form,
        atr=r.hexbytes("atr"),
        uid=r.hexbytes("uid", lengths=(4, 7, 10)),
        applications=apps,
        faults=_parse_faults(r.raw("faults", {})),
        pse=r.flag("pse", True),
    )


def load_profile(path: str | Path) -> CardProfile:
    """Read and validate a profile file; every problem is a :class:`ProfileError`."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ProfileError("", f"cannot read profile {path}: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError("", f"{path} is not JSON: line {exc.lineno}: {exc.msg}") from None
    return parse_profile(obj)
