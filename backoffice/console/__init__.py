"""``backoffice console``: the transit back office's web console, on the web console
kit (:mod:`webconsole`).

- :mod:`backoffice.console.reports`: what the pages show and the one action (a
  deny-list entry removed, audited), without the web;
- :mod:`backoffice.console.app`: the pages (:class:`~backoffice.console.app.
  BackOfficeConsole`), its templates in ``templates/``.
"""
