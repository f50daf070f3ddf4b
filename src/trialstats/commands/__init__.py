"""One module per ``trialstats`` subcommand, each with ``register`` and ``run``."""

from trialstats.commands import (
    allocate,
    analyse,
    design,
    gather,
    init,
    methods_check,
    missing_data,
    power,
    report,
    run,
    sensitivity,
    summary,
    synth,
    validate,
)

COMMANDS = (
    run, init, validate, analyse, sensitivity, missing_data, gather, synth, report, power,
    design, allocate, methods_check, summary,
)
