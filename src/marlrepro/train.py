"""``marlrepro train``: one value-decomposition training run, resumable, with file outputs.

Loop (pymarl's ``run_sequential``): collect one episode per parallel environment, store them,
take ``updates_per_rollout`` gradient steps once ``batch_size`` episodes are stored, evaluate
greedily every ``eval_interval`` environment steps. Outputs in the run directory, each written
atomically: ``config.yaml``, ``metrics.parquet``, ``final.json`` (written last: it marks a finished
run), then the run is logged to MLflow (:mod:`marlrepro.tracking`).

Preemption. A checkpoint is written at the first rollout boundary after every
``checkpoint_interval`` updates. On SIGTERM (what Slurm sends before it kills a job) or SIGINT one
is written at the next rollout boundary, and the run stops with :class:`Interrupted` (the command
line exits with status 128 + the signal number) so that Slurm or Snakemake restarts it; after a
SIGKILL the run resumes from the last periodic checkpoint. At a rollout boundary the whole state of
the run is: the networks and optimiser, the replay buffer, the counters and metric rows, the
training-episode sums since the last evaluation, the last loss, and the python, numpy, torch and
environment random states. A run that resumes from such a checkpoint continues exactly as an
uninterrupted one would (on CPU its metrics and final summary are equal, except the wall-clock
fields), unless the replay buffer was too large to save (:data:`BUFFER_CHECKPOINT_LIMIT_BYTES`) or
the backend cannot save its random state (sc2): then it refills the buffer or reseeds the
environments, and says so.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from marlrepro import tracking
from marlrepro.buffer import EpisodeBuffer
from marlrepro.checkpoint import load_checkpoint, save_checkpoint
from marlrepro.config import TrainConfig, flatten, to_dict
from marlrepro.controller import AgentController
from marlrepro.envs import make
from marlrepro.errors import ConfigError
from marlrepro.exploration import LinearEpsilon
from marlrepro.io_utils import atomic_write, write_json, write_yaml
from marlrepro.learners.igm_da import IGMDALearner, build_learner
from marlrepro.runner import EpisodeRunner, RolloutStats

if TYPE_CHECKING:
    from collections.abc import Sequence

    from marlrepro.pack_plan import PackMember

log = logging.getLogger(__name__)

# The replay buffer joins the checkpoint only while it is this small; past it (large SMAC maps)
# a resumed run refills the buffer, as pymarl does.
BUFFER_CHECKPOINT_LIMIT_BYTES = 512 * 2**20

# Keys that may differ between the first start and a resume of the same run.
RESUME_FREE_KEYS = ("run.progress", "run.device", "tracking.")


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
    """Counters and the metric history: everything besides networks that a resume needs."""

    t_env: int = 0
    episode: int = 0
    updates: int = 0
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


class RunningMeans:
    """Training-episode statistics accumulated on the device between evaluations."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(3, device=self.device)  # return, won, episodes

    def add(self, stats: RolloutStats) -> None:
        self.sums += torch.stack([stats.returns.sum(), stats.won.float().sum(),
                                  torch.tensor(float(stats.returns.numel()), device=self.device)])

    def means(self) -> tuple[float, float]:
        ret, won, count = self.sums.tolist()
        return (ret / count, won / count) if count else (math.nan, math.nan)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flatten(config).items() if not k.startswith(RESUME_FREE_KEYS)}


class Trainer:
    """Owns the environment, learner, buffer and counters of one run directory."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = resolve_device(config.run.device)
        seed_everything(config.run.seed)
        self.progress = Progress()
        self.checkpoint = load_checkpoint(self.run_dir)
        if self.checkpoint is not None:
            saved, now = _comparable(self.checkpoint["config"]), _comparable(to_dict(config))
            changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
            if changed:
                raise ConfigError(
                    f"{self.run_dir}: holds a checkpoint of a different config (changed: "
                    f"{', '.join(changed)}); use another --out or delete the directory"
                )
        # Environments resume from their saved random state; a backend that cannot save it is
        # reseeded instead, so that the resumed run does not replay the episodes it has seen.
        env_seed = config.run.seed
        if self.checkpoint is not None and self.checkpoint.get("env_rng") is None:
            env_seed += self.checkpoint["progress"]["episode"]
        self.env = make(config.env.name, config.env.num_envs, env_seed, self.device, **config.env.options)
        self.spec = self.env.spec
        self.learner = build_learner(self.spec, config, self.device)
        self.buffer = EpisodeBuffer(config.learner.buffer_size, self.spec, self.device,
                                    getattr(torch, config.learner.buffer_dtype))
        self.runner = EpisodeRunner(self.env, self.learner.acting_controller, config.run.rollout)
        self.eval_runner = self._runner_for(self.learner.eval_controller)  # IGM-DA: the learners
        # IGM-DA's experts are evaluated too: their win rate is the paper's target_mean (Fig. 3a)
        self.expert_runner = (self._runner_for(self.learner.controller)
                              if self.learner.eval_controller is not self.learner.controller else None)
        self.epsilon = LinearEpsilon.from_config(config.exploration)
        self.train_means = RunningMeans(self.device)
        self.last_loss: torch.Tensor | None = None  # of the latest update, read at evaluations
        if self.checkpoint is not None:
            self._restore(self.checkpoint)

    # ----------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        buffer_bytes = sum(t.element_size() * t.nelement() for t in self.buffer.storage.tensors().values())
        keep_buffer = buffer_bytes * self.buffer.size / self.buffer.capacity <= BUFFER_CHECKPOINT_LIMIT_BYTES
        return {
            "config": to_dict(self.config),
            "progress": vars(self.progress).copy(),
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict() if keep_buffer else None,
            "train_means": self.train_means.sums.clone(),
            "last_loss": self.last_loss,
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "env_rng": self.env.rng_state(),
        }

    def _save(self) -> None:
        save_checkpoint(self.run_dir, self._state())

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``. Checkpoints of earlier marlrepro versions lack the keys read
        with ``get``: such a run resumes, but not exactly."""
        self.progress = Progress(**state["progress"])
        self.learner.load_state_dict(state["learner"])
        if state["buffer"] is not None:
            self.buffer.load_state_dict(state["buffer"])
        if state.get("train_means") is not None:
            self.train_means.sums = state["train_means"].to(self.device)
        self.last_loss = state.get("last_loss")
        if state.get("python_rng") is not None:
            random.setstate(state["python_rng"])
            np.random.set_state(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state.get("env_rng") is not None:
            self.env.set_rng_state(state["env_rng"])
        log.info("resumed %s at t_env=%d, update %d", self.run_dir, self.progress.t_env, self.progress.updates)
        inexact = [reason for missing, reason in (
            (state["buffer"] is None, "the replay buffer was too large to save and is refilled"),
            (state.get("env_rng") is None, "the environments' random state was not saved; they are reseeded"),
        ) if missing]
        if inexact:
            log.warning("this resume will not match an uninterrupted run: %s", "; ".join(inexact))

    def _runner_for(self, controller: AgentController) -> EpisodeRunner:
        """The training runner when ``controller`` is the one acting, else a runner of its own."""
        if controller is self.learner.acting_controller:
            return self.runner
        return EpisodeRunner(self.env, controller, self.config.run.rollout)

    # ------------------------------------------------------------------------- phases
    def evaluate(self, runner: EpisodeRunner | None = None) -> tuple[float, float]:
        """Greedy evaluation over ``eval_episodes`` episodes: (mean return, win rate); by default of
        the decentralised agents."""
        runner = runner or self.eval_runner
        rounds = math.ceil(self.config.run.eval_episodes / self.env.num_envs)
        returns, won = [], []
        for _ in range(rounds):
            _, stats = runner.run(epsilon=0.0)
            returns.append(stats.returns)
            won.append(stats.won.float())
        n = self.config.run.eval_episodes
        return float(torch.cat(returns)[:n].mean()), float(torch.cat(won)[:n].mean())

    def _record_eval(self, bar: tqdm) -> None:
        p = self.progress
        test_return, test_won = self.evaluate()
        train_return, train_won = self.train_means.means()
        self.train_means.reset()
        loss = float(self.last_loss) if self.last_loss is not None else math.nan
        p.rows.append({
            "t_env": p.t_env, "episode": p.episode, "update": p.updates,
            "epsilon": self.epsilon(p.t_env), "loss": loss,
            "train_return_mean": train_return, "train_won_mean": train_won,
            "test_return_mean": test_return, "test_won_mean": test_won,
            "wall_time_s": p.wall_time_s,
        })
        if self.expert_runner is not None:
            p.rows[-1]["test_expert_won_mean"] = self.evaluate(self.expert_runner)[1]
        p.last_eval_t = p.t_env
        bar.set_postfix(ret=f"{test_return:.2f}", win=f"{test_won:.2f}", eps=f"{self.epsilon(p.t_env):.2f}")
        self._write_metrics()

    def _write_action_values(self) -> None:
        """IGM-DA: the learners' and experts' greedy action values on greedy evaluation episodes."""
        episodes, _ = self.eval_runner.run(epsilon=0.0)
        frame = pd.concat([pd.DataFrame({"agents": name, "value": values.cpu().numpy()})
                           for name, values in self.learner.greedy_action_values(episodes).items()])
        atomic_write(self.run_dir / "action_values.parquet", lambda tmp: frame.to_parquet(tmp, index=False))

    def _write_metrics(self) -> None:
        frame = pd.DataFrame(self.progress.rows)
        atomic_write(self.run_dir / "metrics.parquet", lambda tmp: frame.to_parquet(tmp, index=False))

    def _train_step(self) -> None:
        cfg, p = self.config, self.progress
        for _ in range(cfg.learner.updates_per_rollout):
            batch = self.buffer.sample(cfg.learner.batch_size)
            self.last_loss = self.learner.update(batch, p.episode).loss
            p.updates += 1

    def run(self) -> dict[str, Any]:
        """Train to ``t_max`` environment steps and write the run's outputs.

        Raises :class:`Interrupted` after checkpointing when SIGTERM or SIGINT arrives."""
        cfg, p = self.config, self.progress
        write_yaml(self.run_dir / "config.yaml", to_dict(cfg))
        bar = tqdm(total=cfg.run.t_max, initial=min(p.t_env, cfg.run.t_max), unit="step",
                   desc=f"{cfg.algo} {cfg.env.name} s{cfg.run.seed}", disable=not cfg.run.progress,
                   mininterval=2.0, dynamic_ncols=True)
        start = time.perf_counter() - p.wall_time_s
        with StopSignals() as stop:
            while p.t_env < cfg.run.t_max:
                if p.t_env - p.last_eval_t >= cfg.run.eval_interval:
                    self._record_eval(bar)
                episodes, stats = self.runner.run(self.epsilon(p.t_env))
                self.buffer.insert(episodes)
                self.train_means.add(stats)
                steps = int(stats.lengths.sum())  # one host sync per rollout
                p.t_env += steps
                p.episode += self.env.num_envs
                updates_before = p.updates
                if self.buffer.can_sample(cfg.learner.batch_size):
                    self._train_step()
                p.wall_time_s = time.perf_counter() - start
                bar.update(min(steps, cfg.run.t_max - bar.n))
                # a rollout boundary: the only place where the state of the run is complete
                if stop.received is not None:
                    self._save()
                    raise Interrupted(stop.received, self.run_dir, p.t_env)
                if p.updates // cfg.run.checkpoint_interval > updates_before // cfg.run.checkpoint_interval:
                    self._save()
        if p.last_eval_t != p.t_env:
            self._record_eval(bar)
        bar.close()
        self._save()
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        cfg, p = self.config, self.progress
        last = p.rows[-1]
        backend = cfg.env.name.split(":", 1)[0]
        final: dict[str, Any] = {
            "algo": method_name(cfg), "env": cfg.env.name, "seed": cfg.run.seed, "backend": backend,
            "t_env": p.t_env, "episodes": p.episode, "updates": p.updates,
            "test_return_mean": last["test_return_mean"], "test_won_mean": last["test_won_mean"],
            "wall_time_s": p.wall_time_s, "env_steps_per_s": p.t_env / max(p.wall_time_s, 1e-9),
            "device": str(self.device), "tags": dict(cfg.tracking.tags), "git_commit": tracking.git_commit(),
        }
        if backend == "matrix":
            from marlrepro.matrix_analysis import joint_q_table

            first = self.env.reset()
            final.update(joint_q_table(self.learner, first.obs[0], first.state[0], self.env.payoff))
        if isinstance(self.learner, IGMDALearner):
            self._write_action_values()
        write_json(self.run_dir / "final.json", final)
        self.env.close()
        tracking.log_run(cfg.tracking.uri, self.run_dir)
        return final


def method_name(config: TrainConfig) -> str:
    """The method a run trains, as the papers name it: ``qmix``, or ``qmix_da`` / ``qmix_bc`` for
    IGM-DA with DAgger / behaviour cloning around QMIX."""
    suffix = {"none": "", "dagger": "_da", "bc": "_bc"}[config.imitation.mode]
    return f"{config.algo}{suffix}"


def train(config: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) training in ``run_dir`` and return the final summary."""
    return Trainer(config, Path(run_dir)).run()


def train_pack(members: Sequence[PackMember]) -> list[dict[str, Any]]:
    """Train (or resume) the runs ``members`` of one pack in one process and return their final
    summaries, in member order; each member's run directory ends as :func:`train` leaves one.
    Placeholder: packed training lands with the training core."""
    raise NotImplementedError("packed training lands with the training core")
