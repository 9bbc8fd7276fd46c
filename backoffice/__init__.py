"""The transit back office (issue 6): taps from gates, trips, fares with caps, deferred
authorisation and aggregation at the issuer, the deny list and debt recovery.

Modules: :mod:`~backoffice.fares` (fare rules, pure),
:mod:`~backoffice.store` (SQLite), :mod:`~backoffice.engine` (the
work: riders, trips, authorisations, aggregations), :mod:`~backoffice.service`
(the gates' HTTP API) and :mod:`~backoffice.cli` (``backoffice``).
"""

__all__: list[str] = []
