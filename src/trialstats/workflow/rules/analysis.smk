rule analyse_outcome:
    """Primary analysis of one outcome at every follow-up month (exact REML, small-sample df)."""
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        fingerprint="results/data/fingerprint.json",
    output:
        "results/primary/{outcome}/primary.csv",
    log:
        "logs/analyse/{outcome}.log",
    benchmark:
        "results/benchmarks/analyse_{outcome}.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("analyse"),
    shell:
        "trialstats analyse --config {input.config:q} --patients {input.patients:q}"
        " --fingerprint {input.fingerprint:q} --outcome {wildcards.outcome:q}"
        " --out {output:q} > {log:q} 2>&1"


rule gather_primary:
    """Stack the per-outcome primary results into one table."""
    input:
        expand("results/primary/{outcome}/primary.csv", outcome=OUTCOMES),
    output:
        "results/primary.csv",
    log:
        "logs/gather_primary.log",
    benchmark:
        "results/benchmarks/gather_primary.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("gather"),
    shell:
        "trialstats gather {input:q} --out {output:q} > {log:q} 2>&1"
