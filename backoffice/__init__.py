"""The transit back office: taps from gates, trips, fares with caps, deferred
authorisation and aggregation at the issuer, the deny list and debt recovery.

Modules, each layer on the ones below it: :mod:`~backoffice.cli` (``backoffice``),
:mod:`~backoffice.service` (the gates' HTTP API and the gate protocol),
:mod:`~backoffice.engine` (the work, one module per stage: riders, deferred
authorisation, trips and fares, aggregation, debt recovery), :mod:`~backoffice.store`
(SQLite), :mod:`~backoffice.fares` (fare rules, pure) and :mod:`~backoffice.errors`
(the error tree).
"""

__all__: list[str] = []
