"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import synth, validate

COMMANDS = (validate, synth)
