"""``marlrepro train``: a pack of training runs in one process, resumable, with file outputs.

A pack is ``R ≥ 1`` runs of one cell (same env, algorithm and settings; they differ in seed, or
in the learning rate). Their learners' weights are stacked (:class:`~marlrepro.core.stacked.
StackedModules`): one vmapped call computes every run's loss, one optimiser step updates them,
one fused JAX call collects every run's episodes. A run alone is a pack of one: there is one
training loop, and a packed run equals the same run alone (``tests/test_pack.py``).

Loop of each run (pymarl's ``run_sequential``): collect one episode per parallel environment,
store them, take ``updates_per_rollout`` gradient steps once ``batch_size`` episodes are stored
(or, with ``updates_per_env_step`` ρ, ``floor(ρ × steps)`` in all over the steps collected since then),
evaluate greedily every ``eval_interval`` environment steps. A run depends on no other run of
its pack: it has its own environments and key stream, replay buffer, sampling generator,
counters, epsilon schedule, target-update cadence, evaluations and optimiser step count.
Outputs in each run directory, each written atomically: ``config.yaml``, ``metrics.parquet``,
``final.json`` (written last: it marks a finished run), then the run is logged to MLflow
(:mod:`marlrepro.tracking`; a failure there leaves the run's logging pending and never fails the
run). A run whose loss becomes NaN or infinite stops alone (it writes
``diverged.json``); the others go on, and the command then fails naming it. A run with
``run.keep_best`` also writes ``checkpoint/best.pt`` at each evaluation that beats every earlier
one (:func:`best_evaluation`), and final.json's ``best`` records that evaluation (MIFQ's experts).

Preemption. A checkpoint is written at the first rollout boundary after every
``checkpoint_interval`` updates. On SIGTERM (what Slurm sends before it kills a job) or SIGINT one
is written at the next rollout boundary, and the run stops with :class:`Interrupted` (the command
line exits with status 128 + the signal number) so that Slurm or Snakemake restarts it; after a
SIGKILL the run resumes from the last periodic checkpoint. At a rollout boundary the whole state of
the run is: the networks and optimiser, the replay buffer, the counters and metric rows, the
training-episode sums since the last evaluation, the last loss, its sampling generator, and the
python, numpy, torch and environment random states. Each run of a pack checkpoints into its own
directory. A run that resumes from such a checkpoint continues exactly as an
uninterrupted one would (on CPU its metrics and final summary are equal, except the wall-clock
fields), unless the replay buffer was too large to save (:data:`BUFFER_CHECKPOINT_LIMIT_BYTES`) or
the backend cannot save its random state (sc2): then it refills the buffer or reseeds the
environments, and says so. The final state is checkpointed before any final output is written, so a
run killed while finishing resumes at the end and rewrites every output from that checkpoint.
:func:`marlrepro.faults.maybe_crash` marks the phase boundaries that ``tests/test_faults.py`` kills.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from marlrepro import tracking
from marlrepro.buffer import EpisodeBuffer, Episodes
from marlrepro.checkpoint import load_checkpoint, save_best, save_checkpoint
from marlrepro.config import DEMONSTRATION_ALGOS, TrainConfig, flatten, to_dict
from marlrepro.core.graphed import GraphedStep
from marlrepro.core.optim import Phase, build_optimizer, clip_grad_norm_per_run
from marlrepro.core.stacked import StackedModules, child_name
from marlrepro.demos import Demonstrations, DemoSampler, load_demos
from marlrepro.envs import make
from marlrepro.envs.registry import validate_env
from marlrepro.errors import CheckpointError, ConfigError
from marlrepro.exploration import LinearEpsilon
from marlrepro.faults import maybe_crash
from marlrepro.io_utils import atomic_write, write_json, write_yaml
from marlrepro.learners.base import Learner, ParamGroup
from marlrepro.learners.build import build_learner
from marlrepro.memory import check_pack_fits
from marlrepro.pack_plan import PackMember
from marlrepro.runner import EpisodeRunner, RolloutStats

log = logging.getLogger(__name__)

# The replay buffer joins the checkpoint only while it is this small; past it (large SMAC maps)
# a resumed run refills the buffer, as pymarl does.
BUFFER_CHECKPOINT_LIMIT_BYTES = 512 * 2**20

# A run's own generator (replay sampling, stepwise exploration) is seeded apart from the global
# generator that initialises its weights, so that the two streams do not repeat each other.
GENERATOR_SEED_OFFSET = 0x5EED_0000

# The names under which each run's environment step and update phase join its batch
# (Learner.forward's t_env and phase).
T_ENV = "t_env"
PHASE = "phase"
# The prefix under which a run's demonstration batch joins its batch (Learner.forward's demos).
DEMO_PREFIX = "demo."

# Keys that may differ between the first start and a resume of the same run.
RESUME_FREE_KEYS = ("run.progress", "run.device", "run.cuda_graph", "run.length_buckets", "run.matmul_precision",
                    "run.checkpoint_interval", "tracking.")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device: 'cuda' requested but no CUDA GPU is visible; use 'cpu' or 'auto'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Progress:
    """Counters and the metric history: everything besides networks that a resume needs.

    ``credited_steps``: the environment steps that have earned updates under
    ``learner.updates_per_env_step`` ρ (those of the rollouts after which the run could train);
    ``ρ × credited_steps − updates`` is the run's credit, the fraction of an update it carries."""

    t_env: int = 0
    episode: int = 0
    updates: int = 0
    credited_steps: int = 0
    last_eval_t: int = -(10**18)
    wall_time_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


class Interrupted(Exception):
    """Training stopped on a signal, after writing a checkpoint at a rollout boundary."""

    def __init__(self, signum: int, run_dir: Path, t_env: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at t_env={t_env}; checkpoint written "
                         f"to {run_dir / 'checkpoint'}; run the same command again to resume")


class StopSignals:
    """While active, SIGTERM and SIGINT only record a request to stop (the training loop checks it
    at each rollout boundary). The handler then steps aside, so a second signal of the same kind
    acts as it did before (SIGTERM kills, Ctrl-C raises KeyboardInterrupt). Signal handlers can only
    be installed from the main thread; elsewhere the signals keep their usual effect."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        signal.signal(signum, self._previous[signum])
        log.warning("%s received: checkpointing at the end of this rollout, then exiting",
                    signal.Signals(signum).name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Diverged(Exception):
    """Some runs of a pack stopped on a non-finite loss; the others finished."""


# Keys in which the runs of one pack may differ: the seed, the learning rates, ME-IGM's target
# entropy and the number of demonstrations (a pack may sweep them: per-run tensors, or each run's
# prefix of the one demo file), and what only names or places a run.
PACK_FREE_KEYS = ("run.seed", "learner.lr", "max_entropy.temperature_lr", "max_entropy.target_entropy_per_agent",
                  "demos.count", "tracking.run_name", "tracking.tags.", "run.progress")


def _comparable(config: dict[str, Any], free: tuple[str, ...] = RESUME_FREE_KEYS) -> dict[str, Any]:
    return {k: v for k, v in flatten(config).items() if not k.startswith(free)}


def check_pack(members: list[PackMember]) -> None:
    """Raise :class:`ConfigError` unless the runs can share one process: distinct directories,
    and configs equal except in :data:`PACK_FREE_KEYS`."""
    dirs = [Path(m.run_dir).resolve() for m in members]
    if len(set(dirs)) != len(dirs):
        raise ConfigError(f"pack: two runs share a run directory: {sorted(map(str, dirs))}")
    first = _comparable(to_dict(members[0].config), PACK_FREE_KEYS)
    for member in members[1:]:
        other = _comparable(to_dict(member.config), PACK_FREE_KEYS)
        changed = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if changed:
            raise ConfigError(f"pack: {member.run_dir} differs from {members[0].run_dir} in {', '.join(changed)}; "
                              f"runs of one pack may differ only in {', '.join(PACK_FREE_KEYS)}")


@dataclass
class RunState:
    """What the pack trainer keeps per run besides its slice of the stacked tensors."""

    config: TrainConfig
    run_dir: Path
    generator: torch.Generator  # replay sampling and stepwise exploration
    epsilon: LinearEpsilon
    progress: Progress = field(default_factory=Progress)
    last_target_update_episode: int = 0
    final: dict[str, Any] | None = None  # the summary in final.json, once written
    diverged: bool = False

    @property
    def done(self) -> bool:
        return self.final is not None


class Trainer:
    """Trains the runs of one pack (:class:`PackMember` s; one member: a run alone)."""

    def __init__(self, members: list[PackMember]) -> None:
        check_pack(members)
        first = members[0].config
        self.config = first
        self.device = resolve_device(first.run.device)
        demos = self._load_demos([m.config for m in members])  # checked before anything is built
        self.runs = [RunState(m.config, Path(m.run_dir), torch.Generator(self.device),
                              LinearEpsilon.from_config(m.config.exploration)) for m in members]
        checkpoints = [self._load_checkpoint(run) for run in self.runs]
        self.envs = []
        for run, checkpoint in zip(self.runs, checkpoints):
            seed, cfg = run.config.run.seed, run.config
            run.generator.manual_seed(seed + GENERATOR_SEED_OFFSET)
            # Environments resume from their saved random state; a backend that cannot save it is
            # reseeded instead, so that the resumed run does not replay the episodes it has seen.
            env_seed = seed + (checkpoint["progress"]["episode"]
                               if checkpoint is not None and checkpoint.get("env_rng") is None else 0)
            self.envs.append(make(cfg.env.name, cfg.env.num_envs, env_seed, self.device, **cfg.env.options))
        check_pack_fits(self.envs[0].spec, [run.config for run in self.runs], self.device)
        self.demos = None if demos is None else DemoSampler(
            demos, [run.config.demos.count for run in self.runs], first.demos.batch_size, self.device,
            getattr(torch, first.learner.buffer_dtype))
        learners: list[Learner] = []
        for run in self.runs:
            seed_everything(run.config.run.seed)  # each run's initial weights are those of the run alone
            learners.append(build_learner(self.envs[0].spec, run.config, self.device))
        self.spec = self.envs[0].spec
        self.learners = StackedModules(learners)
        template = self.learners.template
        # the episodes of each update's replay batch (Learner.batch_draws: DAgger's per-agent datasets)
        self._batch_episodes = self.config.learner.batch_size * template.batch_draws
        if len({learner.batch_draws for learner in learners}) > 1:
            raise ConfigError("a pack's runs draw replay batches of different sizes (dagger.dataset differs); "
                              "pack runs of one dataset setting")
        if self.config.learner.buffer_size < self._batch_episodes:
            raise ConfigError(f"learner.buffer_size ({self.config.learner.buffer_size}) must hold an update's "
                              f"{template.batch_draws} x learner.batch_size = {self._batch_episodes} episodes "
                              f"(dagger.dataset=per_agent: a batch per agent)")
        if template.demonstrations != (self.demos is not None):  # DEMONSTRATION_ALGOS disagrees with the learner
            raise TypeError(f"{type(template).__name__}.demonstrations is {template.demonstrations}; algo "
                            f"{first.algo!r} is {'' if self.demos else 'not '}in config.DEMONSTRATION_ALGOS")
        lr = torch.tensor([run.config.learner.lr for run in self.runs], device=self.device)
        trainable = {name: p for name, p in self.learners.params.items() if p.requires_grad}
        # each run's parameter groups (their learning rates may differ between the runs of a pack)
        groups = {name: [next((g for g in learner.param_groups() if name.startswith(g.prefix)), None)
                         for learner in learners] for name in trainable}
        self.optimizer = build_optimizer(
            list(trainable.values()), first.learner,
            [lr if per_run[0] is None else torch.tensor([g.lr for g in per_run], device=self.device)
             for per_run in groups.values()],
            [None if per_run[0] is None or per_run[0].phase is None else Phase(per_run[0].phase, per_run[0].per_agent)
             for per_run in groups.values()])
        self._clip_sets = _clip_sets(trainable, {name: per_run[0] for name, per_run in groups.items()})
        # the vmapped loss of each update stage (Learner.update_stages; None: without stages)
        self._stage_losses = {stage: self.learners.vmapped(functools.partial(_loss_terms, stage=stage))
                              for stage in (*template.update_stages, None)}
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision(first.run.matmul_precision)
        graphed = self.device.type == "cuda" and first.run.cuda_graph
        self._step = GraphedStep(self._gradient_step) if graphed else self._gradient_step
        lengths = length_buckets(self.spec.episode_limit, first.run.length_buckets)
        # the sampled batch's padded length: its longest episode's bucket (none: the episode limit)
        self._cut = functools.partial(padded_length, lengths=lengths) if len(lengths) > 1 else None
        self.buffer = EpisodeBuffer(len(self.runs), first.learner.buffer_size, self.spec, self.device,
                                    getattr(torch, first.learner.buffer_dtype), first.learner.buffer_on_host)
        acting = child_name(template, template.acting_controller)
        self.eval_policies = {prefix: child_name(template, c) for prefix, c in template.eval_controllers().items()}
        self.runner = EpisodeRunner(self.envs, self.learners, acting, first.run.rollout)
        # evaluation: the training runner's batches, or one fused rollout of eval_episodes per run
        # (a stepwise rollout evaluates num_envs at a time either way: no second runner for it)
        width = first.run.eval_episodes if first.run.eval_at_once and self.runner.fused else None
        self.eval_runners = {name: self.runner if name == acting and width is None else
                             EpisodeRunner(self.envs, self.learners, name, first.run.rollout, width)
                             for name in set(self.eval_policies.values())}
        self.train_sums = torch.zeros(len(self.runs), 3, device=self.device)  # return, won, episodes
        self.last_loss = torch.full((len(self.runs),), math.nan, device=self.device)
        # per run: the sums of the loss's update_scalars since the last evaluation, then their count
        self.update_sums = torch.zeros(len(self.runs), len(template.update_scalars) + 1, device=self.device)
        for r, checkpoint in enumerate(checkpoints):
            if checkpoint is not None:
                self._restore(r, checkpoint, restore_global=r == 0)

    @classmethod
    def solo(cls, config: TrainConfig, run_dir: str | Path) -> Trainer:
        """A pack of one run."""
        return cls([PackMember(config, Path(run_dir))])

    # ----------------------------------------------------------------------------- state
    def _load_demos(self, configs: list[TrainConfig]) -> Demonstrations | None:
        """The pack's demonstrations (none unless ``demos.path`` is set: a learner of
        ``config.DEMONSTRATION_ALGOS``, which must set it), read once, up to the largest
        ``demos.count`` of its runs, and checked against the task (:func:`marlrepro.demos.load_demos`);
        on the CPU."""
        first = configs[0]
        if not first.demos.path:
            if first.algo in DEMONSTRATION_ALGOS:
                raise ConfigError(f"demos.path: algo {first.algo!r} learns from demonstrations; set it to a file "
                                  f"written by `marlrepro collect-demos` for env {first.env.name!r}")
            return None
        spec, _ = validate_env(first.env.name, first.env.options)
        counts = [config.demos.count for config in configs]
        demos = load_demos(first.demos.path, spec, max(counts))
        log.info("%s: %d demonstrations of %s by %s (expert return %.3f, win rate %.3f over them)",
                 first.demos.path, max(counts), demos.manifest.env, demos.manifest.expert.get("method", "an expert"),
                 float(demos.returns.mean()), float(demos.won.float().mean()))
        return demos

    def _load_checkpoint(self, run: RunState) -> dict[str, Any] | None:
        checkpoint = load_checkpoint(run.run_dir)
        if checkpoint is not None:
            saved, now = _comparable(checkpoint["config"]), _comparable(to_dict(run.config))
            changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
            if changed:
                raise ConfigError(
                    f"{run.run_dir}: holds a checkpoint of a different config (changed: "
                    f"{', '.join(changed)}); use another --out or delete the directory"
                )
        return checkpoint

    def _state(self, r: int) -> dict[str, Any]:
        run = self.runs[r]
        stored = self.buffer.episode_bytes() * self.buffer.size[r]
        return {
            "config": to_dict(run.config),
            "progress": vars(run.progress).copy(),
            "learner": self.learners.run_state(r),
            "optimizer": self.optimizer.run_state(r),
            "last_target_update_episode": run.last_target_update_episode,
            "buffer": self.buffer.run_state(r) if stored <= BUFFER_CHECKPOINT_LIMIT_BYTES else None,
            "train_means": self.train_sums[r].clone(),
            "last_loss": self.last_loss[r].clone(),
            "update_sums": self.update_sums[r].clone(),
            "generator": run.generator.get_state(),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "env_rng": self.envs[r].rng_state(),
        }

    def _save(self, r: int) -> None:
        save_checkpoint(self.runs[r].run_dir, self._state(r))

    def _save_best(self, r: int) -> None:
        """checkpoint/best.pt of run ``r`` (``run.keep_best``): its learner at the evaluation just
        recorded, the new best."""
        run = self.runs[r]
        p = run.progress
        save_best(run.run_dir, {"config": to_dict(run.config),
                                "progress": {"t_env": p.t_env, "episode": p.episode, "updates": p.updates},
                                "learner": self.learners.run_state(r), "evaluation": evaluation(p.rows[-1])})

    def _restore(self, r: int, state: dict[str, Any], restore_global: bool) -> None:
        """Continue run ``r`` from ``state``; the process-wide random states come from the first
        run's checkpoint."""
        run = self.runs[r]
        names = self.learners.template.update_scalars
        if "update_sums" in state and state["update_sums"].numel() != len(names) + 1:
            raise CheckpointError(
                f"{run.run_dir / 'checkpoint'}: written by a version of {type(self.learners.template).__name__} "
                f"that logged {state['update_sums'].numel() - 1} metrics per update; this one logs {len(names)} "
                f"({', '.join(names)}): resume with that version, or delete the checkpoint to restart the run"
            )
        run.progress = Progress(**state["progress"])
        self.learners.load_run_state(r, state["learner"])
        self.optimizer.load_run_state(r, state["optimizer"])
        run.last_target_update_episode = state["last_target_update_episode"]
        if state["buffer"] is not None:
            self.buffer.load_run_state(r, state["buffer"])
        self.train_sums[r] = state["train_means"].to(self.device)
        self.last_loss[r] = state["last_loss"].to(self.device)
        if "update_sums" in state:  # absent from checkpoints written before update_scalars existed
            self.update_sums[r] = state["update_sums"].to(self.device)
        # a generator's state is device-specific: a checkpoint written on another device type
        # (run.device is resume-free) reseeds the run's generator instead
        moved = state["generator"].numel() != run.generator.get_state().numel()
        if moved:
            run.generator.manual_seed(run.config.run.seed + GENERATOR_SEED_OFFSET + run.progress.episode)
        else:
            run.generator.set_state(state["generator"])
        if restore_global:
            random.setstate(state["python_rng"])
            np.random.set_state(state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
            if state["cuda_rng"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state["env_rng"] is not None:
            self.envs[r].set_rng_state(state["env_rng"])
        log.info("resumed %s at t_env=%d, update %d", run.run_dir, run.progress.t_env, run.progress.updates)
        inexact = [reason for missing, reason in (
            (state["buffer"] is None, "the replay buffer was too large to save and is refilled"),
            (state["env_rng"] is None, "the environments' random state was not saved; they are reseeded"),
            (moved, "the checkpoint was written on another device type; the run's generator is reseeded"),
        ) if missing]
        if inexact:
            log.warning("%s: this resume will not match an uninterrupted run: %s", run.run_dir, "; ".join(inexact))

    # ------------------------------------------------------------------------- phases
    def evaluate(self, runs: list[int], controller: str) -> dict[int, tuple[float, float]]:
        """Greedy evaluation of ``controller`` over ``eval_episodes`` episodes for each of ``runs``:
        run -> (mean return, win rate)."""
        active = [r in runs for r in range(len(self.runs))]
        means = self.eval_runners[controller].evaluate(self.config.run.eval_episodes, active,
                                                       [run.generator for run in self.runs]).tolist()
        return {r: tuple(means[r]) for r in runs}

    def _record_evals(self, runs: list[int], bar: tqdm) -> None:
        results = {prefix: self.evaluate(runs, controller) for prefix, controller in self.eval_policies.items()}
        sums = self.train_sums[runs].tolist()
        losses = self.last_loss[runs].tolist()
        update_names = self.learners.template.update_scalars
        update_sums = self.update_sums[runs].tolist()
        with torch.no_grad():
            scalars = {name: values.tolist() for name, values in
                       self.learners.template.logged_scalars(self.learners.params, self._t_env()).items()}
        for i, r in enumerate(runs):
            p, epsilon = self.runs[r].progress, self.runs[r].epsilon(self.runs[r].progress.t_env)
            ret, won, count = sums[i]
            test_return, test_won = results["test"][r]
            p.rows.append({
                "t_env": p.t_env, "episode": p.episode, "update": p.updates, "epsilon": epsilon,
                "loss": losses[i] if p.updates else math.nan,
                "train_return_mean": ret / count if count else math.nan,
                "train_won_mean": won / count if count else math.nan,
                "test_return_mean": test_return, "test_won_mean": test_won,
                "wall_time_s": p.wall_time_s,
            })
            for prefix, values in results.items():
                if prefix != "test":
                    p.rows[-1][f"{prefix}_won_mean"] = values[r][1]
            for name, values in scalars.items():
                p.rows[-1][name] = values[r]
            *measured, count = update_sums[i]
            for name, total in zip(update_names, measured, strict=True):
                p.rows[-1][name] = total / count if count else math.nan
            p.last_eval_t = p.t_env
            self._write_metrics(r)
            if self.runs[r].config.run.keep_best and best_evaluation(p.rows) is p.rows[-1]:
                self._save_best(r)
        self.train_sums[runs] = 0.0
        self.update_sums[runs] = 0.0
        if len(self.runs) == 1:
            bar.set_postfix(ret=f"{test_return:.2f}", win=f"{test_won:.2f}", eps=f"{epsilon:.2f}")

    def _write_metrics(self, r: int) -> None:
        frame = pd.DataFrame(self.runs[r].progress.rows)
        atomic_write(self.runs[r].run_dir / "metrics.parquet", lambda tmp: frame.to_parquet(tmp, index=False))

    def _t_env(self) -> torch.Tensor:
        """Each run's environment steps [R] on the device, for the learners' schedules and logs."""
        return torch.tensor([run.progress.t_env for run in self.runs], dtype=torch.float32, device=self.device)

    def sample_inputs(self, runs: list[bool]) -> dict[str, torch.Tensor]:
        """The inputs of one update of the runs where ``runs`` holds (:meth:`loss_inputs`): each
        run's replay batch and, for a learner of demonstrations, its demo batch, drawn by its
        generator (the demo episodes first). Both are padded to the same length: the episode limit,
        or with ``run.length_buckets`` the bucket of the longest episode of either, over all runs."""
        generators = [run.generator for run in self.runs]
        if self.demos is None:
            return self.loss_inputs(self.buffer.sample(self._batch_episodes, generators, runs, self._cut))
        index = self.demos.draw(generators, runs)
        cut = None if self._cut is None else functools.partial(_longer_cut, cut=self._cut,
                                                               longest=self.demos.longest(index))
        batch = self.buffer.sample(self._batch_episodes, generators, runs, cut)
        return self.loss_inputs(batch, self.demos.gather(index, batch.filled.shape[-1]))

    def loss_inputs(self, batch: Episodes, demos: Episodes | None = None) -> dict[str, torch.Tensor]:
        """What the vmapped loss reads: the runs' sampled ``batch`` [R, B, ...], their demo batches
        ``demos`` [R, B_d, ...] (for a learner of demonstrations) under :data:`DEMO_PREFIX`, and each
        run's environment steps [R] (:meth:`Learner.forward`'s ``t_env``)."""
        demo = {} if demos is None else {DEMO_PREFIX + name: value for name, value in demos.tensors().items()}
        return {**batch.tensors(), **demo, T_ENV: self._t_env()}

    def _losses(self, batch: dict[str, torch.Tensor], stage: int | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every run's loss terms [R, 1 + K] on its batch [R, B, ...] (in update ``stage``), and
        the buffers the loss moved (:func:`_loss_terms`, vmapped over the pack)."""
        return self._stage_losses[stage](batch)

    def _gradient_step(self, batch: dict[str, torch.Tensor], mask: torch.Tensor, stage: int | None = None
                       ) -> torch.Tensor:
        """One gradient step of the runs where ``mask`` [R] holds, on their batches [R, B, ...]
        (in update ``stage``, for a learner with :attr:`Learner.update_stages`); returns every
        run's loss and its update scalars [R, 1 + K] (:func:`_loss_terms`), and writes the buffers
        the loss moved (:attr:`~marlrepro.learners.base.LossTerms.buffers`) for those runs. On
        CUDA it is replayed from a graph, one per stage and batch shapes (:class:`GraphedStep`)."""
        terms, buffers = self._losses(batch, stage)
        self.optimizer.zero_grad()
        terms[:, 0].sum().backward()
        for params in self._clip_sets:
            clip_grad_norm_per_run(params, self.config.learner.grad_clip)
        self.optimizer.step(mask, batch.get(PHASE))
        self.learners.write_buffers(buffers, mask)
        return terms.detach()

    def _updates_due(self, trainable: list[bool], steps: list[float]) -> list[int]:
        """How many updates each run takes after a rollout in which it collected ``steps[r]``
        environment steps: none unless it can train (``trainable``); else ``updates_per_rollout``,
        or with ``updates_per_env_step`` ρ the rollout's steps join its credited steps ``S`` and it
        takes ``floor(ρ × S) − updates``, so that it has taken ``floor(ρ × S)`` in all and carries
        the fraction (:class:`Progress`). Counters only: no host synchronisation."""
        cfg = self.config.learner
        if cfg.updates_per_env_step is None:
            return [cfg.updates_per_rollout if can else 0 for can in trainable]
        counts = []
        for run, can, n in zip(self.runs, trainable, steps, strict=True):
            p = run.progress
            if can:
                p.credited_steps += int(n)
            counts.append(math.floor(cfg.updates_per_env_step * p.credited_steps) - p.updates if can else 0)
        return counts

    def _train_step(self, runs: list[bool], counts: list[int] | None = None) -> None:
        """``counts[r]`` updates (default: ``updates_per_rollout``) for each run where ``runs``
        holds, each one gradient step per phase of the learner's update
        (:attr:`Learner.update_phases`) on one sampled batch; the k-th update steps the runs with
        ``counts[r] > k`` alone (the others are masked out: unchanged, their generators not drawn
        from). Then the target networks: Polyak-averaged after every update where the learner
        asks for it, else hard copies every ``target_update_interval`` episodes of each run."""
        cfg = self.config.learner
        counts = counts or [cfg.updates_per_rollout if run else 0 for run in runs]
        left = torch.tensor(counts, device=self.device)  # the updates' masks, without a host copy each
        mask = left > 0
        template = self.learners.template
        for copy, source in template.behaviour_pairs:  # the networks that collected this rollout
            self.learners.copy_runs(copy, source, mask)
        self.optimizer.lr_scale.copy_(template.lr_scale(self._t_env()))
        for k in range(max(counts)):
            stepping, step_mask = [count > k for count in counts], left > k
            inputs = self.sample_inputs(stepping)
            if template.update_phases == 1:
                terms = self._step(inputs, step_mask)
                loss, measured = terms[:, 0], terms[:, 1:]
            else:  # one gradient step per phase, in each run's own order
                orders = torch.stack([template.update_order(run.generator) if updated
                                      else torch.arange(template.update_phases, device=self.device)
                                      for run, updated in zip(self.runs, stepping)])
                stages = template.update_stages or (None,) * template.update_phases
                phase_terms = [self._step({**inputs, PHASE: order}, step_mask, stage)
                               for order, stage in zip(orders.T, stages, strict=True)]
                loss = torch.stack([terms[:, 0] for terms in phase_terms]).sum(dim=0)
                measured = phase_terms[0][:, 1:]
            self.last_loss = torch.where(step_mask, loss, self.last_loss)
            if measured.shape[1] > 0:
                measured = torch.cat([measured, torch.ones_like(measured[:, :1])], dim=1)
                self.update_sums += torch.where(step_mask.unsqueeze(1), measured, 0.0)
            due = []
            for r, (run, updated) in enumerate(zip(self.runs, stepping)):
                run.progress.updates += updated
                due.append(updated and run.progress.episode - run.last_target_update_episode
                           >= cfg.target_update_interval)
                if due[-1]:
                    run.last_target_update_episode = run.progress.episode
            if template.target_polyak is not None:
                for target, online in template.target_pairs:
                    self.learners.copy_runs(target, online, step_mask, template.target_polyak)
            elif any(due):
                due_mask = torch.tensor(due, device=self.device)
                for target, online in template.target_pairs:
                    self.learners.copy_runs(target, online, due_mask)

    def run(self) -> list[dict[str, Any]]:
        """Train every run to its ``t_max`` environment steps and write its outputs; returns the
        runs' final summaries.

        Raises :class:`Interrupted` after checkpointing every run when SIGTERM or SIGINT arrives,
        and :class:`Diverged` at the end if a run stopped on a non-finite loss."""
        cfg = self.config
        for run in self.runs:
            write_yaml(run.run_dir / "config.yaml", to_dict(run.config))
        seeds = ",".join(str(run.config.run.seed) for run in self.runs)
        total = sum(run.config.run.t_max for run in self.runs)
        bar = tqdm(total=total, initial=sum(min(r.progress.t_env, r.config.run.t_max) for r in self.runs),
                   unit="step", desc=f"{cfg.algo} {cfg.env.name} s{seeds}", disable=not cfg.run.progress,
                   mininterval=2.0, dynamic_ncols=True)
        start = time.perf_counter()
        started = [run.progress.wall_time_s for run in self.runs]
        with StopSignals() as stop:
            while True:
                for r, run in enumerate(self.runs):
                    if not run.done and not run.diverged and run.progress.t_env >= run.config.run.t_max:
                        self._complete(r, bar)
                active = [not (run.done or run.diverged) for run in self.runs]
                if not any(active):
                    break
                due = [r for r, run in enumerate(self.runs) if active[r]
                       and run.progress.t_env - run.progress.last_eval_t >= run.config.run.eval_interval]
                if due:
                    self._record_evals(due, bar)
                epsilons = [run.epsilon(run.progress.t_env) for run in self.runs]
                episodes, stats = self.runner.run(epsilons, active, [run.generator for run in self.runs])
                live = [r for r in range(len(self.runs)) if active[r]]
                self.buffer.insert(episodes, live)
                self._add_train_stats(stats, active)
                # one host synchronisation per rollout: every run's steps and loss health (a run that
                # has not updated yet still holds the initial NaN loss)
                steps, finite = torch.stack([stats.lengths.sum(dim=1), torch.isfinite(self.last_loss)]).tolist()
                updates_before = [run.progress.updates for run in self.runs]
                for r in live:
                    p = self.runs[r].progress
                    bar.update(min(int(steps[r]), self.runs[r].config.run.t_max - p.t_env))
                    p.t_env += int(steps[r])
                    p.episode += self.envs[r].num_envs
                can = self.buffer.can_sample(max(self._batch_episodes, cfg.learner.learning_starts))
                counts = self._updates_due([active[r] and can[r] for r in range(len(self.runs))], steps)
                if any(counts):
                    self._train_step([count > 0 for count in counts], counts)
                elapsed = time.perf_counter() - start
                for r in live:
                    run = self.runs[r]
                    run.progress.wall_time_s = started[r] + elapsed
                    if not finite[r] and updates_before[r] > 0:
                        self._stop_diverged(r)
                    # a rollout boundary: the only place where the state of a run is complete
                    elif stop.received is None and (run.progress.updates // cfg.run.checkpoint_interval
                                                    > updates_before[r] // cfg.run.checkpoint_interval):
                        self._save(r)
                        maybe_crash("mid_training")
                if stop.received is not None:
                    for r in live:
                        if not self.runs[r].diverged:
                            self._save(r)
                    raise Interrupted(stop.received, self.runs[live[0]].run_dir, self.runs[live[0]].progress.t_env)
        bar.close()
        for env in self.envs:
            env.close()
        diverged = [str(run.run_dir) for run in self.runs if run.diverged]
        if diverged:
            raise Diverged(f"non-finite loss, stopped: {', '.join(diverged)} (see diverged.json there); "
                           "the pack's other runs finished")
        return [run.final for run in self.runs]

    def _add_train_stats(self, stats: RolloutStats, active: list[bool]) -> None:
        mask = torch.tensor(active, device=self.device, dtype=torch.float32)
        episodes = torch.full_like(mask, float(self.envs[0].num_envs))
        self.train_sums += torch.stack([stats.returns.sum(dim=1), stats.won.float().sum(dim=1), episodes],
                                       dim=1) * mask[:, None]

    def _stop_diverged(self, r: int) -> None:
        run = self.runs[r]
        run.diverged = True
        p = run.progress
        log.error("%s: non-finite loss at t_env=%d (update %d); this run stops, its pack goes on",
                  run.run_dir, p.t_env, p.updates)
        write_json(run.run_dir / "diverged.json", {"t_env": p.t_env, "update": p.updates,
                                                    "loss": float(self.last_loss[r])})

    def _complete(self, r: int, bar: tqdm) -> None:
        """The end of run ``r``: its last evaluation, checkpoint and outputs (also when it resumes
        from a checkpoint that had reached ``t_max``: every output is rewritten from it)."""
        run = self.runs[r]
        if run.progress.last_eval_t != run.progress.t_env:
            self._record_evals([r], bar)
            self._save(r)  # the final state, before _finish draws random numbers: a rerun draws the same
        else:  # resumed from that final checkpoint (killed while finishing): metrics.parquet from its rows
            self._write_metrics(r)
        maybe_crash("after_last_checkpoint")
        self._finish(r)

    def _finish(self, r: int) -> None:
        run = self.runs[r]
        cfg, p = run.config, run.progress
        last = p.rows[-1]
        backend = cfg.env.name.split(":", 1)[0]
        final: dict[str, Any] = {
            "algo": method_name(cfg), "env": cfg.env.name, "seed": cfg.run.seed, "backend": backend,
            "t_env": p.t_env, "episodes": p.episode, "updates": p.updates,
            "test_return_mean": last["test_return_mean"], "test_won_mean": last["test_won_mean"],
            "wall_time_s": p.wall_time_s, "env_steps_per_s": p.t_env / max(p.wall_time_s, 1e-9),
            "device": str(self.device), "tags": dict(cfg.tracking.tags), "git_commit": tracking.git_commit(),
            "pack_size": len(self.runs),
        }
        if cfg.run.keep_best:  # the evaluation of checkpoint/best.pt
            final["best"] = evaluation(best_evaluation(p.rows))
        learner = self.learners.module_for(r)
        if backend == "matrix":
            from marlrepro.matrix_analysis import joint_q_table

            first = self.envs[r].reset()
            final.update(joint_q_table(learner, first.obs[0], first.state[0], self.envs[r].payoff, p.t_env))
        extras = type(learner).extra_outputs is not Learner.extra_outputs
        if extras:
            episodes, _ = self.eval_runners[self.eval_policies["test"]].run(
                [0.0] * len(self.runs), [i == r for i in range(len(self.runs))], [x.generator for x in self.runs],
                explore=False)
            for name, frame in learner.extra_outputs(_run_rows(episodes, r)).items():
                atomic_write(run.run_dir / name, lambda tmp, frame=frame: frame.to_parquet(tmp, index=False))
        write_json(run.run_dir / "final.json", final)
        maybe_crash("after_final")
        run.final = final
        tracking.log_run_or_defer(cfg.tracking.uri, run.run_dir)


def best_evaluation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of a run's evaluations (metric rows): the highest greedy win rate, then the highest
    return (MPE's tasks are never won); the earliest of equal ones."""
    return max(rows, key=lambda row: (row["test_won_mean"], row["test_return_mean"]))


def evaluation(row: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's step and scores, as ``final.json``'s ``best`` records them."""
    return {"t_env": int(row["t_env"]), "test_return_mean": float(row["test_return_mean"]),
            "test_won_mean": float(row["test_won_mean"])}


def length_buckets(episode_limit: int, buckets: int) -> list[int]:
    """The ``buckets`` lengths a sampled batch may be padded to: evenly spaced, the last one the
    episode limit (``ceil(k · limit / buckets)``, k = 1..buckets; duplicates merged)."""
    return sorted({-(-k * episode_limit // buckets) for k in range(1, buckets + 1)})


def padded_length(longest: int, lengths: list[int]) -> int:
    """The shortest of ``lengths`` that holds an episode of ``longest`` steps.

    Cutting a batch there changes no loss: the steps after an episode's end are masked, and the
    TD(λ) recursion is zero there for an episode that terminated; one that did not reached the
    episode limit, the last length (pymarl's ``max_t_filled`` cut, rounded up so that the
    update sees a few shapes only, each a CUDA graph)."""
    return next(length for length in lengths if length >= longest)


def _longer_cut(longest_replay: int, cut: Callable[[int], int], longest: int) -> int:
    """The padded length of a replay batch whose longest episode has ``longest_replay`` steps beside
    a demo batch whose longest has ``longest``: the bucket of the longer."""
    return cut(max(longest_replay, longest))


def _loss_terms(learner: Learner, inputs: dict[str, torch.Tensor], stage: int | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One run's loss on its batch at its environment step (and in its update phase and stage,
    for a learner of several; and its demo batch, the inputs under :data:`DEMO_PREFIX`, as the
    keyword ``demos``, for a learner of demonstrations), then the :attr:`Learner.update_scalars`
    it measured, detached: [1 + K]; and the new values of the buffers it moved
    (:attr:`~marlrepro.learners.base.LossTerms.buffers`, detached). The function the pack vmaps."""
    batch = Episodes(**{name: v for name, v in inputs.items() if name not in (T_ENV, PHASE)
                        and not name.startswith(DEMO_PREFIX)})
    demos = {name.removeprefix(DEMO_PREFIX): v for name, v in inputs.items() if name.startswith(DEMO_PREFIX)}
    phase = (inputs[PHASE],) if PHASE in inputs else ()
    terms = learner(batch, inputs[T_ENV], *phase, *(() if stage is None else (stage,)),
                    **({"demos": Episodes(**demos)} if demos else {}))
    if terms.logged.keys() != set(learner.update_scalars):
        raise TypeError(f"{type(learner).__name__}.forward logged {sorted(terms.logged)}; its update_scalars "
                        f"are {list(learner.update_scalars)}")
    scalars = torch.stack([terms.loss, *(terms.logged[name].detach() for name in learner.update_scalars)])
    return scalars, {name: value.detach() for name, value in terms.buffers.items()}


def _clip_sets(trainable: dict[str, torch.Tensor], groups: dict[str, ParamGroup | None]) -> list[list[torch.Tensor]]:
    """The sets of parameters whose gradient norms are clipped together: the ungrouped ones with
    the groups that ``clip``, then each ``clip_alone`` group on its own; unclipped groups in none."""
    sets: dict[str, list[torch.Tensor]] = {}
    for name, p in trainable.items():
        group = groups[name]
        if group is None or group.clip:
            sets.setdefault(group.prefix if group is not None and group.clip_alone else "", []).append(p)
    return list(sets.values())


def _run_rows(episodes: Episodes, r: int) -> Episodes:
    """Run ``r``'s episodes of a pack's batch [R, B, ...]."""
    return Episodes(**{name: value[r] for name, value in episodes.tensors().items()})


def method_name(config: TrainConfig) -> str:
    """The method a run trains, as the papers name it: ``qmix``; ``qmix_da`` / ``qmix_bc`` for
    IGM-DA with DAgger / behaviour cloning around QMIX; ``me_qmix`` for ME-IGM around QMIX, and
    its ablations ``qmix_entropy`` (+Entropy) and ``me_qmix_mlp`` (MLP); for the DDPG family
    ``maddpg`` (central critics), ``ddpg`` (independent: own critics) and ``ddpg_central`` (CESMA's
    expert: the joint actor); CESMA's DQN experts ``joint_dqn`` and ``one_at_a_time``
    (``joint_dqn.actions``), ``central_vdn`` (value decomposition on a joint-observation MLP) and
    ``central_vdn_rnn`` (on a joint-observation GRU, the SMAC expert);
    ``dagger`` with ``_rnn`` (``dagger.student``), ``_weighted`` (``dagger.move_weight``) and
    ``_per_agent`` (``dagger.dataset``);
    ``dagger_comm`` for DAgger with learned communication (Algorithm 2)."""
    if config.algo == "dagger" and config.dagger.communication == "learned":
        return "dagger_comm"
    if config.algo == "joint_dqn":
        return "one_at_a_time" if config.joint_dqn.actions == "one_at_a_time" else "joint_dqn"
    if config.algo == "dagger":
        return ("dagger" + ("_rnn" if config.dagger.student == "rnn" else "")
                + ("_weighted" if config.dagger.move_weight != 1.0 else "")
                + ("_per_agent" if config.dagger.dataset == "per_agent" else ""))
    if config.agent.network == "joint_mlp":
        return f"central_{config.algo}"
    if config.agent.network == "joint_rnn":
        return f"central_{config.algo}_rnn"
    if config.algo == "ddpg":
        return "ddpg_central" if config.ddpg.actor == "joint" else {"central": "maddpg", "own": "ddpg"}[config.ddpg.critic]
    suffix = {"none": "", "dagger": "_da", "bc": "_bc"}[config.imitation.mode]
    name = {"none": "{}", "opt": "me_{}", "entropy": "{}_entropy", "mlp": "me_{}_mlp"}[config.max_entropy.mode]
    return name.format(config.algo) + suffix


def train_pack(members: list[PackMember]) -> list[dict[str, Any]]:
    """Train (or resume) the runs of one pack; returns their final summaries."""
    return Trainer(members).run()


def train(config: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) one training run in ``run_dir`` and return its final summary."""
    return Trainer.solo(config, run_dir).run()[0]
