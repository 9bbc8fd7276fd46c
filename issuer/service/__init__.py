"""The authorisation service: an HTTP API for terminals (``issuer serve``).

:mod:`issuer.service.routes` declares each route once; :mod:`issuer.service.api` maps
requests to the domain (transport-free, testable without sockets);
:mod:`issuer.service.app` is the ASGI application (Starlette's router, group commit)
that :mod:`httpserve` serves with uvicorn; :mod:`issuer.service.openapi` is the API's
OpenAPI 3.1 document, made from the routes; :mod:`issuer.service.program` asks the
program's decision endpoint, on the event loop, for the HTTP and ISO 8583 services.
"""

from issuer.service.api import Api, Response
from issuer.service.app import ServiceApp
from issuer.service.openapi import OPENAPI

__all__ = ["OPENAPI", "Api", "Response", "ServiceApp"]
