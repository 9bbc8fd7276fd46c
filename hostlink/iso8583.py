"""An ISO 8583 client of the issuer's listener (``iso8583://HOST:PORT``, with TLS
``iso8583s://``): the operations and outcomes of :class:`~hostlink.client.HostClient`
in the messages of :mod:`emvwire.iso8583`.

One TCP connection, signed on when opened (``0800``, field 70 ``001``, the terminal's
id and credential in field 48) and opened again after a failure. Each request has a
STAN (field 11) and a transmission time (field 7): together they are its request id
at the issuer (:func:`emvwire.iso8583.request_id`). A request that gets no answer
within ``timeout`` (or the answer ``91``, issuer unavailable) is sent again as a
repeat (``0101``...) with the same STAN and time, at most ``retries`` more times; the
issuer answers a repeat from its record. When an authorisation gets no answer at
all, the client sends a reversal (``0400``) naming it by its original data elements
(field 90) and reports it declined with
:data:`~emvwire.contract.NO_ANSWER_CODE` (``Z3``).

The operations: :meth:`Iso8583Client.authorise` (``0100``), :meth:`~Iso8583Client.
reverse` and :meth:`~Iso8583Client.reverse_request` (``0400``),
:meth:`~Iso8583Client.complete` (``0120`` advice of the final amount),
:meth:`~Iso8583Client.refund` (``0200`` with processing code ``20``), and
:meth:`~Iso8583Client.echo` (``0800``, ``301``), and :meth:`~Iso8583Client.check` (sign-on
and one echo before a card is asked for). A transaction list, a single
transaction and a resubmission have no ISO 8583 message here: those raise
:class:`~hostlink.client.HostError` (use the HTTP API).

Request ids: a caller's request id of the form :func:`~emvwire.iso8583.request_id`
makes (``iso8583:MMDDhhmmss:NNNNNN``) names its STAN and time, so it survives a
restart of the caller; any other caller id is mapped to a new STAN and time for the
life of this client (its retries and reversals), since an ISO 8583 message has no
place for it.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from emvwire import iso8583
from emvwire.contract import NO_ANSWER_CODE
from emvwire.errors import EmvWireError
from emvwire.iso8583 import Message, Mti, Network
from hostlink.client import (
    HostError,
    HostOutcome,
    HostRefusedError,
    HostTlsError,
    HostUnreachableError,
    outcome_of,
)

__all__ = ["Iso8583Client"]

#: Caller request ids remembered with their STAN and time (oldest dropped first).
_REMEMBERED: Final = 10_000
#: Answers that are refusals of the request, not decisions (ISO 8583:1987 §4.3.39).
_REFUSED: Final = frozenset({iso8583.SECURITY_VIOLATION})
#: Answers to a reversal that confirm nothing stays held: reversed, or never seen.
_REVERSAL_DONE: Final = frozenset({iso8583.APPROVED, iso8583.NO_RECORD})


class _Original:
    """The message type, STAN and time of a request (its original data elements)."""

    __slots__ = ("mti", "stan", "transmitted")

    def __init__(self, mti: str, stan: str, transmitted: str) -> None:
        self.mti, self.stan, self.transmitted = mti, stan, transmitted

    @property
    def request_id(self) -> str:
        return iso8583.request_id(self.transmitted, self.stan)


def _parse_request_id(text: str) -> tuple[str, str] | None:
    """(time, STAN) of a request id of the ISO 8583 form, else ``None``."""
    prefix, _, rest = text.partition(":")
    transmitted, _, stan = rest.partition(":")
    if (
        prefix == "iso8583"
        and len(transmitted) == 10
        and transmitted.isdigit()
        and len(stan) == 6
        and stan.isdigit()
    ):
        return transmitted, stan
    return None


def _repeat(mti: str) -> str:
    """The MTI of a repeat (``0100`` -> ``0101``)."""
    return mti[:3] + "1"


class Iso8583Client:
    """The issuer's ISO 8583 listener at ``url`` for terminal ``terminal_id``
    (module docstring). ``ssl_context`` verifies the issuer on ``iso8583s://``
    (default: the system's trust store)."""

    def __init__(
        self,
        url: str,
        terminal_id: str,
        terminal_key: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("iso8583", "iso8583s") or not parts.hostname or not parts.port:
            raise ValueError("the issuer URL is iso8583[s]://HOST:PORT")
        if not terminal_id or not terminal_key or ":" in terminal_id:
            raise ValueError("a terminal id and key are needed")
        self._host, self._port = parts.hostname, parts.port
        self._tls = parts.scheme == "iso8583s"
        self._ssl = ssl_context or (ssl.create_default_context() if self._tls else None)
        self._terminal_id, self._key = terminal_id, terminal_key
        self._code = iso8583.terminal_code(terminal_id)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sock: socket.socket | None = None
        self._inbox = bytearray()
        self._stans = itertools.count(secrets.randbelow(999_999) + 1)
        self._known: OrderedDict[str, _Original] = OrderedDict()
        self._attempts = 0

    def __repr__(self) -> str:
        return f"Iso8583Client({self._host}:{self._port})"

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._inbox.clear()

    def __enter__(self) -> Iso8583Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identifiers -------------------------------------------------------------------

    def _stan(self) -> str:
        return f"{next(self._stans) % 999_999 + 1:06d}"

    def _new(self, mti: str) -> _Original:
        return _Original(mti, self._stan(), self._clock().strftime("%m%d%H%M%S"))

    def _original(self, mti: str, request_id: str | None) -> _Original:
        """The STAN and time of ``request_id`` (module docstring), new ones if none."""
        if request_id is None:
            return self._new(mti)
        parsed = _parse_request_id(request_id)
        if parsed is not None:
            return _Original(mti, parsed[1], parsed[0])
        found = self._known.get(request_id)
        if found is None:
            found = self._known[request_id] = self._new(mti)
            if len(self._known) > _REMEMBERED:
                self._known.popitem(last=False)
        return found

    def _message(self, mti: str, original: _Original) -> Message:
        now = self._clock()
        return Message(mti, {
            7: original.transmitted, 11: original.stan, 12: now.strftime("%H%M%S"),
            13: now.strftime("%m%d"), 37: self._rrn(now, original.stan), 41: self._code,
        })  # fmt: skip

    @staticmethod
    def _rrn(now: datetime, stan: str) -> str:
        """Field 37: the year's last digit, the day of the year, the hour and the
        STAN (the usual acquirer layout, YDDDhh + STAN)."""
        return now.strftime("%y")[1] + now.strftime("%j%H") + stan

    # -- transport ---------------------------------------------------------------------

    def _connection(self) -> socket.socket:
        """The connection, opened and signed on if needed."""
        if self._sock is not None:
            return self._sock
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self._host)
        except ssl.SSLError as exc:
            raise HostTlsError(f"TLS: {exc}") from None
        except OSError:
            raise HostUnreachableError from None
        self._sock = sock
        sign_on = self._message(Mti.NETWORK, self._new(Mti.NETWORK))
        sign_on.fields[70] = Network.SIGN_ON
        sign_on.fields[48] = f"{self._terminal_id}:{self._key}"
        answer = self._exchange(sign_on)
        if answer.text(39) != iso8583.APPROVED:
            self.close()
            raise HostRefusedError(401, answer.text(44), "the issuer refused the sign-on")
        return sock

    def _exchange(self, message: Message) -> Message:
        """Send ``message`` and read until its answer (same response MTI, STAN and
        time; late answers of earlier requests are dropped).
        :class:`HostUnreachableError` on a time-out, a broken connection or bytes
        that are not an answer (the connection is dropped)."""
        sock = self._connection()
        want = iso8583.response_mti(message.mti)
        try:
            sock.sendall(iso8583.frame(iso8583.encode_message(message)))
            deadline = time.monotonic() + self.timeout
            while True:
                answer = iso8583.decode(self._read_frame(sock, deadline))
                if (
                    answer.mti == want
                    and answer.text(11) == message.text(11)
                    and answer.text(7) == message.text(7)
                ):
                    return answer
        except (OSError, EmvWireError):
            self.close()
            raise HostUnreachableError from None

    def _read_frame(self, sock: socket.socket, deadline: float) -> bytes:
        while True:
            if len(self._inbox) >= iso8583.HEADER_SIZE:
                length = int.from_bytes(self._inbox[: iso8583.HEADER_SIZE], "big")
                end = iso8583.HEADER_SIZE + length
                if len(self._inbox) >= end:
                    data = bytes(self._inbox[iso8583.HEADER_SIZE : end])
                    del self._inbox[:end]
                    return data
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            part = sock.recv(1 << 16)
            if not part:
                raise ConnectionResetError
            self._inbox += part

    def _call(self, message: Message) -> Message:
        """``message`` with retries (repeats: same STAN and time); the answer, or
        :class:`HostUnreachableError` if none came (or only ``91``)."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
                message.mti = _repeat(message.mti)
            try:
                answer = self._exchange(message)
            except HostUnreachableError:
                continue
            if answer.text(39) == iso8583.ISSUER_UNAVAILABLE:
                continue
            self._attempts = attempt + 1
            return answer
        self._attempts = self.retries + 1
        raise HostUnreachableError

    @staticmethod
    def _refused(answer: Message) -> HostError:
        code = answer.text(39)
        cls = HostRefusedError if code in _REFUSED else HostError
        return cls(int(code) if code.isdigit() else 0, answer.text(44), f"response code {code}")

    def _record(self, message: Message) -> dict[str, Any]:
        """:meth:`_call` for an operation on a transaction: what the answer says of
        it (id, status, amount), or :class:`HostError` if the issuer refused it."""
        answer = self._call(message)
        if answer.text(39) != iso8583.APPROVED or 62 not in answer:
            raise self._refused(answer)
        amount = answer.text(4)
        return {
            "id": answer.text(62),
            "status": answer.text(44),
            "amount": int(amount) if amount else None,
        }

    # -- operations --------------------------------------------------------------------

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        """Authorise online (``0100``, module docstring): the final outcome."""
        original = self._original(Mti.AUTHORISATION, request_id)
        request_id = request_id or original.request_id
        try:
            message = iso8583.authorisation_message(
                icc_data, track2, mti=Mti.AUTHORISATION, stan=original.stan,
                transmitted=original.transmitted, terminal=self._code, local=self._clock(),
            )  # fmt: skip
        except EmvWireError as exc:
            raise HostError(0, "invalid_request", str(exc)) from None
        message.fields.update(
            {k: v for k, v in self._message(Mti.AUTHORISATION, original).fields.items()
             if k not in message.fields}
        )  # fmt: skip
        try:
            answer = self._call(message)
        except HostUnreachableError:
            attempts = self._attempts
            reversed_ = self.reverse_request(request_id)
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id,
                attempts=attempts, reversed=reversed_, answered=False,
            )  # fmt: skip
        if 62 not in answer:
            raise self._refused(answer)
        try:
            decision = iso8583.decision_of(answer)
        except (EmvWireError, ValueError):
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id, attempts=self._attempts,
                answered=False,
            )  # fmt: skip
        return outcome_of(decision, request_id, self._attempts)

    def reverse_request(self, request_id: str) -> bool:
        """Time-out reversal (``0400`` naming the original by field 90); whether the
        issuer confirmed it (reversed, or never seen: ``25``). ``False`` also for a
        caller id this client never sent (its STAN and time are unknown)."""
        original = self._known.get(request_id)
        parsed = _parse_request_id(request_id)
        if original is None and parsed is not None:
            original = _Original(Mti.AUTHORISATION, parsed[1], parsed[0])
        if original is None:
            return False
        message = self._message(Mti.REVERSAL, self._new(Mti.REVERSAL))
        message.fields[90] = iso8583.original_data(
            original.mti, original.stan, original.transmitted
        )
        try:
            answer = self._call(message)
        except (HostUnreachableError, HostError):
            return False
        return answer.text(39) in _REVERSAL_DONE

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Reverse an authorisation (``0400`` naming it by field 62; releases its hold
        once)."""
        message = self._message(Mti.REVERSAL, self._original(Mti.REVERSAL, request_id))
        message.fields[62] = transaction_id
        return self._record(message)

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Capture an authorisation wholly (``amount=None``) or in part: the advice of
        its final amount (``0120``)."""
        message = self._message(Mti.ADVICE, self._original(Mti.ADVICE, request_id))
        message.fields[62] = transaction_id
        if amount is not None:
            message.fields[4] = f"{amount:012d}"
        record = self._record(message)
        record["captured_amount"] = record["amount"]
        return record

    def refund(
        self, authorisation_id: str, amount: int, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Refund ``amount`` (minor units) of a captured authorisation of this terminal
        (``0200``, processing code ``20``)."""
        message = self._message(Mti.FINANCIAL, self._original(Mti.FINANCIAL, request_id))
        message.fields[3] = iso8583.REFUND_PROCESSING
        message.fields[4] = f"{amount:012d}"
        message.fields[62] = authorisation_id
        return self._record(message)

    def echo(self) -> bool:
        """An echo test (``0800``, field 70 ``301``); whether the issuer answered."""
        message = self._message(Mti.NETWORK, self._new(Mti.NETWORK))
        message.fields[70] = Network.ECHO
        try:
            return self._call(message).text(39) == iso8583.APPROVED
        except HostUnreachableError:
            return False

    def check(self) -> None:
        """Whether the issuer answers this terminal, before a card is asked for: the
        connection opened and signed on (the credential checked), then one echo test,
        sent once. Raises as :meth:`hostlink.HostClient.check` does: a refused sign-on
        is :class:`~hostlink.client.HostRefusedError`."""
        message = self._message(Mti.NETWORK, self._new(Mti.NETWORK))
        message.fields[70] = Network.ECHO
        answer = self._exchange(message)
        if answer.text(39) == iso8583.ISSUER_UNAVAILABLE:
            raise HostUnreachableError("91")
        if answer.text(39) != iso8583.APPROVED:
            raise self._refused(answer)

    def _unsupported(self, what: str) -> HostError:
        return HostError(0, "unsupported", f"{what} has no ISO 8583 message: use the HTTP API")

    def transactions(self, *, limit: int = 1000, status: str | None = None) -> list[dict[str, Any]]:
        """Not in ISO 8583 here: :class:`HostError` (module docstring)."""
        raise self._unsupported("the transaction list")

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        """Not in ISO 8583 here: :class:`HostError` (module docstring)."""
        raise self._unsupported("a transaction's record")

    def resubmit(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> HostOutcome:
        """Not in ISO 8583 here: :class:`HostError` (module docstring)."""
        raise self._unsupported("a resubmission")
