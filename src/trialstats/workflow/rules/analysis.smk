rule analyse_outcome:
    """Primary analysis of one outcome at every follow-up month (exact REML, small-sample df)."""
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
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
        data_dir=subpath(input.patients, parent=True),
        out_dir=subpath(output[0], parent=True),
    shell:
        "trialstats analyse --config {input.config:q} --data {params.data_dir:q}"
        " --outcome {wildcards.outcome:q} --out {params.out_dir:q} > {log:q} 2>&1"


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
