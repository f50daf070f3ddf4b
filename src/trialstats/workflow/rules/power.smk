rule power_chunk:
    """Power of one chunk of the planning grid's scenarios (analytic and simulated)."""
    input:
        config=CONFIG_FILE,
    output:
        "results/power/chunks/chunk_{chunk}.csv",
    log:
        "logs/power/chunk_{chunk}.log",
    benchmark:
        "results/benchmarks/power_chunk_{chunk}.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("power"),
        n_chunks=POWER_CHUNKS,
    shell:
        "trialstats power grid --config {input.config:q} --chunk {wildcards.chunk}"
        " --n-chunks {params.n_chunks} --quiet --out {output:q} > {log:q} 2>&1"


rule power_gather:
    """Stack the planning grid's chunks into one table."""
    input:
        expand("results/power/chunks/chunk_{chunk}.csv", chunk=range(POWER_CHUNKS)),
    output:
        POWER_TABLE,
    log:
        "logs/power/gather.log",
    benchmark:
        "results/benchmarks/power_gather.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("power"),
    shell:
        "trialstats power gather {input:q} --out {output:q} > {log:q} 2>&1"


rule power_plan:
    """Plan the next trial from this one: clusters needed to detect each outcome's MCID."""
    input:
        primary="results/primary.csv",
        patients="results/data/patients.parquet",
    output:
        "results/power/plan.csv",
    log:
        "logs/power/plan.log",
    benchmark:
        "results/benchmarks/power_plan.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("power"),
        cluster=TRIAL["design"]["cluster"],
        month=TRIAL["design"]["primary_month"],
        baseline_month=TRIAL["design"]["baseline_month"],
        alpha=TRIAL["analysis"]["alpha"],
    shell:
        "trialstats power plan --results {input.primary:q} --patients {input.patients:q}"
        " --cluster-column {params.cluster:q} --month {params.month}"
        " --baseline-month {params.baseline_month} --alpha {params.alpha}"
        " --out {output:q} > {log:q} 2>&1"
