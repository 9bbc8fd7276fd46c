"""The lazily loaded ``terminal`` subcommands of the applications (issue 6): each module
holds one click command registered in :data:`terminal.cli.LAZY_COMMANDS`."""
