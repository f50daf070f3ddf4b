rule power_chunk:
    input:
        config=CONFIG_FILE,
        code=library("power", "analysis", "commands/power.py"),
    output:
        "results/power/chunks/chunk_{chunk}.csv",
    log:
        "logs/power/chunk_{chunk}.log",
    benchmark:
        "results/benchmarks/power_chunk_{chunk}.tsv"
    conda:
        "../envs/trialstats.yaml"
    params:
        n_chunks=POWER_CHUNKS,
    shell:
        "trialstats power grid --config {input.config:q} --chunk {wildcards.chunk}"
        " --n-chunks {params.n_chunks} --quiet --out {output:q} > {log:q} 2>&1"


rule power_gather:
    input:
        chunks=expand(
            "results/power/chunks/chunk_{chunk}.csv", chunk=range(POWER_CHUNKS)
        ),
        code=library("power", "analysis", "commands/power.py"),
    output:
        table="results/power/power.csv",
    log:
        "logs/power/gather.log",
    conda:
        "../envs/trialstats.yaml"
    shell:
        "trialstats power gather {input.chunks:q} --out {output.table:q} > {log:q} 2>&1"
