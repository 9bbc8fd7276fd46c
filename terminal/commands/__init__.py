"""The ``terminal`` commands, each loaded when run (:data:`terminal.cli.LAZY_COMMANDS`):
``readers`` and ``watch`` (:mod:`.readers`), ``read`` and ``pay`` (:mod:`.tap`),
``retail``, ``gate`` (with ``transit`` and ``parking``) and ``entry-point``;
:mod:`.common` holds their shared options, helpers and exits."""
