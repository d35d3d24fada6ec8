"""Subcommands of ``hallpass``, one module per command or command group; streams/cli.py adds
each of them to the group explicitly."""
