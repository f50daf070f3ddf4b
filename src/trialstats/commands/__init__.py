"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import analyse, gather, power, report, synth, validate

COMMANDS = (validate, analyse, gather, synth, report, power)
