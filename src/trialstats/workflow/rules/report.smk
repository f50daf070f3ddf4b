rule report:
    """The trial report and its supplement (HTML, Word, LaTeX, Markdown), tables and figures."""
    input:
        config=CONFIG_FILE,
        practices="results/data/practices.parquet",
        patients="results/data/patients.parquet",
        fingerprint="results/data/fingerprint.json",
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
        tables=directory("reports/tables"),
        figures=directory("reports/figures"),
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("report"),
        power=[f"--power={table}" for table in PLANNING_OUTPUTS],
        tipping=[f"--tipping={table}" for table in TIPPING],
    shell:
        "trialstats report --config {input.config:q} --practices {input.practices:q}"
        " --patients {input.patients:q} --fingerprint {input.fingerprint:q}"
        " --primary {input.primary:q} --sensitivity {input.sensitivity:q}"
        " --completeness {input.completeness:q} --dropout {input.dropout:q}"
        " {params.power:q} {params.tipping:q}"
        " --html-out {output.html:q} --docx-out {output.docx:q}"
        " --latex-out {output.latex:q} --markdown-out {output.markdown:q}"
        " --supplement-html-out {output.supplement_html:q}"
        " --supplement-docx-out {output.supplement_docx:q}"
        " --supplement-latex-out {output.supplement_latex:q}"
        " --supplement-markdown-out {output.supplement_markdown:q}"
        " --tables-out {output.tables:q} --figures-out {output.figures:q}"
        " > {log:q} 2>&1"
