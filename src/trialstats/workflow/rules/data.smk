rule validate:
    input:
        config=CONFIG_FILE,
        practices=TRIAL["data"]["practices"],
        patients=TRIAL["data"]["patients"],
        code=library("commands/validate.py"),
    output:
        practices="results/data/practices.parquet",
        patients="results/data/patients.parquet",
        summary="results/data/validation.txt",
    log:
        "logs/validate.log",
    conda:
        "../envs/trialstats.yaml"
    params:
        out_dir=subpath(output.summary, parent=True),
    shell:
        "trialstats validate --config {input.config:q} --out {params.out_dir:q} > {log:q} 2>&1"


rule validation_report:
    input:
        "results/data/validation.txt",
    output:
        "reports/validation.txt",
    log:
        "logs/validation_report.log",
    conda:
        "../envs/trialstats.yaml"
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
