"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import (
    analyse,
    gather,
    init,
    methods_check,
    power,
    report,
    sensitivity,
    synth,
    validate,
)

COMMANDS = (
    init, validate, analyse, sensitivity, gather, synth, report, power, methods_check,
)
