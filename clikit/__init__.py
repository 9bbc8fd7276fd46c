"""What tapstack's command-line tools share (``terminal``, ``issuer``): a click group
whose commands are imported only when they run (:class:`clikit.lazy.LazyGroup`). It
imports click and nothing of tapstack."""
