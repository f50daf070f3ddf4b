# Helpers shared by the rules. Only path bookkeeping lives here; no statistics.
from pathlib import Path

import trialstats
from trialstats.config import load_config, read_yaml, workflow_config_file
from snakemake.exceptions import WorkflowError

from trialstats.errors import TrialstatsError

# The one configuration file of this run: every job re-reads it, so a configuration merged
# from several files or changed by --config overrides is refused rather than half-used.
try:
    CONFIG_FILE = workflow_config_file(
        workflow.configfiles,
        workflow.overwrite_configfiles,
        workflow.config_settings.config,
        config,
    )
    # The validated configuration with data paths resolved against the file's folder.
    TRIAL = load_config(CONFIG_FILE)
except TrialstatsError as error:
    raise WorkflowError(str(error)) from None

# Outcome names: one analysis job per outcome.
OUTCOMES = [outcome["name"] for outcome in TRIAL["outcomes"]]

# Planning the next trial runs only when the configuration has a `power:` section: its
# grid is the user's own assumptions, never the schema's defaults.
POWER_TABLE = "results/power/power.csv"
PLANNING = "power" in read_yaml(CONFIG_FILE)
PLANNING_OUTPUTS = [POWER_TABLE] if PLANNING else []

# The accepted allocations of a constrained design, read by the permutation test.
ALLOCATION_SET = [path for path in [TRIAL["design"]["allocation_set"]] if path]

# One job per sensitivity analysis.
SENSITIVITY_ANALYSES = TRIAL["sensitivity"]["analyses"]

# The power scenario grid is scattered into this many independent jobs (each scenario has
# its own seed streams, so the number of chunks never changes the results).
POWER_CHUNKS = 5


def library(*parts):
    """The trialstats source files a rule depends on, so that editing them re-runs it.

    Every command depends on the base layer (configuration, CLI, errors, data reading and
    validation, shared command arguments); ``parts`` add the stage's packages or modules,
    including those the stage imports from other stages. Found from the imported package,
    so a source checkout and an installed package work alike.
    """
    root = Path(trialstats.__file__).parent
    files = [root / "config.py", root / "cli.py", root / "errors.py", root / "atomic.py"]
    files += [root / "commands" / "inputs.py", *sorted((root / "data").glob("*.py"))]
    for part in parts:
        target = root / part
        files += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return [str(f) for f in files]


# When the whole run succeeds, print one line per stage (the details are in logs/).
onsuccess:
    shell("trialstats summary --results results --reports reports")
