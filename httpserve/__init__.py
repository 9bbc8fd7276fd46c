"""The HTTP server both services run on: uvicorn with httptools (llhttp) and uvloop,
held to :class:`~httpserve.limits.Limits` by :class:`~httpserve.protocol.Protocol`,
run by :func:`~httpserve.server.serve` from one or more processes; and the little
their ASGI applications share (:mod:`httpserve.asgi`). It imports no other part of
tapstack.
"""

from httpserve.errors import HttpServeError, ListenError
from httpserve.limits import Limits

__all__ = ["HttpServeError", "Limits", "ListenError"]
