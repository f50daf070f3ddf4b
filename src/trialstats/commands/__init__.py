"""The command-line commands: one module per ``trialstats`` subcommand.

Each module exposes ``register(subparsers)``, which adds its parser, and ``run(args)``, which
reads the inputs, calls the library and writes the outputs; :data:`COMMANDS` lists them in
the order ``trialstats --help`` shows them. Arguments, trial reading and progress bars shared
by several commands live in ``inputs``. Commands are the edge where files are read and
written; no statistics live here.
"""

from trialstats.commands import (
    allocate,
    analyse,
    deps,
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
    design, allocate, methods_check, summary, deps,
)

__all__ = ["COMMANDS"]
