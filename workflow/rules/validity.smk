# Validity study of the analysis methods (type I error and coverage by simulation).
# Not part of `rule all` (about 5-10 minutes on 2 cores): run `snakemake methods_check`.
rule methods_check:
    input:
        code=library("validity.py", "power", "analysis", "commands/methods_check.py"),
    output:
        table="results/methods_check/validity.csv",
    log:
        "logs/methods_check.log",
    benchmark:
        "results/benchmarks/methods_check.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        out_dir=subpath(output.table, parent=True),
    shell:
        "trialstats methods-check --out {params.out_dir:q} > {log:q} 2>&1"
