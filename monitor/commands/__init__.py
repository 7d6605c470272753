"""One module per ``santinel`` subcommand; each exposes ``register(subparsers)``.

A command's handler is ``run(args) -> int`` (the exit code) set with
``parser.set_defaults(func=run)``. Raise ``monitor.cli.UserError`` for bad usage or input.
"""
