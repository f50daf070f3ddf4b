rule report:
    """The trial report (HTML, Word, LaTeX, Markdown), its tables and figures."""
    input:
        config=CONFIG_FILE,
        practices="results/data/practices.parquet",
        patients="results/data/patients.parquet",
        primary="results/primary.csv",
        sensitivity="results/sensitivity.csv",
        power=PLANNING_OUTPUTS,
    output:
        html="reports/report.html",
        docx="reports/report.docx",
        latex="reports/report.tex",
        markdown="reports/report.md",
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("report"),
        results=subpath(input.primary, parent=True),
        power=[f"--power={table}" for table in PLANNING_OUTPUTS],
        out_dir=subpath(output.html, parent=True),
    shell:
        "trialstats report --config {input.config:q} --results {params.results:q}"
        " {params.power:q} --out {params.out_dir:q} > {log:q} 2>&1"
