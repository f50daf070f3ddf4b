"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import report, synth, validate

COMMANDS = (validate, synth, report)
