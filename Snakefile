# trialstats workflow: inputs -> validate -> analysis-ready tables -> models -> report.
# All logic lives in the trialstats package; every rule calls one `trialstats` command.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/power.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/validity.smk"


rule all:
    input:
        rules.report.output,
        rules.power_gather.output,
        rules.gather_sensitivity.output,
        rules.missing_data.output,
        "reports/validation.txt",
