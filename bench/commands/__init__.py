"""The CLI subcommands, one module per area, each adding its own through ``add_commands(subparsers)``
(listed in :data:`bench.cli.COMMAND_MODULES`): a thin layer over the packages."""
