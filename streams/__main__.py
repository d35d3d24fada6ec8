"""``python -m streams`` is the ``hallpass`` command."""

from streams.cli import main

main(prog_name="hallpass")
