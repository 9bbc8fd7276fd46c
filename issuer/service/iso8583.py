"""The authorisation service in ISO 8583 (:mod:`emvwire.iso8583`), free of any
transport: a message in, its answer out. The same authoriser and clearing decide as
for HTTP (:mod:`issuer.service.api`), and the ledger records the same things: a
request id per (terminal, request id), the decision's text as the stored answer.

Messages (ISO 8583:1987 MTIs; a repeat, last digit 1, is answered as its original):

- ``0800``/``0810`` network management (field 70): ``001`` sign-on, ``002`` sign-off,
  ``301`` echo (needs no sign-on).
- ``0100``/``0110`` authorisation: :meth:`Authoriser.check` then
  :meth:`Authoriser.decide_many` with the other authorisations of the batch (group
  commit), answered by :func:`emvwire.iso8583.decision_answer`.
- ``0200``/``0210`` financial: processing code ``00`` an authorisation captured at
  once (``Clearing.complete``); ``20`` a refund of the authorisation named by field 62
  or 90 for the amount of field 4 (``Clearing.refund``).
- ``0120``/``0130`` authorisation advice: the final amount (field 4; absent: all) of
  the authorisation named by field 62 or 90, captured (``Clearing.complete``), as an
  acquirer advises the completion of a pre-authorisation.
- ``0400``/``0410`` reversal of the authorisation named by field 62, or by field 90
  (the original's MTI, STAN and field 7: a time-out reversal); ``25`` if the issuer
  never saw it (nothing to release). A partial reversal (field 95) is not supported.

The request id is :func:`emvwire.iso8583.request_id` (fields 7 and 11) of the terminal:
a retransmission (same STAN, terminal and time) gets the stored answer, a reversal's
field 90 names its original, and an HTTP request can never take the id of an ISO
8583 one (its ``Idempotency-Key`` would have to start ``iso8583:``).

Authentication: a sign-on (``0800``, field 70 ``001``) carries field 41 and, in field
48, ``<terminal id>:<credential>`` (the HTTP API's bearer token); it binds the
connection's :class:`Session` to that terminal. Every later message's field 41 must
be a terminal signed on in that session (several may be: an acquirer host), else it
is refused with ``63`` (security violation). With TLS, the terminal that the
verified client certificate names (``Session.certified``) is bound without a
credential. A revoked terminal or a new credential ends the binding at its next
message. Field 48 is never logged or echoed.

Failures are answers: a message that breaks :data:`~emvwire.iso8583.SPEC` or lacks a
field ``30`` (format error), an unknown message or operation ``12``, a transaction
that is not there ``25``, a request id reused for another request ``94``, a ledger
busy ``91`` (send again), anything else ``96``; field 44 names the cause.

Messages are answered in two stages (:meth:`Iso8583Handler.prepare_many`, then
:meth:`Iso8583Handler.finish_many`); between them, an authorisation that the
program's decision endpoint is to be asked about (:attr:`IsoPrepared.proposal`, as
over HTTP: :mod:`issuer.domain.program`) waits for :meth:`Iso8583Handler.consult`
on the listener's event loop while the others are finished. ISO 8583 requests carry
no partial approval indicator here: the program's smaller amount declines them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from emvwire import iso8583
from emvwire.iso8583 import FormatError, Message, Mti, Network
from emvwire.pki import PkiError, identity_of
from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import AuthorisationRequest, Authoriser, Checked
from issuer.domain.clearing import Clearing
from issuer.domain.credentials import CredentialCache
from issuer.domain.program import Endpoint, ProgramRequest
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    IssuerError,
    NotFoundError,
    TransientError,
    ValidationError,
)
from issuer.model.entities import Authorisation, Terminal, TerminalStatus
from issuer.service.program import Consultant

__all__ = ["Iso8583Handler", "IsoPrepared", "Session"]

log = logging.getLogger("issuer.iso8583")

#: The message types answered, by their original (non-repeat) MTI.
SUPPORTED: Final = frozenset({Mti.AUTHORISATION, Mti.ADVICE, Mti.FINANCIAL, Mti.REVERSAL})


@dataclass(frozen=True, slots=True)
class _Binding:
    terminal_id: str
    credential_hash: str  # as at sign-on: a new credential ends the binding


@dataclass(slots=True)
class Session:
    """One connection's state: the terminals signed on, by field 41; ``certified``
    the terminal id that its verified TLS client certificate names; ``peer`` its
    address (for log lines)."""

    peer: str = ""
    certified: str | None = None
    bound: dict[str, _Binding] = field(default_factory=dict)


@dataclass(slots=True)
class IsoPrepared:
    """A message after :meth:`Iso8583Handler.prepare_many`: answered already
    (``answered``: ``answer``, ``None`` for a message that has none), an authorisation
    checked (its write phase to come, after the program if ``proposal``), or an
    operation to run (``later``)."""

    session: Session
    message: Message
    answered: bool = False
    answer: Message | None = None
    checked: Checked | None = None
    financial: bool = False
    proposal: tuple[Endpoint, ProgramRequest] | None = None
    later: Callable[[], Message] | None = None


class _RefusedError(IssuerError):
    """A message answered with ``code`` (field 39) and ``cause`` (field 44)."""

    def __init__(self, code: str, cause: str, message: str) -> None:
        self.code, self.cause = code, cause
        super().__init__(message)


def _original_mti(mti: str) -> str:
    """The MTI of an original for a repeat (``0101`` -> ``0100``)."""
    return mti[:3] + "0" if mti[3:] == "1" else mti


def _required(message: Message, *numbers: int) -> None:
    for number in numbers:
        if number not in message:
            raise FormatError(f"field {number} is needed", mti=message.mti, field=str(number))


class Iso8583Handler:
    """Answers ISO 8583 messages (module docstring) with ``app``'s authoriser and
    clearing. Thread-safe; a :class:`Session` is used by one connection at a time."""

    def __init__(
        self,
        app: IssuerApp,
        authoriser: Authoriser | None = None,
        clearing: Clearing | None = None,
        *,
        require_certificate: bool = False,
    ) -> None:
        self.app = app
        self.authoriser = authoriser or Authoriser(app)
        self.clearing = clearing or Clearing(app)
        self.credentials = CredentialCache()
        self.consultant = Consultant(app)
        #: Served over mutual TLS: a terminal signs on only on a connection whose
        #: client certificate names it (:meth:`identify`), with or without field 48.
        self.require_certificate = require_certificate

    def identify(self, ssl_object: ssl.SSLObject) -> str | None:
        """The terminal that the connection's verified client certificate proves: its
        id when the certificate names an active terminal and is that terminal's
        recorded, unrevoked certificate
        (:meth:`issuer.domain.certificates.ClientCertificates.allowed`), else ``None``
        (the listener's ``identify`` hook)."""
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        pem = ssl.DER_cert_to_PEM_cert(der)
        try:
            identity = identity_of(pem)
            with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
                terminal = uow.terminals.get(identity.id)
        except (PkiError, NotFoundError):
            return None
        return terminal.id if self.app.certificates.allowed(pem, terminal) else None

    def answer(self, session: Session, message: Message) -> Message | None:
        """The answer to one message (``None``: a message that has none, such as a
        response sent to the issuer)."""
        return self.answer_many([(session, message)])[0]

    def answer_many(self, items: Sequence[tuple[Session, Message]]) -> list[Message | None]:
        """Answer independent messages (of different connections) together: the
        read phases of the authorisations first (the program asked meanwhile, in an
        event loop of this call), their write phases in shared transactions (group
        commit), then the other operations, in order."""
        prepared = self.prepare_many(items)
        asking = [p for p in prepared if p.proposal is not None]
        if asking:

            async def ask() -> None:
                await asyncio.gather(*(self.consult(p) for p in asking))

            asyncio.run(ask())
        return self.finish_many(prepared)

    def prepare_many(self, items: Sequence[tuple[Session, Message]]) -> list[IsoPrepared]:
        """The first stage: network messages and failures answered, authorisations
        checked (their read phases), other operations validated for
        :meth:`finish_many`."""
        generation = self.app.cache.refresh()
        out = [IsoPrepared(session, message) for session, message in items]
        for item in out:
            session, message = item.session, item.message
            try:
                if iso8583.response_mti(message.mti) is None:
                    log.warning("%s: message type %s has no answer: ignored",
                                session.peer, message.mti)  # fmt: skip
                    item.answered = True
                    continue
                kind = _original_mti(message.mti)
                _required(message, 7, 11)
                if kind == Mti.NETWORK:
                    item.answer, item.answered = self._network(session, message, generation), True
                    continue
                if kind not in SUPPORTED:
                    raise _RefusedError(
                        iso8583.INVALID_TRANSACTION, "unsupported",
                        f"message type {message.mti} is not supported",
                    )  # fmt: skip
                terminal = self._bound(session, message, generation)
                rid = iso8583.request_id(message.text(7), message.text(11))
                refund = kind == Mti.FINANCIAL and message.text(3)[:2] == "20"
                if kind in (Mti.AUTHORISATION, Mti.FINANCIAL) and not refund:
                    icc, track2 = iso8583.authorisation_of(message)
                    request = AuthorisationRequest(rid, icc, track2)
                    checked = self.authoriser.check(terminal, request, generation=generation)
                    item.checked, item.financial = checked, kind == Mti.FINANCIAL
                    endpoint = self.consultant.endpoint(generation)
                    proposal = self.authoriser.proposal(checked) if endpoint else None
                    if endpoint is not None and proposal is not None:
                        item.proposal = (endpoint, proposal)
                else:
                    item.later = self._operation(kind, terminal, message, rid, refund)
            except Exception as exc:
                item.answer, item.answered = self._failure(message, exc, session.peer), True
        return out

    async def consult(self, item: IsoPrepared) -> None:
        """Ask the program about a prepared authorisation's :attr:`~IsoPrepared.proposal`
        (on the running event loop, within the endpoint's deadline) and give the
        answer to its write phase."""
        if item.proposal is None or item.checked is None:
            return
        verdict = await self.consultant.consult(*item.proposal)
        self.authoriser.take(item.checked, verdict)

    def finish_many(self, prepared: Sequence[IsoPrepared]) -> list[Message | None]:
        """The second stage: the checked authorisations decided in shared
        transactions, then the other operations; every answer, in order."""
        answers = [p.answer for p in prepared]
        pending = [(i, p) for i, p in enumerate(prepared) if not p.answered and p.checked]
        if pending:
            decided = self.authoriser.decide_many([p.checked for _, p in pending if p.checked])
            for (index, item), outcome in zip(pending, decided, strict=True):
                message = item.message
                try:
                    if isinstance(outcome, Exception):
                        raise outcome
                    decision = outcome.decision
                    if item.financial and decision.approved and item.checked is not None:
                        checked = item.checked
                        rid = checked.request.request_id
                        self.clearing.complete(
                            checked.terminal, decision.id, None, rid + ":capture"
                        )
                    answers[index] = iso8583.decision_answer(message, decision)
                except Exception as exc:
                    answers[index] = self._failure(message, exc, item.session.peer)
        for index, item in enumerate(prepared):
            if item.answered or item.later is None:
                continue
            try:
                answers[index] = item.later()
            except Exception as exc:
                answers[index] = self._failure(item.message, exc, item.session.peer)
        return answers

    # -- sign-on and the terminal of a message -----------------------------------------

    def _terminal(self, terminal_id: str, generation: int) -> Terminal:
        """The terminal row, from the read cache while ``generation`` stands."""
        key = ("terminal", terminal_id)
        terminal: Terminal | None = self.app.cache.get(key)
        if terminal is None:
            with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
                terminal = uow.terminals.get(terminal_id)
            self.app.cache.put(key, terminal, generation)
        return terminal

    def _network(self, session: Session, message: Message, generation: int) -> Message:
        code = message.text(70)
        if code == Network.ECHO:
            return iso8583.answer_to(message, iso8583.APPROVED)
        _required(message, 41)
        terminal_code = message.text(41)
        if code == Network.SIGN_OFF:
            session.bound.pop(terminal_code, None)
            return iso8583.answer_to(message, iso8583.APPROVED)
        if code != Network.SIGN_ON:
            raise _RefusedError(
                iso8583.INVALID_TRANSACTION, "unsupported", f"network code {code} is unknown"
            )
        refused = _RefusedError(
            iso8583.SECURITY_VIOLATION, "unauthorised", "unknown terminal or wrong credential"
        )
        certified = session.certified
        if certified is not None and iso8583.terminal_code(certified) != terminal_code:
            certified = None
        if 48 not in message:
            if certified is None:
                raise refused
            terminal_id, secret = certified, None
        else:
            terminal_id, sep, secret = message.text(48).partition(":")
            if not sep or iso8583.terminal_code(terminal_id) != terminal_code:
                raise refused
        if self.require_certificate and terminal_id != certified:
            raise refused
        try:
            terminal = self._terminal(terminal_id, generation)
        except NotFoundError:
            raise refused from None
        if terminal.status is not TerminalStatus.ACTIVE or (
            secret is not None
            and not self.credentials.verify(terminal.id, terminal.credential_hash, secret)
        ):
            raise refused
        session.bound[terminal_code] = _Binding(terminal.id, terminal.credential_hash)
        log.info("%s: terminal %s signed on", session.peer, terminal.id)
        return iso8583.answer_to(message, iso8583.APPROVED)

    def _bound(self, session: Session, message: Message, generation: int) -> Terminal:
        """The terminal of ``message`` (field 41) signed on in ``session`` (or named
        by its client certificate), else a refusal (63)."""
        _required(message, 41)
        code = message.text(41)
        binding = session.bound.get(code)
        if (
            binding is None
            and session.certified is not None
            and iso8583.terminal_code(session.certified) == code
        ):
            found = self._terminal(session.certified, generation)
            binding = session.bound[code] = _Binding(found.id, found.credential_hash)
        if binding is None:
            raise _RefusedError(
                iso8583.SECURITY_VIOLATION, "not_signed_on", f"terminal {code} is not signed on"
            )
        terminal = self._terminal(binding.terminal_id, generation)
        if (
            terminal.status is not TerminalStatus.ACTIVE
            or terminal.credential_hash != binding.credential_hash
        ):
            del session.bound[code]
            raise _RefusedError(
                iso8583.SECURITY_VIOLATION, "unauthorised", "the terminal must sign on again"
            )
        return terminal

    # -- operations after the authorisation --------------------------------------------

    def _original(self, terminal: Terminal, message: Message) -> str:
        """The transaction id a message names: field 62, else the request of the
        original data elements (field 90); :class:`NotFoundError` if there is none."""
        if 62 in message:
            return message.text(62)
        if 90 not in message:
            raise FormatError("field 62 or 90 is needed", mti=message.mti, field="90")
        _, stan, transmitted = iso8583.original_of(message.text(90))
        found = self._by_request(terminal, iso8583.request_id(transmitted, stan))
        if found is None:
            raise NotFoundError("no original transaction of field 90")
        return found.id

    def _by_request(self, terminal: Terminal, request_id: str) -> Authorisation | None:
        with self.app.ledger.unit_of_work(write=False) as uow:
            return uow.authorisations.find_by_request(terminal.id, request_id)

    def _operation(
        self, kind: str, terminal: Terminal, message: Message, rid: str, refund: bool
    ) -> Callable[[], Message]:
        """The work of an advice, refund or reversal, to run after the batch's
        authorisations."""

        def done(auth: Authorisation) -> Message:
            answer = iso8583.answer_to(message, iso8583.APPROVED)
            amount = auth.captured_amount if kind == Mti.ADVICE else auth.amount
            answer.fields[4] = f"{amount:012d}"
            answer.fields[44] = auth.status.value
            answer.fields[62] = auth.id
            return answer

        def advice() -> Message:
            amount = int(message.text(4)) if 4 in message else None
            return done(self.clearing.complete(terminal, self._original(terminal, message),
                                               amount, rid))  # fmt: skip

        def refund_() -> Message:
            _required(message, 4)
            txn = self._original(terminal, message)
            return done(self.clearing.refund(terminal, txn, int(message.text(4)), rid))

        def reversal() -> Message:
            if 62 in message:
                return done(self.clearing.reverse(terminal, message.text(62), rid))
            _required(message, 90)
            _, stan, transmitted = iso8583.original_of(message.text(90))
            found = self.clearing.reverse_request(terminal, iso8583.request_id(transmitted, stan))
            if found is None:
                raise NotFoundError("no original transaction of field 90: nothing to reverse")
            return done(found)

        if kind == Mti.ADVICE:
            return advice
        return refund_ if refund else reversal

    # -- failures ----------------------------------------------------------------------

    @staticmethod
    def _failure(message: Message, exc: Exception, peer: str) -> Message | None:
        """The answer to a message that raised ``exc`` (module docstring)."""
        if isinstance(exc, _RefusedError):
            code, cause = exc.code, exc.cause
        elif isinstance(exc, FormatError | ValidationError):
            code, cause = iso8583.FORMAT_ERROR, "format_error"
        elif isinstance(exc, NotFoundError):
            code, cause = iso8583.NO_RECORD, "not_found"
        elif isinstance(exc, ConflictError):
            code, cause = iso8583.DUPLICATE, "conflict"
        elif isinstance(exc, InvalidStateError):
            code, cause = iso8583.INVALID_TRANSACTION, getattr(exc, "code", "invalid_state")
        elif isinstance(exc, TransientError):
            code, cause = iso8583.ISSUER_UNAVAILABLE, "busy"
        elif isinstance(exc, IssuerError):
            log.warning("%s: issuer error: %s", peer, type(exc).__name__)
            code, cause = iso8583.SYSTEM_ERROR, "internal"
        else:
            log.error("%s: unexpected failure", peer, exc_info=exc)
            code, cause = iso8583.SYSTEM_ERROR, "internal"
        if code != iso8583.SYSTEM_ERROR:
            log.info("%s: %s answered %s (%s)", peer, message.mti, code, cause)
        answer = iso8583.answer_to(message, code)
        answer.fields[44] = cause[:25]
        return answer
