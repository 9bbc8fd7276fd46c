"""The transit back office: taps from gates, trips, fares with caps, deferred
authorisation and aggregation at the issuer, the deny list, debt recovery, and a web
console.

Modules, each layer on the ones below it: :mod:`~backoffice.cli` (``backoffice``),
:mod:`~backoffice.service` (the gates' HTTP API and the gate protocol) and
:mod:`~backoffice.stream` (the same over NATS JetStream, for instances on several
machines), :mod:`~backoffice.console` (the web console of the operator's staff),
:mod:`~backoffice.engine` (the work, one module per stage: riders, deferred
authorisation, trips and fares, aggregation, debt recovery) and
:mod:`~backoffice.operators` (who signs in to the console, the audit log of its
actions), :mod:`~backoffice.store`
(the home and its data), :mod:`~backoffice.database` (SQLite or PostgreSQL, one
interface) with :mod:`~backoffice.schema` (their migrations), :mod:`~backoffice.fares`
(fare rules, pure) and :mod:`~backoffice.errors` (the error tree).
"""

__all__: list[str] = []
