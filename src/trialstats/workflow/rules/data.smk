rule validate:
    """Check the trial's tables against the data contract; write the analysis-ready tables."""
    input:
        config=CONFIG_FILE,
        practices=TRIAL["data"]["practices"],
        patients=TRIAL["data"]["patients"],
    output:
        practices="results/data/practices.parquet",
        patients="results/data/patients.parquet",
        summary="results/data/validation.txt",
        fingerprint="results/data/fingerprint.json",
    log:
        "logs/validate.log",
    benchmark:
        "results/benchmarks/validate.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("validate"),
    shell:
        "trialstats validate --config {input.config:q}"
        " --practices-out {output.practices:q} --patients-out {output.patients:q}"
        " --summary-out {output.summary:q} --fingerprint-out {output.fingerprint:q}"
        " > {log:q} 2>&1"


rule validation_report:
    """Copy the validation summary next to the finished reports."""
    input:
        "results/data/validation.txt",
    output:
        "reports/validation.txt",
    log:
        "logs/validation_report.log",
    benchmark:
        "results/benchmarks/validation_report.tsv"
    conda:
        "../envs/trialstats.yaml"
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
