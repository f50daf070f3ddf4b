"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import (
    analyse,
    design,
    gather,
    init,
    methods_check,
    missing_data,
    power,
    report,
    sensitivity,
    summary,
    synth,
    validate,
)

COMMANDS = (
    init, validate, analyse, sensitivity, missing_data, gather, synth, report, power,
    methods_check, summary, design,
)
