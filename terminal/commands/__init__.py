"""The ``terminal`` commands of the applications, loaded when run: ``retail``,
``gate`` (with ``transit`` and ``parking``) and ``entry-point``, each registered in
:data:`terminal.cli.LAZY_COMMANDS`; :mod:`.options` holds the options they share."""
