"""Paper experiment grids and scales -> the concrete training runs the Snakemake workflow schedules.

``config/<paper>.yaml`` lists a paper's experiments: algorithms, environments, number of seeds and
train-config settings as published, plus per-scale overrides under ``scales.<scale>``.
``config/scales/<scale>.yaml`` holds scale-wide settings and each training job's compute request.
Both are validated against ``workflow/schemas/`` by the Snakefile before they reach this module,
which checks the rest before any job starts: algorithm and env names, train settings (against
:class:`~marlrepro.config.TrainConfig`), and the merged settings of every planned run.

The settings of one run are applied in this order, later wins:

1. ``config/algos/<algo>.yaml`` (passed to ``marlrepro train --config``),
2. the experiment's ``settings`` (the paper's values), then its ``algo_settings.<algo>`` (a paper's
   values for one method in this experiment, e.g. ME-IGM's Overcooked batch size),
3. the scale's ``settings`` (scale-wide, e.g. fewer evaluation episodes),
4. the experiment's ``scales.<scale>.settings`` (e.g. a tiny ``run.t_max``), then its
   ``scales.<scale>.algo_settings.<algo>`` (one method's, e.g. fewer updates for a slow learner),
5. the keys the workflow owns (:data:`WORKFLOW_KEYS`): environment, seed, device, progress bar,
   MLflow experiment (the paper), run name and tags.

Packs. The seeds of one cell (paper, experiment, env, algo) are trained together, in one process,
by ``marlrepro train --pack run.seed=0,1,2`` (:class:`Pack`, :mod:`marlrepro.pack_plan`): the
cell's seeds are split into ``ceil(seeds / pack_size)`` packs (:func:`seed_packs`). A pack of one
seed is the run's own ``marlrepro train`` command, without ``--pack``.

Sweeps. An experiment with ``sweep: {key, values}`` (a paper's hyperparameter scan) becomes one
experiment per value, named ``<experiment>-<value>`` (:func:`sweep_name`), whose runs set ``key``
to the value after every other setting; :attr:`Experiment.sweep` records the scan it belongs to.
``sweep.paired: {other key: [one value per value of key]}`` sets further keys in step with it, the
i-th value of each with the i-th value of ``key`` (MIFQ's demonstration batch, at most the scanned
number of demonstrations).

Demonstrations (MIFQ). An experiment with ``collect_demos`` trains one expert per task (one seed,
``run.keep_best`` set by the workflow): its best checkpoint is exported and plays
``collect_demos.episodes`` demonstrations (default: ``config/demos.yaml``'s cap for the task's
backend) into one file per task, :func:`demo_files`. An experiment with ``demos_from: <expert
experiment>`` trains learners of demonstrations on those files: each run's ``demos.path`` is its
task's file (a key the workflow owns) and its ``demos.count`` (a setting) at most the episodes
collected; every task of it must have an expert at the same scale.

Experts (CESMA). An experiment with ``expert_from: <experiment>`` trains learners of a fixed expert
policy (:data:`EXPERT_ALGOS`, e.g. DAgger): that experiment (one algorithm) keeps each run's best
checkpoint (``run.keep_best``), which the workflow exports per run to :data:`EXPERT_POLICY`
(``marlrepro export-policy --checkpoint best``); seed ``s`` of a learner on a task reads the policy
of seed ``s`` of the expert on that task (:attr:`Run.expert_policy`, its ``dagger.expert``, a key the
workflow owns), so each seed's chain is an expert and then its decentralisation. Every task and
seed of the learners must have an expert at the same scale. With ``expert_choice: best`` (CESMA §6.1:
"we decentralize the one with the highest test win percentage") every seed of a learner on a task
reads instead the policy of the expert run of that task whose best evaluation is the best
(:func:`best_expert_index`), which the workflow picks after the experts have trained (rule
``select_best_expert``) into :data:`EXPERT_BEST`, with ``choice.json`` naming the run.

Settings are nested mappings, like the train config files; they reach ``marlrepro train`` as one
``--set dotted.key=value`` per leaf. Nothing here imports torch or JAX, so the Snakefile parses fast.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marlrepro.config import (
    DEMONSTRATION_ALGOS,
    DemosConfig,
    check_run_settings,
    check_settings,
    flatten,
    parse_override,
    unflatten,
)
from marlrepro.env_catalog import check_env_name
from marlrepro.errors import ConfigError, did_you_mean, located, unknown_choice

# Keys the workflow decides for every run; experiment and scale files may not set them. ``algo`` comes
# from config/algos/<algo>.yaml and the MLflow URI from the MLFLOW_TRACKING_URI environment variable.
WORKFLOW_KEYS = frozenset({"algo", "env.name", "run.seed", "run.device", "run.progress", "demos.path",
                           "run.keep_best", "dagger.expert"})
WORKFLOW_PREFIXES = ("tracking.",)
# ``config.yaml: backend: sc2`` serves the SMAC maps and SMACv2 scenarios written ``smax:<map>`` and
# ``smacv2:<scenario>`` from StarCraft II instead of the extended SMAX.
SMAC_BACKENDS = ("smax", "sc2")
STARCRAFT_FAMILIES = ("smax", "smacv2")
# Where ``marlrepro train --out`` writes one run; ``env`` is the file-system form (:func:`env_slug`).
RUN_DIR = "results/runs/{paper}/{experiment}/{env}/{algo}/seed{seed}"
# What a pack varies, and the placeholder that stands for its value in the pack's --out and --set
# values (the contract of ``marlrepro train --pack``, :mod:`marlrepro.pack_plan`).
PACK_KEY = "run.seed"
PACK_PLACEHOLDER = "{" + PACK_KEY + "}"
# An expert experiment's files per task (``collect_demos``): the demonstrations its best policy
# (:data:`EXPERT_POLICY`) played (``marlrepro collect-demos``) and its score over them (``--summary``,
# in final.json's fields), in :data:`DEMOS_DIR`.
DEMOS_DIR = "results/demos/{paper}/{experiment}/{env}"
DEMO_FILES = {"demos": "demos.zip", "summary": "expert.json"}
# A run that keeps its best checkpoint (an expert: ``collect_demos``, or named by ``expert_from``)
# exported by ``marlrepro export-policy --checkpoint best`` (workflow rule ``export_expert``).
EXPERT_POLICY = "results/experts/{paper}/{experiment}/{env}/{algo}/seed{seed}/policy.zip"
# The algorithms whose runs learn from a fixed expert's policy file, and the key that receives it
# (``expert_from``).
EXPERT_ALGOS = ("dagger",)
EXPERT_KEY = "dagger.expert"
# ``expert_choice``: each seed's own expert (``seed``) or the expert experiment's best run on the task
# (``best``), whose policy and ``choice.json`` (its run directory, seed and best evaluation) the
# workflow writes in :data:`EXPERT_BEST` (rule ``select_best_expert``)
EXPERT_CHOICES = ("seed", "best")
EXPERT_BEST = "results/experts/{paper}/{experiment}/{env}/{algo}/best"


@dataclass(frozen=True)
class Scale:
    """A named set of overrides and compute requests (``config/scales/<name>.yaml``)."""

    name: str
    description: str
    device: str
    threads: int
    retries: int
    pack_size: int
    runtime_min: int
    mem_mb: int
    settings: dict[str, Any]


@dataclass(frozen=True)
class Run:
    """One training run: what ``marlrepro train`` is called with, and where it writes."""

    paper: str
    experiment: str
    env: str
    algo: str
    seed: int
    scale: str
    device: str
    settings: dict[str, Any]
    demos: str | None = None  # its task's demonstration file (demos.path), for a learner of demonstrations
    expert: bool = False  # a run of an expert experiment (collect_demos, expert_from): it keeps its best checkpoint
    # the expert this run learns from (expert_from): (experiment, algo) of its run of the same env and seed
    expert_from: tuple[str, str] | None = None
    expert_best: bool = False  # expert_choice best: it learns from the expert experiment's best run on its env

    @property
    def run_dir(self) -> str:
        """:data:`RUN_DIR` filled in for this run."""
        return self.run_dir_for(self.seed)

    def run_dir_for(self, seed: int | str) -> str:
        """:data:`RUN_DIR` of this run's cell for ``seed``: a seed, or :data:`PACK_PLACEHOLDER`."""
        return RUN_DIR.format(
            paper=self.paper, experiment=self.experiment, env=env_slug(self.env), algo=self.algo, seed=seed
        )

    @property
    def policy_file(self) -> str:
        """:data:`EXPERT_POLICY` of this run: its best checkpoint, exported (an expert's)."""
        return EXPERT_POLICY.format(paper=self.paper, experiment=self.experiment, env=env_slug(self.env),
                                    algo=self.algo, seed=self.seed)

    @property
    def expert_run_dir(self) -> str | None:
        """The run directory of the expert run this run learns from (``expert_from``), if any."""
        return self.expert_dir_for(self.seed)

    @property
    def expert_policy(self) -> str | None:
        """The exported policy file of the expert this run learns from (``expert_from``), if any: an
        input of its job and its ``dagger.expert``."""
        return self.expert_policy_for(self.seed)

    def expert_dir_for(self, seed: int | str) -> str | None:
        """The expert's run directory for ``seed`` (a seed, or :data:`PACK_PLACEHOLDER`), if any."""
        if self.expert_from is None:
            return None
        experiment, algo = self.expert_from
        return RUN_DIR.format(paper=self.paper, experiment=experiment, env=env_slug(self.env), algo=algo, seed=seed)

    def expert_policy_for(self, seed: int | str) -> str | None:
        """The expert's exported policy for ``seed`` (a seed, or :data:`PACK_PLACEHOLDER`), if any:
        the best expert run's (``expert_choice: best``, the same for every seed) or seed ``seed``'s."""
        if self.expert_from is None:
            return None
        if self.expert_best:
            return f"{self.expert_best_dir}/policy.zip"
        experiment, algo = self.expert_from
        return EXPERT_POLICY.format(paper=self.paper, experiment=experiment, env=env_slug(self.env), algo=algo,
                                    seed=seed)

    @property
    def expert_best_dir(self) -> str | None:
        """:data:`EXPERT_BEST` of this run's expert (``expert_choice: best``), if any."""
        if self.expert_from is None or not self.expert_best:
            return None
        experiment, algo = self.expert_from
        return EXPERT_BEST.format(paper=self.paper, experiment=experiment, env=env_slug(self.env), algo=algo)

    def train_settings(self) -> dict[str, Any]:
        """Every ``--set`` key of this run, the workflow's own keys last."""
        return self.settings_for(self.seed)

    def settings_for(self, seed: int | str) -> dict[str, Any]:
        """Every ``--set`` key of this run's cell for ``seed``: a seed, or :data:`PACK_PLACEHOLDER`
        (the settings a pack's members share, before ``marlrepro train --pack`` fills it in)."""
        return {
            **self.settings,
            "env.name": self.env,
            "run.seed": seed,
            "run.device": self.device,
            "run.progress": False,  # tqdm bars would fill the rule's log file
            **({"demos.path": self.demos} if self.demos else {}),
            **({EXPERT_KEY: self.expert_policy_for(seed)} if self.expert_from else {}),
            **({"run.keep_best": True} if self.expert else {}),
            # one MLflow experiment per paper; a run's target is the experiment it feeds
            # (docs/tracking.md lists the tags)
            "tracking.experiment": self.paper,
            "tracking.run_name": self.run_dir_for(seed).removeprefix("results/runs/"),
            "tracking.tags.paper": self.paper,
            "tracking.tags.experiment": self.experiment,
            "tracking.tags.target": f"{self.paper}/{self.experiment}",
            "tracking.tags.scale": self.scale,
        }

    def set_arguments(self) -> str:
        """The shell-quoted ``--set key=value`` arguments of ``marlrepro train``, one flag per key."""
        return format_set_arguments(self.train_settings())


@dataclass(frozen=True)
class Pack:
    """Runs of one cell (paper, experiment, env, algo) that differ only in their seed, trained in
    one process by one job: ``marlrepro train --config config/algos/<algo>.yaml``, then
    :meth:`set_arguments`, ``--pack`` :meth:`pack_argument` and ``--out`` :attr:`out_template`.
    Each member gets exactly the settings its own ``marlrepro train`` command would give it
    (:meth:`Run.set_arguments`): ``--pack run.seed=0,1,2`` sets its seed and fills the seed into
    the :data:`PACK_PLACEHOLDER` of ``--out`` and of the ``tracking.run_name`` value.
    """

    members: tuple[Run, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.members)

    @property
    def out_template(self) -> str:
        """The members' run directory with :data:`PACK_PLACEHOLDER` for the seed (``--out``)."""
        return self.members[0].run_dir_for(PACK_PLACEHOLDER)

    def set_arguments(self) -> str:
        """The shell-quoted ``--set`` arguments the members share; the seed is left to ``--pack``."""
        settings = self.members[0].settings_for(PACK_PLACEHOLDER)
        del settings[PACK_KEY]
        return format_set_arguments(settings)

    def pack_argument(self) -> str:
        """The value of ``--pack``: ``run.seed=0,1,2``."""
        return f"{PACK_KEY}={','.join(map(str, self.seeds))}"


@dataclass(frozen=True)
class Sweep:
    """Where an experiment sits in a scan: the scan's experiment name in ``config/<paper>.yaml``,
    the swept train-config key and this experiment's value of it; ``paired``: the keys set in step
    with it (``sweep.paired``) and their values here."""

    name: str
    key: str
    value: Any
    paired: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The settings this point of the scan sets last: its key's value, then the paired keys'."""
        return {self.key: self.value, **self.paired}


@dataclass(frozen=True)
class Experiment:
    """One experiment of a paper at one scale, with its settings already merged; ``sweep``: the
    scan it is one value of, if any."""

    paper: str
    name: str
    description: str
    algos: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    scale: str
    device: str
    settings: dict[str, Any]
    runtime_min: int
    mem_mb: int
    sweep: Sweep | None = None
    algo_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # the whole settings of such algos
    collect: dict[str, int] = field(default_factory=dict)  # an expert experiment's: env -> demonstrations it plays
    demos_from: str | None = None  # the expert experiment whose demonstrations the runs learn from
    # expert_from: the expert experiment and its algorithm whose exported policies the runs learn from
    expert_from: tuple[str, str] | None = None
    keep_best: bool = False  # an expert of another experiment (expert_from): its runs keep their best checkpoint
    expert_best: bool = False  # expert_choice best: every run learns from the expert experiment's best run
    # packs() by pack size, made once: the workflow's input functions ask for them per job
    _packs: dict[int, tuple[Pack, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def settings_of(self, algo: str) -> dict[str, Any]:
        """The merged settings of ``algo``'s runs (:attr:`settings` unless it has ``algo_settings``)."""
        return self.algo_settings.get(algo, self.settings)

    @property
    def target(self) -> str:
        """``paper/name``, as the runs' ``target`` tag writes it."""
        return f"{self.paper}/{self.name}"

    def runs(self) -> list[Run]:
        """Every (env, algo, seed) run of the experiment."""
        return [run for pack in self.packs(1) for run in pack.members]

    def packs(self, pack_size: int) -> list[Pack]:
        """The runs of every (env, algo) cell, the cell's seeds split by :func:`seed_packs`."""
        if pack_size not in self._packs:
            self._packs[pack_size] = tuple(
                Pack(tuple(Run(self.paper, self.name, env, algo, seed, self.scale, self.device, self.settings_of(algo),
                               self.demo_files(env)["demos"] if self.demos_from else None,
                               bool(self.collect) or self.keep_best, self.expert_from, self.expert_best)
                           for seed in seeds))
                for env in self.envs
                for algo in self.algos
                for seeds in seed_packs(self.seeds, pack_size)
            )
        return list(self._packs[pack_size])

    def demo_files(self, env: str) -> dict[str, str]:
        """:func:`demo_files` of ``env``'s expert: this experiment's own (``collect_demos``), or that of
        the experiment it learns from (``demos_from``)."""
        return demo_files(self.paper, self.demos_from or self.name, env)

    def expert_run(self, env: str) -> Run:
        """The expert run of ``env`` in an expert experiment (``collect_demos``: one seed per task)."""
        [run] = [run for run in self.runs() if run.env == env]
        return run


def demo_files(paper: str, experiment: str, env: str) -> dict[str, str]:
    """The files of expert experiment ``paper``/``experiment`` on ``env`` (:data:`DEMO_FILES`, in
    :data:`DEMOS_DIR`): its demonstrations and its score over them (its exported best policy is
    :attr:`Run.policy_file` of :meth:`Experiment.expert_run`)."""
    folder = DEMOS_DIR.format(paper=paper, experiment=experiment, env=env_slug(env))
    return {key: f"{folder}/{name}" for key, name in DEMO_FILES.items()}


def demo_cap(env: str, demos_config: Mapping[str, Any]) -> int:
    """The most demonstrations the paper collects on ``env``'s backend (``config/demos.yaml``)."""
    return demos_config["max_episodes"].get(env.split(":", 1)[0], demos_config["default_max_episodes"])


def seed_packs(seeds: Sequence[int], pack_size: int) -> list[tuple[int, ...]]:
    """Split ``seeds`` into ``ceil(len(seeds) / pack_size)`` packs of consecutive seeds, each of
    ``pack_size`` seeds but the last: 5 seeds at ``pack_size`` 4 make (0, 1, 2, 3) and (4,). More
    seeds later leave the full packs as they are, so Snakemake sees their runs unchanged."""
    return [tuple(seeds[start : start + pack_size]) for start in range(0, len(seeds), pack_size)]


def packed_seeds(experiments: Iterable[Experiment], pack_size: int) -> dict[tuple[int, ...], tuple[str, ...]]:
    """Every seed pack of two or more seeds that ``experiments`` train at ``pack_size``, with the
    experiments (:attr:`Experiment.target`) whose cells train it, in order of appearance."""
    found: dict[tuple[int, ...], list[str]] = {}
    for exp in experiments:
        for seeds in seed_packs(exp.seeds, pack_size):
            if len(seeds) > 1:
                found.setdefault(seeds, []).append(exp.target)
    return {seeds: tuple(targets) for seeds, targets in found.items()}


def env_slug(env: str) -> str:
    """File-system form of an environment name: ``smax:3m`` -> ``smax-3m``."""
    return env.replace(":", "-")


def format_set_arguments(settings: Mapping[str, Any]) -> str:
    """``settings`` as shell-quoted ``--set key=value`` arguments of ``marlrepro train``."""
    return " ".join(f"--set {shlex.quote(f'{key}={format_value(value)}')}" for key, value in settings.items())


def format_value(value: Any) -> str:
    """Render ``value`` for ``--set key=<value>`` so that ``marlrepro train`` reads it back unchanged.

    Plain strings stay bare where :func:`marlrepro.config.parse_override` returns them as they are
    (``smax:3m``); anything else is written as JSON, which is YAML: lists, numbers, booleans and
    quoted strings (``"true"``) round-trip.
    """
    if isinstance(value, str) and parse_override(f"value={value}")["value"] == value:
        return value
    return json.dumps(value)


def scale_from_dict(name: str, data: Mapping[str, Any]) -> Scale:
    """Build a :class:`Scale` from the (schema-validated) contents of ``config/scales/<name>.yaml``."""
    settings = _check_settings(f"config/scales/{name}.yaml: settings", data["settings"])
    return Scale(
        name=name,
        description=data["description"],
        device=data["device"],
        threads=data["threads"],
        retries=data["retries"],
        pack_size=data["pack_size"],
        runtime_min=data["resources"]["runtime"],
        mem_mb=data["resources"]["mem_mb"],
        settings=settings,
    )


def plan_paper(
    paper: str,
    data: Mapping[str, Any],
    scale: Scale,
    workflow_config: Mapping[str, Any],
    known_scales: Collection[str],
    algos: Mapping[str, Mapping[str, Any]],
    demos_config: Mapping[str, Any] | None = None,
) -> dict[str, Experiment]:
    """Merge ``scale`` over the (schema-validated) experiment grid ``data`` of ``config/<paper>.yaml``.

    ``workflow_config`` is the validated ``config/config.yaml``: its ``seeds`` (a count, when set)
    replaces every experiment's, its ``device`` (unless ``auto``) replaces the scale's, and its
    ``backend`` picks the simulator of the SMAC maps. ``known_scales`` are the scale names that
    exist; per-experiment overrides for any other name are rejected as typos. ``algos`` maps each
    algorithm to its settings (``config/algos/<algo>.yaml``, already checked).

    Every experiment is checked at every scale (names, subsets, settings keys and types), and each
    of its (env, algo) runs at ``scale`` as ``marlrepro train`` will load it, short of building the
    environment; the env is checked as written (``smax:3m``), before ``backend`` serves it.
    ``demos_config`` (``config/demos.yaml``, validated) caps an expert experiment's demonstrations
    (``collect_demos``); the experiments that learn from them (``demos_from``) are checked against
    it at ``scale`` (module docstring). So are the learners of an expert policy (``expert_from``).
    """
    experiments = {}
    # the experiments whose runs are experts of others (expert_from): they keep their best checkpoints
    experts = {spec["expert_from"] for spec in data["experiments"].values() if "expert_from" in spec}
    for name, spec in data["experiments"].items():
        where = f"config/{paper}.yaml: experiments.{name}"
        _check_names(where, spec, known_scales, algos)
        # every scale's settings are checked, not only this scale's: a typo fails at any scale
        overrides = {
            at: _check_settings(f"{where}.scales.{at}.settings", block.get("settings", {}))
            for at, block in spec["scales"].items()
        }
        scale_algos = {
            at: {algo: _check_settings(f"{where}.scales.{at}.algo_settings.{algo}", values)
                 for algo, values in block.get("algo_settings", {}).items()}
            for at, block in spec["scales"].items()
        }
        at_scale = spec["scales"].get(scale.name, {})
        if at_scale.get("skip", False):  # not planned at this scale (e.g. a paper's other tasks at smoke)
            for at, block in spec["scales"].items():
                if block.get("skip", False) and len(block) > 1:
                    raise ConfigError(f"{where}.scales.{at}: skip: true plans nothing; remove its other keys "
                                      f"({', '.join(key for key in block if key != 'skip')})")
            continue
        shared = _check_settings(f"{where}.settings", spec["settings"])
        later = {**scale.settings, **overrides.get(scale.name, {})}
        settings = {**shared, **later}
        published_algo = spec.get("algo_settings", {})
        scale_algo = scale_algos.get(scale.name, {})
        per_algo = {
            algo: {**shared, **_check_settings(f"{where}.algo_settings.{algo}", published_algo.get(algo, {})),
                   **later, **scale_algo.get(algo, {})}
            for algo in dict.fromkeys([*published_algo, *scale_algo])
        }
        envs, run_algos = (at_scale.get(key, spec[key]) for key in ("envs", "algos"))
        collect = _collect_episodes(where, spec, scale.name, envs, workflow_config["backend"], demos_config)
        # an expert experiment trains one expert per task: config.yaml's seeds does not multiply them
        seeds = at_scale.get("seeds", spec["seeds"]) if collect else workflow_config["seeds"] or at_scale.get(
            "seeds", spec["seeds"])
        resources = at_scale.get("resources", {})
        for sub_name, sweep in _sweep_points(where, name, spec, scale.name):
            swept = {} if sweep is None else sweep.settings()
            exp = Experiment(
                paper=paper,
                name=sub_name,
                description=spec["description"],
                algos=tuple(run_algos),
                envs=tuple(resolve_env(env, workflow_config["backend"]) for env in envs),
                seeds=tuple(range(seeds)),
                scale=scale.name,
                device=scale.device if workflow_config["device"] == "auto" else workflow_config["device"],
                settings={**settings, **swept},
                runtime_min=resources.get("runtime", scale.runtime_min),
                mem_mb=resources.get("mem_mb", scale.mem_mb),
                sweep=sweep,
                algo_settings={algo: {**merged, **swept} for algo, merged in per_algo.items() if algo in run_algos},
                collect=collect,
                demos_from=spec.get("demos_from"),
                expert_from=_expert_cell(where, spec, data["experiments"]),
                keep_best=name in experts,
                expert_best=_expert_choice(where, spec) == "best",
            )
            _check_runs(f"{where} at scale {scale.name}" + (f", {sweep.key}={sweep.value!r}" if sweep else ""),
                        envs, {algo: exp.settings_of(algo) for algo in exp.algos}, algos)
            experiments[sub_name] = exp
    for name, spec in data["experiments"].items():
        planned = [exp for exp in experiments.values() if exp.name == name or (exp.sweep and exp.sweep.name == name)]
        _check_demos(f"config/{paper}.yaml: experiments.{name}", spec, data["experiments"], planned, experiments, algos)
        _check_experts(f"config/{paper}.yaml: experiments.{name}", spec, planned, experiments, algos)
    return experiments


def _expert_cell(where: str, spec: Mapping[str, Any], specs: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(experiment, algo)`` of the expert that ``spec``'s runs learn from (``expert_from``), if any:
    an experiment of the same paper with one algorithm."""
    source = spec.get("expert_from")
    if source is None:
        return None
    if source not in specs:
        raise ConfigError(f"{where}.expert_from: no experiment {source!r}{did_you_mean(source, specs)}; "
                          f"experiments: {', '.join(specs)}")
    if "expert_from" in specs[source]:
        raise ConfigError(f"{where}.expert_from: {source} learns from an expert itself; name the experiment that "
                          f"trains the expert")
    if len(specs[source]["algos"]) != 1:
        raise ConfigError(f"{where}.expert_from: {source} trains {', '.join(specs[source]['algos'])}; an expert "
                          f"experiment trains one algorithm, so that each task and seed has one expert")
    return source, specs[source]["algos"][0]


def _expert_choice(where: str, spec: Mapping[str, Any]) -> str:
    """``spec``'s ``expert_choice`` (default ``seed``), which only a learner of an expert takes."""
    choice = spec.get("expert_choice", "seed")
    if choice not in EXPERT_CHOICES:
        raise ConfigError(f"{where}.expert_choice: {choice!r}; valid choices: {', '.join(EXPERT_CHOICES)}")
    if "expert_choice" in spec and "expert_from" not in spec:
        raise ConfigError(f"{where}.expert_choice: chooses among the runs of expert_from; set expert_from or remove it")
    return choice


def best_expert_index(finals: Sequence[Mapping[str, Any]]) -> int:
    """Which of an expert experiment's runs on a task (their ``final.json`` summaries) is the best:
    the highest win rate of its best evaluation (its exported checkpoint), then its return, the
    first (lowest seed) of equal ones, as ``train.best_evaluation`` ranks a run's evaluations (CESMA
    §6.1: "the one with the highest test win percentage")."""
    if not finals:
        raise ConfigError("expert_choice best: no expert run to choose from")
    for final in finals:
        if not isinstance(final.get("best"), Mapping):
            raise ConfigError(f"expert run of seed {final.get('seed')!r}: its final.json has no best evaluation "
                              f"(an expert keeps run.keep_best)")
    scores = [(final["best"]["test_won_mean"], final["best"]["test_return_mean"]) for final in finals]
    return max(range(len(finals)), key=lambda i: (scores[i], -i))


def _check_experts(where: str, spec: Mapping[str, Any], planned: Sequence[Experiment],
                   experiments: Mapping[str, Experiment], algos: Mapping[str, Mapping[str, Any]]) -> None:
    """A learner of an expert policy (:data:`EXPERT_ALGOS`) learns from an expert experiment
    (``expert_from``) and nothing else does; that experiment trains every env and seed of ``spec``'s
    ``planned`` experiments at their scale."""
    source = _source_of(where, spec, "expert_from", EXPERT_ALGOS, "an expert's policy",
                        "the experiment that trains the expert", algos)
    if source is None:
        return
    if planned and source not in experiments:
        raise ConfigError(f"{where}.expert_from: {source} is skipped at scale {planned[0].scale} (scales.<scale>.skip), "
                          f"so no expert is trained for these runs; skip this experiment there too")
    for exp in planned:
        expert = experiments[source]
        for env in exp.envs:
            if env not in expert.envs:
                raise ConfigError(f"{where}: {env} has no expert in {source} at scale {exp.scale} (its envs: "
                                  f"{', '.join(expert.envs)}); add it there or leave it out here")
        missing = [seed for seed in exp.seeds if seed not in expert.seeds and not exp.expert_best]
        if missing:
            raise ConfigError(f"{where}: seed {missing[0]} has no expert in {source} at scale {exp.scale}, which "
                              f"trains {len(expert.seeds)} seed(s); seed s learns from seed s of the expert, so "
                              f"train at least as many expert seeds")


def _collect_episodes(where: str, spec: Mapping[str, Any], scale: str, envs: Sequence[str], backend: str,
                      demos_config: Mapping[str, Any] | None) -> dict[str, int]:
    """An expert experiment's (``collect_demos``) demonstrations per env (as the runs name it) at
    ``scale``: its ``episodes`` (the scale's, else the experiment's), else the backend's cap of
    ``demos_config``; none for another experiment. Checked at every scale: one seed, within the cap."""
    if "collect_demos" not in spec:
        for at, block in spec["scales"].items():
            if "collect_demos" in block:
                raise ConfigError(f"{where}.scales.{at}.collect_demos: the experiment has no collect_demos; remove it")
        return {}
    if demos_config is None:
        raise ConfigError(f"{where}.collect_demos: no demonstration settings (config/demos.yaml) were given")
    for at, block in {None: spec, **spec["scales"]}.items():
        if block.get("seeds", 1) != 1:
            raise ConfigError(f"{where}{'' if at is None else f'.scales.{at}'}.seeds: an expert experiment "
                              f"(collect_demos) trains one expert per task; set seeds: 1")
        episodes = block.get("collect_demos", {}).get("episodes")
        for env in spec["envs"] if episodes is not None else ():
            if episodes > demo_cap(env, demos_config):
                raise ConfigError(f"{where}{'' if at is None else f'.scales.{at}'}.collect_demos.episodes: {episodes} "
                                  f"is more than the {demo_cap(env, demos_config)} demonstrations the paper collects "
                                  f"on {env} (config/demos.yaml max_episodes)")
    episodes = spec["scales"].get(scale, {}).get("collect_demos", {}).get("episodes",
                                                                          spec["collect_demos"].get("episodes"))
    return {resolve_env(env, backend): episodes or demo_cap(env, demos_config) for env in envs}


def _source_of(where: str, spec: Mapping[str, Any], key: str, family: Sequence[str], what: str, hint: str,
               algos: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The experiment that ``spec``'s ``key`` (``demos_from``, ``expert_from``) names, if any: set
    exactly when ``spec`` trains the algorithms of ``family`` (which learn from ``what``), and then
    all of its algorithms are of ``family``; ``hint`` says what ``key`` should name."""
    source = spec.get(key)
    learners = [algo for algo in spec["algos"] if algos[algo].get("algo", algo) in family]
    if source is None:
        if learners:
            raise ConfigError(f"{where}: {', '.join(learners)} learn from {what}; set {key} to {hint}")
        return None
    others = [algo for algo in spec["algos"] if algo not in learners]
    if others:
        raise ConfigError(f"{where}.{key}: {', '.join(others)} do not learn from {what} ({', '.join(family)} do); "
                          f"move them to another experiment")
    return source


def _check_demos(where: str, spec: Mapping[str, Any], specs: Mapping[str, Any], planned: Sequence[Experiment],
                 experiments: Mapping[str, Experiment], algos: Mapping[str, Mapping[str, Any]]) -> None:
    """A learner of demonstrations (config.DEMONSTRATION_ALGOS) learns from an expert experiment
    (``demos_from``) and nothing else does; that experiment collects demonstrations on every env of
    ``spec``'s ``planned`` experiments, at least as many as each run's ``demos.count``."""
    source = _source_of(where, spec, "demos_from", DEMONSTRATION_ALGOS, "demonstrations",
                        "the experiment whose experts play them (one with collect_demos)", algos)
    if source is None:
        return
    experts = [name for name, other in specs.items() if "collect_demos" in other]
    if source not in experts:
        raise ConfigError(f"{where}.demos_from: {source!r} is not an experiment with collect_demos"
                          f"{did_you_mean(source, experts)}; such experiments: {', '.join(experts) or 'none'}")
    if planned and source not in experiments:
        raise ConfigError(f"{where}.demos_from: {source} is skipped at scale {planned[0].scale} (scales.<scale>.skip), "
                          f"so nothing plays these runs' demonstrations; skip this experiment there too")
    expert = experiments.get(source)
    for exp in planned:
        for env in exp.envs:
            if env not in expert.collect:
                raise ConfigError(f"{where}: {env} has no expert in {source} at scale {exp.scale} (its envs: "
                                  f"{', '.join(expert.envs)}); add it there or leave it out here")
            for algo in exp.algos:
                count = exp.settings_of(algo).get("demos.count",
                                                  flatten(algos[algo]).get("demos.count", DemosConfig.count))
                if count > expert.collect[env]:
                    raise ConfigError(f"{where}{'' if exp.sweep is None else f' ({exp.sweep.key}={exp.sweep.value})'}: "
                                      f"{algo} on {env} asks for demos.count={count} demonstrations; {source} "
                                      f"collects {expert.collect[env]} at scale {exp.scale}")


SWEEP_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")


def sweep_name(name: str, value: Any) -> str:
    """The experiment of ``value`` in the scan ``name``: ``fig6_temperature_lr-0.3``."""
    return f"{name}-{format_value(value)}"


def sweep_members(experiments: Mapping[str, Experiment], name: str) -> list[Experiment]:
    """The experiments of the scan ``name`` (:attr:`Experiment.sweep`), in the order of its values."""
    return [exp for exp in experiments.values() if exp.sweep is not None and exp.sweep.name == name]


def _sweep_points(where: str, name: str, spec: Mapping[str, Any], scale: str) -> list[tuple[str, Sweep | None]]:
    """``[(name, None)]`` for an experiment without ``sweep``; else each value's experiment name and
    :class:`Sweep` at ``scale`` (its ``sweep_values``, when given, must be among the values)."""
    if "sweep" not in spec:
        for at, block in spec["scales"].items():
            if "sweep_values" in block:
                raise ConfigError(f"{where}.scales.{at}.sweep_values: the experiment has no sweep; remove it")
        return [(name, None)]
    key, values, paired = spec["sweep"]["key"], spec["sweep"]["values"], spec["sweep"].get("paired", {})
    for other, others in paired.items():
        if other == key or len(others) != len(values):
            raise ConfigError(f"{where}.sweep.paired.{other}: expected another key than {key}, with one value per "
                              f"value of it ({len(values)}: {', '.join(map(format_value, values))}), got {others!r}")
    points = [{other: others[i] for other, others in paired.items()} for i in range(len(values))]
    for i, value in enumerate(values):
        _check_settings(f"{where}.sweep (value {i})", unflatten({key: value, **points[i]}))
        if not SWEEP_VALUE.fullmatch(format_value(value)):
            raise ConfigError(f"{where}.sweep.values[{i}]: {value!r} cannot name a run directory; use numbers or "
                              f"words of letters, digits, '_', '.', '+' and '-'")
    for at, block in spec["scales"].items():
        for i, value in enumerate(block.get("sweep_values", [])):
            if value not in values:
                raise ConfigError(f"{where}.scales.{at}.sweep_values[{i}]: {value!r} is not one of the sweep's "
                                  f"values: {', '.join(map(format_value, values))}")
    chosen = spec["scales"].get(scale, {}).get("sweep_values", values)
    return [(sweep_name(name, value), Sweep(name, key, value, points[values.index(value)])) for value in chosen]


def _check_names(
    where: str, spec: Mapping[str, Any], known_scales: Collection[str], algos: Mapping[str, Any]
) -> None:
    """The experiment's algorithms, envs and scale names exist; each scale's subsets are its own."""
    for i, algo in enumerate(spec["algos"]):
        if algo not in algos:
            raise ConfigError(f"{unknown_choice(f'{where}.algos[{i}]', algo, algos, 'algorithm')} (config/algos/)")
    for i, env in enumerate(spec["envs"]):
        check_env_name(env, f"{where}.envs[{i}]")
    for algo in spec.get("algo_settings", {}):
        if algo not in spec["algos"]:
            raise ConfigError(f"{where}.algo_settings.{algo}: not one of the experiment's algos"
                              f"{did_you_mean(algo, spec['algos'])}; its algos: {', '.join(spec['algos'])}")
    for at, block in spec["scales"].items():
        if at not in known_scales:
            raise ConfigError(f"{unknown_choice(f'{where}.scales.{at}', at, known_scales, 'scale')} (config/scales/)")
        for algo in block.get("algo_settings", {}):
            if algo not in spec["algos"]:
                raise ConfigError(f"{where}.scales.{at}.algo_settings.{algo}: not one of the experiment's algos"
                                  f"{did_you_mean(algo, spec['algos'])}; its algos: {', '.join(spec['algos'])}")
        for key in ("envs", "algos"):
            for i, item in enumerate(block.get(key, [])):
                if item not in spec[key]:
                    raise ConfigError(
                        f"{where}.scales.{at}.{key}[{i}]: {item!r} is not one of the experiment's {key}"
                        f"{did_you_mean(item, spec[key])}; its {key}: {', '.join(spec[key])}"
                    )


def _check_runs(
    where: str, envs: list[str], run_settings: Mapping[str, Mapping[str, Any]], algos: Mapping[str, Any]
) -> None:
    """Check the train config of every (env, algo) run: algo file, then the algo's settings in
    ``run_settings``, then the env."""
    for algo, settings in run_settings.items():
        nested = unflatten(settings)
        for env in envs:
            with located(f"{where} ({algo} on {env})"):
                check_run_settings(algos[algo], nested, {"env": {"name": env}})


def resolve_env(env: str, backend: str) -> str:
    """Serve SMAC maps and SMACv2 scenarios (``smax:<map>``, ``smacv2:<scenario>``) from ``backend``:
    ``smax`` (the extended SMAX, JAX) or ``sc2`` (StarCraft II)."""
    if backend not in SMAC_BACKENDS:
        raise ConfigError(f"backend: unknown value {backend!r}; valid choices are: {', '.join(SMAC_BACKENDS)}")
    family, _, scenario = env.partition(":")
    return f"sc2:{scenario}" if backend == "sc2" and family in STARCRAFT_FAMILIES else env


def _check_settings(where: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten nested settings to dotted keys, after checking their keys and types, and rejecting
    the keys the workflow sets itself."""
    check_settings(f"{where}.", settings)
    flat = flatten(settings)
    for key in flat:
        if key in WORKFLOW_KEYS or key.startswith(WORKFLOW_PREFIXES):
            raise ConfigError(
                f"{where}: {key!r} is decided by the workflow (algo: config/algos/<algo>.yaml, "
                f"env.name: envs, run.seed: seeds, run.device: config.yaml or the scale, tracking.*: "
                f"the workflow and config.yaml tracking_uri, demos.path: demos_from, run.keep_best: "
                f"collect_demos or expert_from, dagger.expert: expert_from); remove it here"
            )
    return flat
