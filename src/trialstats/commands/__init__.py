"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import power, report, synth, validate

COMMANDS = (validate, synth, report, power)
