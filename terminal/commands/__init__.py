"""The ``terminal`` commands of the applications, loaded when run: ``retail``,
``gate`` (with ``transit`` and ``parking``) and ``entry-point``, each registered in
:data:`terminal.cli.LAZY_COMMANDS`; :mod:`.shared` holds what the gates share."""
