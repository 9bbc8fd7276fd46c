"""The issuer's web console (``issuer console``): :class:`~issuer.console.app.IssuerConsole`,
pages and actions on the web console kit (:mod:`webconsole`)."""

from issuer.console.app import IssuerConsole

__all__ = ["IssuerConsole"]
