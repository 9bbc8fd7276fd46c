"""The authorisation service: an HTTP API for terminals (``issuer serve``).

:mod:`issuer.service.api` maps requests to the domain (transport-free, testable
without sockets); :mod:`issuer.service.server` serves it over HTTP/1.1 with the
standard library; :mod:`issuer.service.openapi` is the API's OpenAPI 3.1 document.
"""

from issuer.service.api import Api, Response
from issuer.service.openapi import OPENAPI
from issuer.service.server import serve

__all__ = ["OPENAPI", "Api", "Response", "serve"]
