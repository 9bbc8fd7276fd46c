"""The transit back office (issue 6): taps from gates, trips, fares with caps, deferred
authorisation and aggregation at the issuer, the deny list and debt recovery.

Modules: :mod:`~terminal.backoffice.fares` (fare rules, pure),
:mod:`~terminal.backoffice.store` (SQLite), :mod:`~terminal.backoffice.engine` (the
work: riders, trips, authorisations, aggregations), :mod:`~terminal.backoffice.service`
(the gates' HTTP API) and :mod:`~terminal.backoffice.cli` (``terminal backoffice``).
"""

__all__: list[str] = []
