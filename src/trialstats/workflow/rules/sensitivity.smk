wildcard_constraints:
    analysis=ANALYSIS_NAMES,


rule sensitivity_analysis:
    """One prespecified sensitivity analysis of every outcome."""
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        fingerprint="results/data/fingerprint.json",
        allocation_set=ALLOCATION_SET,
    output:
        "results/sensitivity/{analysis}.csv",
    log:
        "logs/sensitivity/{analysis}.log",
    benchmark:
        "results/benchmarks/sensitivity_{analysis}.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("sensitivity"),
    shell:
        "trialstats sensitivity --config {input.config:q} --patients {input.patients:q}"
        " --fingerprint {input.fingerprint:q}"
        " --analysis {wildcards.analysis:q} --out {output:q} > {log:q} 2>&1"


rule delta_adjustment:
    """Delta-adjusted imputation (missing not at random) and the tipping point of each primary
    outcome."""
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        fingerprint="results/data/fingerprint.json",
    output:
        rows="results/sensitivity/delta-adjustment.csv",
        tipping="results/tipping.csv",
    log:
        "logs/sensitivity/delta-adjustment.log",
    benchmark:
        "results/benchmarks/sensitivity_delta-adjustment.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("sensitivity"),
    shell:
        "trialstats sensitivity --config {input.config:q} --patients {input.patients:q}"
        " --fingerprint {input.fingerprint:q}"
        " --analysis delta-adjustment --out {output.rows:q}"
        " --tipping-out {output.tipping:q} > {log:q} 2>&1"


rule gather_sensitivity:
    """Stack the sensitivity analyses into one table."""
    input:
        expand("results/sensitivity/{analysis}.csv", analysis=SENSITIVITY_ANALYSES),
    output:
        "results/sensitivity.csv",
    log:
        "logs/gather_sensitivity.log",
    benchmark:
        "results/benchmarks/gather_sensitivity.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("gather"),
    shell:
        "trialstats gather {input:q} --out {output:q} > {log:q} 2>&1"


rule missing_data:
    """Completeness by arm and month, and the predictors of returning each questionnaire."""
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        fingerprint="results/data/fingerprint.json",
    output:
        completeness="results/missing_data/completeness.csv",
        dropout="results/missing_data/dropout.csv",
    log:
        "logs/missing_data.log",
    benchmark:
        "results/benchmarks/missing_data.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("missing-data"),
    shell:
        "trialstats missing-data --config {input.config:q} --patients {input.patients:q}"
        " --fingerprint {input.fingerprint:q}"
        " --completeness-out {output.completeness:q} --dropout-out {output.dropout:q}"
        " > {log:q} 2>&1"
