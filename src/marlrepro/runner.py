"""Batched episode collection (pymarl's parallel runner, on a batched environment).

Two ways to collect the same episodes: ``stepwise`` drives any backend from a Python loop, one
environment step per iteration; ``fused`` (JAX backends) runs the whole batch of episodes in one
compiled call (:mod:`marlrepro.envs.jax_rollout`, which has JAX twins of both agent networks).
``auto`` picks fused wherever the backend offers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from marlrepro import env_catalog
from marlrepro.buffer import Episodes
from marlrepro.controller import AgentController
from marlrepro.core.stacked import StackedModules
from marlrepro.envs.base import BatchedEnv, EnvBatch
from marlrepro.errors import ConfigError

# How often the rollout loop asks the device whether every episode has ended. Each check is one
# host synchronisation; checking every step would stall the launch queue, never checking would
# step finished environments up to the episode limit.
DONE_CHECK_EVERY = 16


@dataclass
class RolloutStats:
    """Per-episode results of one rollout, as device tensors ([R, B] each)."""

    returns: torch.Tensor
    won: torch.Tensor
    lengths: torch.Tensor


def _store_observation(episodes: Episodes, t: int, step: EnvBatch) -> None:
    """Write what the environments show at step ``t`` (obs, state, availability, full obs)."""
    episodes.obs[:, t] = step.obs
    episodes.state[:, t] = step.state
    episodes.avail_actions[:, t] = step.avail_actions
    if episodes.full_obs is not None:
        episodes.full_obs[:, t] = step.full_obs


class EpisodeRunner:
    """Runs one episode in each of the ``B`` environments of every run of a pack, in lock-step,
    with the agents of one controller of the pack's learners (``controller``: its attribute name).

    Every environment is reset at the start; a finished environment keeps stepping (masked out)
    until all have finished or the episode limit is reached. Fused: all runs in one compiled call
    over their stacked weights, ``fused_width`` environments per run if given (evaluation batches
    wider than the training ones; each run's random stream is its environments'). Stepwise: one
    run at a time through the environment's Python API, with that run's weights
    (:meth:`StackedModules.module_for`).
    """

    def __init__(self, envs: list[BatchedEnv], learners: StackedModules, controller: str,
                 mode: str = "auto", fused_width: int | None = None) -> None:
        self.envs = envs
        self.learners = learners
        self.controller = controller
        env = envs[0]
        template = getattr(learners.template, controller)
        fusable = hasattr(env, "fused_rollout") and getattr(env, "fusable", True)
        if mode == "fused" and not fusable:
            raise ConfigError(f"run.rollout: 'fused' needs a JAX backend ({', '.join(sorted(env_catalog.FUSED_BACKENDS))}; "
                              f"overcooked without the shaped reward); {env.spec.name} is not one here; valid choices "
                              f"here: auto, stepwise")
        self._fused = env.fused_rollout(template, envs, fused_width) if fusable and mode != "stepwise" else None
        # environments per run and rollout: fused_width (the fused rollout's own batches, of
        # the runs' environments and random streams) or each run's batch of environments
        self.width = self._fused.env.num_envs if self._fused is not None else env.num_envs
        self.storage = [Episodes.empty(env.num_envs, env.spec, env.device) for _ in envs] \
            if self._fused is None else None

    @property
    def fused(self) -> bool:
        """Whether the episodes come from the fused JAX rollout (else from the stepwise loop)."""
        return self._fused is not None

    def run(self, epsilons: list[float], active: list[bool], generators: list[torch.Generator],
            explore: bool = True) -> tuple[Episodes, RolloutStats]:
        """Collect one batch of episodes per run: episodes [R, B, t, ...] and per-episode stats
        [R, B]; rows of inactive runs are zero. While ``explore``, the controller's exploration
        picks the actions (ε-greedy with the runs' ``epsilons``, or its own sampling,
        :meth:`AgentController.choose_actions`); otherwise they are greedy (evaluation).
        ``generators`` are the runs' own (stepwise exploration draws from them)."""
        if self._fused is not None:
            epsilons = epsilons if explore else [0.0] * len(epsilons)
            episodes, returns, won, lengths = self._fused(
                self.learners.weights(f"{self.controller}."), epsilons, active, explore)
            return episodes, RolloutStats(returns, won, lengths)
        return self._run_stepwise(epsilons, active, generators, explore)

    def evaluate(self, episodes: int, active: list[bool], generators: list[torch.Generator]) -> torch.Tensor:
        """Greedy evaluation: each run's mean return and win rate [R, 2] over its first
        ``episodes`` greedy episodes, played :attr:`width` at a time (rows of inactive runs are 0)."""
        returns, won = [], []
        for _ in range(math.ceil(episodes / self.width)):
            _, stats = self.run([0.0] * len(self.envs), active, generators, explore=False)
            returns.append(stats.returns)
            won.append(stats.won.float())
        return torch.stack([torch.cat(returns, dim=1)[:, :episodes].mean(dim=1),
                            torch.cat(won, dim=1)[:, :episodes].mean(dim=1)], dim=1)

    def _run_stepwise(self, epsilons: list[float], active: list[bool], generators: list[torch.Generator],
                      explore: bool) -> tuple[Episodes, RolloutStats]:
        steps, won = [], []
        for r, env in enumerate(self.envs):
            if active[r]:
                controller = self.learners.module_for(r, self.controller)
                run_steps, run_won = _run_episodes(env, controller, self.storage[r], epsilons[r], generators[r],
                                                   explore)
            else:
                for transition in (self.storage[r].reward, self.storage[r].filled):
                    transition.zero_()
                run_steps, run_won = 0, torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
            steps.append(run_steps)
            won.append(run_won)
        t = max(steps)
        episodes = Episodes(**{name: torch.stack([getattr(s.trim(t), name) for s in self.storage])
                               for name in self.storage[0].tensors()})
        stats = RolloutStats(episodes.reward.sum(dim=2), torch.stack(won), episodes.filled.sum(dim=2))
        return episodes, stats


@torch.no_grad()
def _run_episodes(env: BatchedEnv, controller: AgentController, ep: Episodes, epsilon: float,
                  generator: torch.Generator, explore: bool) -> tuple[int, torch.Tensor]:
    """The Python loop: one batched environment step per iteration, written into ``ep``;
    returns the number of steps taken and which episodes were won [B]."""
    b, n, limit = env.num_envs, env.spec.n_agents, env.spec.episode_limit
    device = env.device
    for transition in (ep.actions, ep.reward, ep.terminated, ep.filled):
        transition.zero_()
    step = env.reset()
    hidden = controller.initial_hidden(b)
    last_actions = torch.full((b, n), -1, dtype=torch.int64, device=device)
    active = torch.ones(b, dtype=torch.bool, device=device)
    won = torch.zeros(b, dtype=torch.bool, device=device)
    steps = limit
    for t in range(limit):
        _store_observation(ep, t, step)
        q, hidden = controller.step(controller.observe(step), last_actions, hidden, step.avail_actions)
        actions = controller.choose_actions(q, step, epsilon, generator, explore)
        step = env.step(actions)
        live = active.float()
        done = step.terminated | step.truncated
        ep.actions[:, t] = actions
        ep.reward[:, t] = step.reward * live
        ep.terminated[:, t] = (step.terminated & active).float()  # a truncation bootstraps (pymarl)
        ep.filled[:, t] = live
        won |= step.won & active
        active &= ~done
        last_actions = actions
        if (t + 1) % DONE_CHECK_EVERY == 0 and not bool(active.any()):
            steps = t + 1
            break
    _store_observation(ep, steps, step)
    return steps, won
