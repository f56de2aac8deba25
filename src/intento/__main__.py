"""`python -m intento`: the same command line as `intento`."""

from intento.cli import run

run()
