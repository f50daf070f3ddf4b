"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import analyse, gather, methods_check, power, report, synth, validate

COMMANDS = (validate, analyse, gather, synth, report, power, methods_check)
