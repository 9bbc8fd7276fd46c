"""The web console kit both consoles use (the issuer's, the back office's): Starlette,
server-rendered Jinja2 pages and a little progressive enhancement. It imports no other
part of tapstack.

- :mod:`webconsole.kit`: :class:`~webconsole.kit.Console`, the application around a
  console's views: signing in with a console's own credential check, signed session
  cookies, CSRF tokens on every form, scopes, confirmation of actions, masked
  rendering, security headers, the static files;
- :mod:`webconsole.sessions`: values signed with HMAC-SHA256 (the session, notices);
- :mod:`webconsole.charts`: bar charts drawn on the server as SVG;
- ``static/live.js``: live regions that poll for new rows (a Refresh link without it).
"""

from webconsole.charts import bar_chart
from webconsole.kit import Console, Principal, Signed, live_fragment
from webconsole.sessions import Session, Signer

__all__ = ["Console", "Principal", "Session", "Signed", "Signer", "bar_chart", "live_fragment"]
