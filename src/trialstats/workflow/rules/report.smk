rule report:
    """The trial report and its supplement (HTML, Word, LaTeX, Markdown), tables and figures."""
    input:
        config=CONFIG_FILE,
        practices="results/data/practices.parquet",
        patients="results/data/patients.parquet",
        primary="results/primary.csv",
        sensitivity="results/sensitivity.csv",
        completeness=rules.missing_data.output.completeness,
        dropout=rules.missing_data.output.dropout,
        power=PLANNING_OUTPUTS,
        tipping=TIPPING,
    output:
        html="reports/report.html",
        docx="reports/report.docx",
        latex="reports/report.tex",
        markdown="reports/report.md",
        supplement_html="reports/supplement.html",
        supplement_docx="reports/supplement.docx",
        supplement_latex="reports/supplement.tex",
        supplement_markdown="reports/supplement.md",
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("report"),
        results=subpath(input.primary, parent=True),
        missing=subpath(input.completeness, parent=True),
        power=[f"--power={table}" for table in PLANNING_OUTPUTS],
        tipping=[f"--tipping={table}" for table in TIPPING],
        out_dir=subpath(output.html, parent=True),
    shell:
        "trialstats report --config {input.config:q} --results {params.results:q}"
        " --missing-data {params.missing:q} {params.power:q} {params.tipping:q}"
        " --out {params.out_dir:q}"
        " > {log:q} 2>&1"
