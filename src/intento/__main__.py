"""`python -m intento`: the same command line as `intento`."""

from intento.cli import entry_point

entry_point()
