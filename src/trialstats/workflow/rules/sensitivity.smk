rule sensitivity_analysis:
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        allocation_set=ALLOCATION_SET,
        code=library("analysis", "allocation", "commands/sensitivity.py"),
    output:
        "results/sensitivity/{analysis}.csv",
    log:
        "logs/sensitivity/{analysis}.log",
    benchmark:
        "results/benchmarks/sensitivity_{analysis}.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        data_dir=subpath(input.patients, parent=True),
    shell:
        "trialstats sensitivity --config {input.config:q} --data {params.data_dir:q}"
        " --analysis {wildcards.analysis:q} --out {output:q} > {log:q} 2>&1"


rule gather_sensitivity:
    input:
        tables=expand(
            "results/sensitivity/{analysis}.csv", analysis=SENSITIVITY_ANALYSES
        ),
        code=library("commands/gather.py"),
    output:
        "results/sensitivity.csv",
    log:
        "logs/gather_sensitivity.log",
    conda:
        "../envs/trialstats.yaml"
    shell:
        "trialstats gather {input.tables:q} --out {output:q} > {log:q} 2>&1"


rule missing_data:
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        code=library("analysis", "commands/missing_data.py"),
    output:
        completeness="results/missing_data/completeness.csv",
        dropout="results/missing_data/dropout.csv",
    log:
        "logs/missing_data.log",
    conda:
        "../envs/trialstats.yaml"
    params:
        data_dir=subpath(input.patients, parent=True),
        out_dir=subpath(output.completeness, parent=True),
    shell:
        "trialstats missing-data --config {input.config:q} --data {params.data_dir:q}"
        " --out {params.out_dir:q} > {log:q} 2>&1"
