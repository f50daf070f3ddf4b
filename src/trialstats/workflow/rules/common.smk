# Helpers shared by the rules. Only path bookkeeping lives here; no statistics.
import hashlib
from pathlib import Path

from snakemake.exceptions import WorkflowError

import trialstats
from trialstats.commands.deps import command_module, module_files
from trialstats.config import load_config, read_yaml, workflow_config_file
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

# The packaged configuration schema, read by every command.
SCHEMA = Path(trialstats.__file__).parent / "schemas" / "config.schema.yaml"

# Outcome names: one analysis job per outcome.
OUTCOMES = [outcome["name"] for outcome in TRIAL["outcomes"]]

# Planning the next trial runs only when the configuration has a `power:` section: its
# grid is the user's own assumptions, never the schema's defaults.
POWER_TABLE = "results/power/power.csv"
PLANNING = "power" in read_yaml(CONFIG_FILE)
PLANNING_OUTPUTS = [POWER_TABLE] if PLANNING else []

# Planning the next parallel trial from this one's variance components (`power plan`) needs
# a parallel trial's baseline and follow-up; period designs skip it.
PLAN_OUTPUTS = (
    ["results/power/plan.csv"] if TRIAL["design"]["type"] == "parallel" else []
)

# The accepted allocations of a constrained design, read by the permutation test.
ALLOCATION_SET = [path for path in [TRIAL["design"]["allocation_set"]] if path]

# One job per sensitivity analysis; delta-adjustment has its own rule (it also writes the
# tipping points), so the generic rule matches every other name.
SENSITIVITY_ANALYSES = TRIAL["sensitivity"]["analyses"]
ANALYSIS_NAMES = "(?!delta-adjustment$)[a-z0-9-]+"
TIPPING = ["results/tipping.csv"] if "delta-adjustment" in SENSITIVITY_ANALYSES else []

# The power scenario grid is scattered into this many independent jobs (each scenario has
# its own seed streams, so the number of chunks never changes the results).
POWER_CHUNKS = 5


def code_version(command):
    """A fingerprint of the source that ``trialstats COMMAND`` runs: its module, every
    trialstats module it imports (``trialstats deps COMMAND``) and the config schema.

    Given to each rule as a parameter, so that editing a module re-runs exactly the steps
    whose command imports it (Snakemake's ``params`` rerun trigger), for a source checkout
    and an installed package alike, without listing hundreds of files as inputs.
    """
    files = [*module_files(command_module(command)), SCHEMA]
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


# When the whole run succeeds, print one line per stage (the details are in logs/).
onsuccess:
    shell(
        "trialstats summary --config {CONFIG_FILE:q} --results results --reports reports"
    )
