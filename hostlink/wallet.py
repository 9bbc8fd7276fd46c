"""A phone wallet's client of the issuer: merchant-presented QR codes paid online.

The same transport as the terminal's :class:`~hostlink.client.HostClient` (TLS with
the issuer's CA checked and the wallet's client certificate presented; one kept
connection; retries with the same request id), under the wallet's own credential,
``Authorization: Bearer <wallet id>:<credential>`` (``issuer wallet add`` prints it
once and issues the certificate naming ``urn:tapstack:wallet:<id>``).

A payment that gets no answer is not reversed (a wallet has no reversal route): sent
again with the same request id, it gets the issuer's stored decision and is never
charged twice. The outcome then says it was not answered.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from emvwire import contract
from emvwire.contract import NO_ANSWER_CODE
from hostlink.client import HostClient, HostOutcome, HostUnreachableError, outcome_of

__all__ = ["WalletClient"]


class WalletClient(HostClient):
    """The issuer service at ``url`` for wallet ``wallet_id`` (module docstring):
    ``HostClient(url, wallet_id, wallet_key, tls=...)`` with the wallet's calls."""

    def merchant(self, merchant_id: str) -> contract.QrMerchant:
        """The merchant a code names, as the issuer knows it (``GET
        /v1/qr/merchants/{id}``); :class:`~hostlink.client.HostError` 404 for one it
        does not know."""
        path = f"/v1/qr/merchants/{quote(merchant_id, safe='')}"
        return self._call("GET", path, None, "merchant", contract.QrMerchant)

    def pay(
        self,
        payload: str,
        icc_data: bytes,
        track2: bytes,
        *,
        request_id: str | None = None,
    ) -> HostOutcome:
        """Pay the merchant-presented code ``payload`` with the card's field 55 and
        track 2 (``POST /v1/qr/payments``): the issuer's decision (module docstring
        for no answer)."""
        request_id = request_id or "qrp_" + secrets.token_hex(12)
        body = contract.QrPaymentRequest(
            payload=payload, icc_data=icc_data.hex().upper(), track2=track2.hex().upper()
        )
        try:
            answer = self._call("POST", "/v1/qr/payments", body, request_id, contract.Decision)
        except HostUnreachableError:
            return HostOutcome(
                False, NO_ANSWER_CODE, "NO_ANSWER", request_id, attempts=self._attempts,
                answered=False,
            )  # fmt: skip
        return outcome_of(answer, request_id, self._attempts)
