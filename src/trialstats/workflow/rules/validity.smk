# Validity study of the analysis methods (type I error and coverage by simulation) and its
# report. Not part of `rule all` (about 5-10 minutes on 2 cores): run `snakemake methods_check`.
# To re-render the report from an existing table without simulating, run
# `trialstats methods-check --from-table reports/methods_check/validity.csv
# --from-permutation reports/methods_check/permutation_validity.csv --out-dir DIR`.
rule methods_check:
    """Type I error and coverage of every analysis method by simulation, as a report."""
    output:
        table="reports/methods_check/validity.csv",
        permutation="reports/methods_check/permutation_validity.csv",
        html="reports/methods_check/validity.html",
        docx="reports/methods_check/validity.docx",
        latex="reports/methods_check/validity.tex",
        markdown="reports/methods_check/validity.md",
        figures=directory("reports/methods_check/figures"),
    log:
        "logs/methods_check.log",
    benchmark:
        "results/benchmarks/methods_check.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("methods-check"),
    shell:
        "trialstats methods-check --table-out {output.table:q}"
        " --permutation-out {output.permutation:q} --html-out {output.html:q}"
        " --docx-out {output.docx:q} --latex-out {output.latex:q}"
        " --markdown-out {output.markdown:q} --figures-out {output.figures:q}"
        " > {log:q} 2>&1"


# The same for binary outcomes (logistic GLMM, GEE with Mancl-DeRouen, Kauermann-Carroll and
# Fay-Graubard SEs, cluster-level tests); not part of `rule all` (about 5-10 minutes on 2
# cores): run `snakemake methods_check_binary`.
rule methods_check_binary:
    """Type I error and coverage of the binary-outcome analyses by simulation, as a report."""
    output:
        table="reports/methods_check_binary/validity_binary.csv",
        html="reports/methods_check_binary/validity_binary.html",
        docx="reports/methods_check_binary/validity_binary.docx",
        latex="reports/methods_check_binary/validity_binary.tex",
        markdown="reports/methods_check_binary/validity_binary.md",
        figures=directory("reports/methods_check_binary/figures"),
    log:
        "logs/methods_check_binary.log",
    benchmark:
        "results/benchmarks/methods_check_binary.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("methods-check"),
    shell:
        "trialstats methods-check --outcome-type binary --table-out {output.table:q}"
        " --html-out {output.html:q} --docx-out {output.docx:q} --latex-out {output.latex:q}"
        " --markdown-out {output.markdown:q} --figures-out {output.figures:q}"
        " > {log:q} 2>&1"
