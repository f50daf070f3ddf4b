# Validity study of the analysis methods (type I error and coverage by simulation) and its
# report. Not part of `rule all` (about 5-10 minutes on 2 cores): run `snakemake methods_check`.
# To re-render the report from an existing table without simulating, run
# `trialstats methods-check --from-table reports/methods_check/validity.csv --out DIR`.
rule methods_check:
    """Type I error and coverage of every analysis method by simulation, as a report."""
    output:
        table="reports/methods_check/validity.csv",
        permutation="reports/methods_check/permutation_validity.csv",
        html="reports/methods_check/validity.html",
        docx="reports/methods_check/validity.docx",
        latex="reports/methods_check/validity.tex",
        markdown="reports/methods_check/validity.md",
        svg="reports/methods_check/figures/validity.svg",
        png="reports/methods_check/figures/validity.png",
        pdf="reports/methods_check/figures/validity.pdf",
    log:
        "logs/methods_check.log",
    benchmark:
        "results/benchmarks/methods_check.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("methods-check"),
        out_dir=subpath(output.table, parent=True),
    shell:
        "trialstats methods-check --out {params.out_dir:q} > {log:q} 2>&1"


# The same for binary outcomes (logistic GLMM, GEE with Mancl-DeRouen, Kauermann-Carroll and
# Fay-Graubard SEs, cluster-level tests); not part of `rule all` (about 5-10 minutes on 2
# cores): run `snakemake methods_check_binary`.
rule methods_check_binary:
    """Type I error and coverage of the binary-outcome analyses by simulation, as a report."""
    output:
        table="reports/methods_check/validity_binary.csv",
        html="reports/methods_check/validity_binary.html",
        docx="reports/methods_check/validity_binary.docx",
        latex="reports/methods_check/validity_binary.tex",
        markdown="reports/methods_check/validity_binary.md",
        svg="reports/methods_check/figures/validity_binary.svg",
        png="reports/methods_check/figures/validity_binary.png",
        pdf="reports/methods_check/figures/validity_binary.pdf",
    log:
        "logs/methods_check_binary.log",
    benchmark:
        "results/benchmarks/methods_check_binary.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        code=code_version("methods-check"),
        out_dir=subpath(output.table, parent=True),
    shell:
        "trialstats methods-check --outcome-type binary --out {params.out_dir:q} > {log:q} 2>&1"
