# Helpers shared by the rules. Only path bookkeeping lives here; no statistics.
from pathlib import Path

# The configuration file the run was started with (the last --configfile wins).
CONFIG_FILE = workflow.configfiles[-1]

# Outcome names: one analysis job per outcome.
OUTCOMES = [outcome["name"] for outcome in config["outcomes"]]

# One job per sensitivity analysis.
SENSITIVITY_ANALYSES = config["sensitivity"]["analyses"]

# The power scenario grid is scattered into this many independent jobs (each scenario has
# its own seed streams, so the number of chunks never changes the results).
POWER_CHUNKS = 5


def library(*parts):
    """The trialstats source files a rule depends on, so that editing them re-runs it.

    Every command depends on the base layer (configuration, CLI, errors, atomic output, data
    reading and validation, shared command arguments); ``parts`` add the stage's packages or
    modules, including those the stage imports from other stages.
    """
    root = Path(workflow.basedir) / "src" / "trialstats"
    files = [
        root / "config.py",
        root / "cli.py",
        root / "errors.py",
        root / "atomic.py",
    ]
    files += [root / "commands" / "inputs.py", *sorted((root / "data").glob("*.py"))]
    for part in parts:
        target = root / part
        files += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return [str(f) for f in files]


# When the whole run succeeds, print one line per stage (the details are in logs/).
onsuccess:
    shell("trialstats summary --results results --reports reports")
