"""The one generic training rule, and the helpers that expand an experiment into its runs.

Every training run is one job: `marlrepro train --config config/algos/<algo>.yaml --set k=v ...
--out <run dir>`, the --set arguments built in Python by marlrepro.experiments.Run.set_arguments
(the merge order is documented there). final.json, written last, marks a finished run.

The run's checkpoint/ directory is deliberately not an output: Snakemake deletes the outputs of a
failed job, and the checkpoint must survive so that the retry (or the next invocation) resumes. A
job killed after its last checkpoint (while writing its outputs or logging them) resumes at the
end and writes every output again from it; MLflow being down never fails the job (docs/tracking.md).

GPU: a run asks for `gpu=1` unless its device is cpu (config.yaml device, else the scale's). An
`auto` run may still find no GPU and use the CPU; locally `--resources gpu=N` caps how many
GPU jobs run at once, and on Slurm the resource becomes sbatch --gpus.
"""

from marlrepro.experiments import RUN_DIR, Experiment, Run, env_slug


wildcard_constraints:
    paper=r"[a-z0-9_]+",
    experiment=r"[a-z0-9_]+",
    env=r"[a-z0-9_]+-[A-Za-z0-9_]+",
    algo=r"[a-z0-9_]+",
    seed=r"\d+",


def experiment(paper: str, name: str) -> Experiment:
    """The experiment ``name`` of config/<paper>.yaml, merged with the chosen scale."""
    try:
        return EXPERIMENTS[paper][name]
    except KeyError:
        known = [f"{p}/{e}" for p, grid in EXPERIMENTS.items() for e in grid]
        raise WorkflowError(f"no experiment {paper}/{name}; experiments: {', '.join(known)}") from None


def run_outputs(paper: str, name: str, filename: str = "final.json") -> list[str]:
    """``filename`` in the run directory of every run of experiment ``paper``/``name``."""
    return [f"{run.run_dir}/{filename}" for run in experiment(paper, name).runs()]


def run_of(wildcards) -> Run:
    """The planned run that the training rule's wildcards name."""
    runs = experiment(wildcards.paper, wildcards.experiment).runs()
    for run in runs:
        if (env_slug(run.env), run.algo, str(run.seed)) == (wildcards.env, wildcards.algo, wildcards.seed):
            return run
    raise WorkflowError(
        f"{RUN_DIR.format(**wildcards)} is not a run of {wildcards.paper}/{wildcards.experiment} at "
        f"scale {SCALE.name}; its runs: {', '.join(run.run_dir for run in runs)}"
    )


rule train:
    """Train one run of a paper experiment with `marlrepro train`."""
    input:
        algo="config/algos/{algo}.yaml",
    output:
        final=f"{RUN_DIR}/final.json",
        metrics=f"{RUN_DIR}/metrics.parquet",
        config=f"{RUN_DIR}/config.yaml",
    params:
        sets=lambda wildcards: run_of(wildcards).set_arguments(),
        out=lambda wildcards: run_of(wildcards).run_dir,
    log:
        "results/logs/train/{paper}/{experiment}/{env}/{algo}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{paper}/{experiment}/{env}/{algo}/seed{seed}.tsv"
    threads: SCALE.threads
    retries: SCALE.retries
    resources:
        gpu=lambda wildcards: int(run_of(wildcards).device != "cpu"),
        runtime=lambda wildcards: experiment(wildcards.paper, wildcards.experiment).runtime_min,
        mem_mb=lambda wildcards: experiment(wildcards.paper, wildcards.experiment).mem_mb,
    conda:
        "../../envs/train.yaml"
    shell:
        "marlrepro train --config {input.algo} {params.sets} --out {params.out} > {log} 2>&1"
