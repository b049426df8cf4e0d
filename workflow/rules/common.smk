"""The training rules, and the helpers that expand an experiment into its runs and packs.

Packs. The seeds of one (paper, experiment, env, algo) cell train together: split into
ceil(seeds / pack_size) packs of consecutive seeds, pack_size seeds each but the last
(marlrepro.experiments.seed_packs; pack_size: config.yaml, else the scale's). Each pack of two or
more seeds is ONE job, one process, one GPU: `marlrepro train --config config/algos/<algo>.yaml
--set k=v ... --pack run.seed=0,1,2 --out 'results/runs/<paper>/<experiment>/<env>/<algo>/seed{run.seed}'`
(marlrepro.experiments.Pack, marlrepro.pack_plan), which declares the final.json, metrics.parquet
and config.yaml of every member. A pack of one seed, and every run at pack_size 1, is the one-run
job of rule `train`: `marlrepro train --config config/algos/<algo>.yaml --set k=v ... --out <run dir>`,
the --set arguments built by marlrepro.experiments.Run.set_arguments (the merge order is documented
there). final.json, written last, marks a finished run.

Snakemake cannot give one rule a number of outputs that depends on its wildcards, and every output
must hold every wildcard; so each list of seeds packed somewhere gets a rule of its own,
`train_pack_seeds<first>to<last>`, whose outputs name those seeds and whose wildcard `target`
(paper/experiment) matches only the experiments packed that way. These rules come before `train`
(ruleorder), so asking for one run's final.json plans that run's pack (all its seeds train again);
`--config pack_size=1` plans that run alone, as does `--allowed-rules train`.

Experts and demonstrations (marlrepro.experiments, "Demonstrations" and "Experts"). A run of an
expert experiment (collect_demos, or one that expert_from names) keeps its best checkpoint
(run.keep_best); rule `export_expert` exports it (`marlrepro export-policy --checkpoint best`) to
results/experts/<paper>/<experiment>/<env>/<algo>/seed<seed>/policy.zip. Rule `collect_demos` plays
a collect_demos expert (`marlrepro collect-demos`) into the task's demo file and the expert's score
over it (expert.json), in results/demos/<paper>/<expert experiment>/<env>/. A run that learns from
them (demos_from) has its task's demo file as an input of its job, alone or in a pack, and its path
as demos.path; a run that learns from an expert's policy (expert_from) has the exported policy of
its expert (same task, same seed) as an input and as dagger.expert, or with expert_choice best that
of the expert experiment's best run on the task, which rule `select_best_expert` copies, once every
expert run of the task has trained, to results/experts/<paper>/<experiment>/<env>/<algo>/best/
(policy.zip, and choice.json naming the run).

The run's checkpoint/ directory is deliberately not an output: Snakemake deletes the outputs of a
failed job, and the checkpoint must survive so that the retry (or the next invocation) resumes. A
job killed after its last checkpoint (while writing its outputs or logging them) resumes at the
end and writes every output again from it; MLflow being down never fails the job (docs/tracking.md).

GPU: a run or a pack asks for `gpu=1` unless its device is cpu (config.yaml device, else the
scale's). An `auto` run may still find no GPU and use the CPU; locally `--resources gpu=N` caps how
many GPU jobs run at once, and on Slurm the resource becomes sbatch --gpus. A pack asks for the
memory (mem_mb) of all its runs and the runtime of one.
"""

import re

from marlrepro.experiments import (
    DEMOS_DIR,
    EXPERT_BEST,
    EXPERT_POLICY,
    RUN_DIR,
    Experiment,
    Pack,
    Run,
    env_slug,
    packed_seeds,
    sweep_members,
)


PACK_SIZE = config["pack_size"] or SCALE.pack_size


wildcard_constraints:
    paper=r"[a-z0-9_]+",
    experiment=r"[a-z0-9_]+(-[A-Za-z0-9_.+-]+)?",  # a scan's experiments: <name>-<value>
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


def planned(paper: str, names) -> list[Experiment]:
    """The experiments ``names`` of ``paper`` that this scale plans (scales.<scale>.skip leaves some out)."""
    return [EXPERIMENTS[paper][name] for name in names if name in EXPERIMENTS[paper]]


def sweep(paper: str, name: str) -> list[Experiment]:
    """The experiments of the scan ``name`` of config/<paper>.yaml, one per value at this scale."""
    members = sweep_members(EXPERIMENTS[paper], name)
    if not members:
        raise WorkflowError(f"no scan {paper}/{name} (an experiment with sweep:) in config/{paper}.yaml")
    return members


def run_outputs(paper: str, name: str, filename: str = "final.json") -> list[str]:
    """``filename`` in the run directory of every run of experiment ``paper``/``name``."""
    return [f"{run.run_dir}/{filename}" for run in experiment(paper, name).runs()]


# Curve figures (marlrepro.report.curve_panels): panels of labelled series of runs, as rule params.
def cell_runs(paper: str, name: str, algo: str, scenario: str) -> list[str]:
    """The run directories of ``algo`` on ``scenario`` in experiment ``paper``/``name`` at this scale."""
    return [run.run_dir for run in experiment(paper, name).runs()
            if run.algo == algo and run.env.split(":", 1)[1] == scenario]


def curve_panel(title: str, metric: str, ylabel: str, series: dict, limits: list | None = None,
                references: dict | None = None) -> dict:
    """A panel of marlrepro.report.curve_panels.Panel, as rule params; series without runs at this
    scale are left out. ``references``: label -> a JSON file in final.json's fields (an input of the
    rule) whose ``metric`` is drawn as a horizontal line, e.g. MIFQ's expert of the task."""
    kept = {label: runs for label, runs in series.items() if runs}
    return {"title": title, "metric": metric, "ylabel": ylabel, "series": kept,
            **({"limits": limits} if limits else {}), **({"references": references} if references else {})}


def panel_files(panels: list, filename: str) -> list[str]:
    """``filename`` in the run directory of every run the ``panels`` plot."""
    return [f"{run_dir}/{filename}" for panel in panels for runs in panel["series"].values() for run_dir in runs]


def panel_setting(paper: str, panels: list) -> str:
    """The caption's setting line (run_setting) of ``paper``'s runs that the ``panels`` plot."""
    runs = {run.run_dir: run for exp in EXPERIMENTS[paper].values() for run in exp.runs()}
    return run_setting([runs[run_dir] for panel in panels for dirs in panel["series"].values() for run_dir in dirs])


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


def run_demos(run: Run) -> list[str]:
    """The demo file that ``run`` learns from (its demos.path), if any: an input of its job."""
    return [run.demos] if run.demos else []


def run_experts(runs) -> list[str]:
    """The exported expert policies that ``runs`` learn from (their dagger.expert), if any: inputs of their job."""
    return list(dict.fromkeys(run.expert_policy for run in runs if run.expert_policy))  # one best expert: once


rule train:
    """Train one run of a paper experiment with `marlrepro train`."""
    input:
        algo="config/algos/{algo}.yaml",
        demos=lambda wildcards: run_demos(run_of(wildcards)),
        experts=lambda wildcards: run_experts([run_of(wildcards)]),
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


def target_experiment(wildcards) -> Experiment:
    """The experiment that a pack rule's wildcard ``target`` (paper/experiment) names."""
    return experiment(*wildcards.target.split("/", 1))


def pack_of(wildcards, seeds: tuple[int, ...]) -> Pack:
    """The planned pack of ``seeds`` in the cell that a pack rule's wildcards name."""
    exp = target_experiment(wildcards)
    for pack in exp.packs(PACK_SIZE):
        first = pack.members[0]
        if (env_slug(first.env), first.algo, pack.seeds) == (wildcards.env, wildcards.algo, seeds):
            return pack
    cells = sorted({f"{env_slug(env)} {algo}" for env in exp.envs for algo in exp.algos})
    raise WorkflowError(
        f"seeds {seeds} of {wildcards.env} {wildcards.algo} are not a pack of {exp.target} at scale "
        f"{SCALE.name}, pack_size {PACK_SIZE}; its cells: {', '.join(cells)}"
    )


PACK_CELL = "results/runs/{target}/{env}/{algo}"

for pack_seeds, pack_targets in packed_seeds(
    [exp for grid in EXPERIMENTS.values() for exp in grid.values()], PACK_SIZE
).items():
    pack_label = f"seeds{pack_seeds[0]}to{pack_seeds[-1]}"

    rule:
        """Train these seeds of one cell in one process, one job (`marlrepro train --pack`); the job
        declares every member's final.json, metrics.parquet and config.yaml."""
        name:
            f"train_pack_{pack_label}"
        input:
            algo="config/algos/{algo}.yaml",
            demos=lambda wildcards, seeds=pack_seeds: run_demos(pack_of(wildcards, seeds).members[0]),
            experts=lambda wildcards, seeds=pack_seeds: run_experts(pack_of(wildcards, seeds).members),
        output:
            final=[f"{PACK_CELL}/seed{seed}/final.json" for seed in pack_seeds],
            metrics=[f"{PACK_CELL}/seed{seed}/metrics.parquet" for seed in pack_seeds],
            config=[f"{PACK_CELL}/seed{seed}/config.yaml" for seed in pack_seeds],
        wildcard_constraints:
            target="|".join(map(re.escape, pack_targets)),
        params:
            sets=lambda wildcards, seeds=pack_seeds: pack_of(wildcards, seeds).set_arguments(),
            pack=lambda wildcards, seeds=pack_seeds: pack_of(wildcards, seeds).pack_argument(),
            out=lambda wildcards, seeds=pack_seeds: pack_of(wildcards, seeds).out_template,
        log:
            f"results/logs/train/{{target}}/{{env}}/{{algo}}/{pack_label}.log",
        benchmark:
            f"results/benchmarks/train/{{target}}/{{env}}/{{algo}}/{pack_label}.tsv"
        threads: SCALE.threads
        retries: SCALE.retries
        resources:
            gpu=lambda wildcards: int(target_experiment(wildcards).device != "cpu"),
            runtime=lambda wildcards: target_experiment(wildcards).runtime_min,
            mem_mb=lambda wildcards, seeds=pack_seeds: len(seeds) * target_experiment(wildcards).mem_mb,
        conda:
            "../../envs/train.yaml"
        shell:
            "marlrepro train --config {input.algo} {params.sets} --pack {params.pack} --out {params.out:q} > {log} 2>&1"

    # a run that a pack trains is that pack's output, not a one-run job of its own
    workflow.ruleorder(f"train_pack_{pack_label}", "train")


# --------------------------------------------------------------------- experts and demonstrations
def expert_of(wildcards) -> tuple[Experiment, str]:
    """The expert experiment and env (its name) that the wildcards of a demonstration rule name."""
    exp = experiment(wildcards.paper, wildcards.experiment)
    envs = [env for env in exp.envs if env_slug(env) == wildcards.env]
    if not exp.collect or not envs:
        raise WorkflowError(
            f"{DEMOS_DIR.format(**wildcards)}: no expert of {exp.target} on {wildcards.env} at scale {SCALE.name}"
            + (f"; its envs: {', '.join(map(env_slug, exp.collect))}" if exp.collect else " (it has no collect_demos)")
        )
    return exp, envs[0]


def expert_policy(wildcards) -> str:
    """The exported policy of the expert run that a demonstration rule's wildcards name."""
    exp, env = expert_of(wildcards)
    return exp.expert_run(env).policy_file


def demo_episodes(wildcards) -> int:
    """How many demonstrations the expert that a demonstration rule's wildcards name plays."""
    exp, env = expert_of(wildcards)
    return exp.collect[env]


rule export_expert:
    """Export an expert run at its best evaluation (`marlrepro export-policy --checkpoint best`): a
    collect_demos expert, or one that expert_from names."""
    input:
        final=f"{RUN_DIR}/final.json",
    output:
        policy=EXPERT_POLICY,
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.final),
    log:
        "results/logs/experts/{paper}/{experiment}/{env}/{algo}/seed{seed}/export.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "marlrepro export-policy {params.run_dir} {output.policy} --checkpoint best > {log} 2>&1"


def expert_candidates(wildcards) -> list[Run]:
    """The runs of the expert experiment and algo that a select_best_expert job's wildcards name, on its env."""
    runs = [run for run in experiment(wildcards.paper, wildcards.experiment).runs()
            if (env_slug(run.env), run.algo) == (wildcards.env, wildcards.algo)]
    if not runs:
        raise WorkflowError(f"{EXPERT_BEST.format(**wildcards)}: {wildcards.experiment} has no run of "
                            f"{wildcards.algo} on {wildcards.env} at scale {SCALE.name}")
    return runs


rule select_best_expert:
    """The best of an expert experiment's exported runs on a task (expert_choice best; CESMA §6.1: the
    run of the highest test win rate, marlrepro.experiments.best_expert_index), copied with a note
    of which run it is."""
    localrule: True
    input:
        finals=lambda wildcards: [f"{run.run_dir}/final.json" for run in expert_candidates(wildcards)],
        policies=lambda wildcards: [run.policy_file for run in expert_candidates(wildcards)],
    output:
        policy=f"{EXPERT_BEST}/policy.zip",
        choice=f"{EXPERT_BEST}/choice.json",
    log:
        "results/logs/experts/{paper}/{experiment}/{env}/{algo}/best.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/select_best_expert.py"


rule collect_demos:
    """Play a task's exported expert for its demonstrations (`marlrepro collect-demos`, settings and
    caps from config/demos.yaml): the demo file, and the expert's score over it (expert.json)."""
    input:
        policy=expert_policy,
        settings=DEMOS_CONFIG,
    output:
        demos=f"{DEMOS_DIR}/demos.zip",
        summary=f"{DEMOS_DIR}/expert.json",
    params:
        episodes=demo_episodes,
        # a batch of episodes wider than the collection plays episodes only to discard them
        width=lambda wildcards: min(DEMOS["width"], demo_episodes(wildcards)),
        device=lambda wildcards: expert_of(wildcards)[0].device,
    log:
        f"results/logs/demos/{{paper}}/{{experiment}}/{{env}}/collect.log",
    benchmark:
        f"results/benchmarks/demos/{{paper}}/{{experiment}}/{{env}}.tsv"
    threads: SCALE.threads
    retries: SCALE.retries
    resources:
        gpu=lambda wildcards: int(expert_of(wildcards)[0].device != "cpu"),
        runtime=lambda wildcards: expert_of(wildcards)[0].runtime_min,
        mem_mb=lambda wildcards: expert_of(wildcards)[0].mem_mb,
    conda:
        "../../envs/train.yaml"
    shell:
        "marlrepro collect-demos {input.policy} {output.demos} --episodes {params.episodes} --config {input.settings} "
        "--width {params.width} --device {params.device} --summary {output.summary} > {log} 2>&1"
