rule analyse_outcome:
    input:
        config=CONFIG_FILE,
        patients="results/data/patients.parquet",
        code=library("analysis", "commands/analyse.py"),
    output:
        "results/primary/{outcome}/primary.csv",
    log:
        "logs/analyse/{outcome}.log",
    benchmark:
        "results/benchmarks/analyse_{outcome}.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        data_dir=subpath(input.patients, parent=True),
        out_dir=subpath(output[0], parent=True),
    shell:
        "trialstats analyse --config {input.config:q} --data {params.data_dir:q}"
        " --outcome {wildcards.outcome:q} --out {params.out_dir:q} > {log:q} 2>&1"


rule gather_primary:
    input:
        tables=expand("results/primary/{outcome}/primary.csv", outcome=OUTCOMES),
        code=library("commands/gather.py"),
    output:
        "results/primary.csv",
    log:
        "logs/gather_primary.log",
    conda:
        "../envs/trialstats.yaml"
    shell:
        "trialstats gather {input.tables:q} --out {output:q} > {log:q} 2>&1"
