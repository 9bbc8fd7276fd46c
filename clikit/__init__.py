"""What tapstack's four command-line tools (``terminal``, ``issuer``, ``card``,
``backoffice``) share, importing click and nothing of tapstack:

- :mod:`clikit.exits`: one table of exit codes, printed by each tool's ``--help``;
- :mod:`clikit.errors`: the top-level group showing every failure in one voice (a
  message on standard error; with ``--json`` also ``{"error": {"code", "message",
  "exit"}}`` on standard output);
- :mod:`clikit.lazy`: a group whose commands are imported only when they run;
- :mod:`clikit.progress`: progress of long work on standard error, only on a terminal.
"""
