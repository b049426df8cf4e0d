"""Batched episode collection (pymarl's parallel runner, on a batched environment).

Two ways to collect the same episodes: ``stepwise`` drives any backend from a Python loop, one
environment step per iteration; ``fused`` (JAX backends) runs the whole batch of episodes in one
compiled call (:mod:`marlrepro.envs.jax_rollout`, which has JAX twins of both agent networks).
``auto`` picks fused wherever the backend offers it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marlrepro.buffer import Episodes
from marlrepro.controller import AgentController
from marlrepro.envs.base import BatchedEnv, EnvBatch
from marlrepro.errors import ConfigError
from marlrepro.exploration import epsilon_greedy

# How often the rollout loop asks the device whether every episode has ended. Each check is one
# host synchronisation; checking every step would stall the launch queue, never checking would
# step finished environments up to the episode limit.
DONE_CHECK_EVERY = 16


@dataclass
class RolloutStats:
    """Per-episode results of one rollout, as device tensors ([B] each)."""

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
    """Runs one episode in each of the ``B`` environments in lock-step.

    Every environment is reset at the start; a finished environment keeps stepping (its
    auto-reset episode is masked out) until all have finished or the episode limit is reached.
    """

    def __init__(self, env: BatchedEnv, controller: AgentController, mode: str = "auto") -> None:
        self.env = env
        self.controller = controller
        make_fused = getattr(env, "fused_rollout", None)
        if mode == "fused" and make_fused is None:
            raise ConfigError(f"run.rollout: 'fused' needs a JAX backend (smax); {env.spec.name} has none; "
                              "valid choices here: auto, stepwise")
        fused = make_fused is not None and mode != "stepwise"
        self._fused = make_fused(controller) if fused else None
        self.storage = Episodes.empty(env.num_envs, env.spec, env.device) if self._fused is None else None

    def run(self, epsilon: float) -> tuple[Episodes, RolloutStats]:
        """Collect one batch of episodes with epsilon-greedy actions (``epsilon=0``: greedy)."""
        if self._fused is not None:
            episodes, returns, won, lengths = self._fused(epsilon)
            return episodes, RolloutStats(returns, won, lengths)
        return self._run_stepwise(epsilon)

    @torch.no_grad()
    def _run_stepwise(self, epsilon: float) -> tuple[Episodes, RolloutStats]:
        """The Python loop: one batched environment step per iteration."""
        env, ep = self.env, self.storage
        b, n, limit = env.num_envs, env.spec.n_agents, env.spec.episode_limit
        device = env.device
        step = env.reset()
        hidden = self.controller.initial_hidden(b)
        last_actions = torch.full((b, n), -1, dtype=torch.int64, device=device)
        active = torch.ones(b, dtype=torch.bool, device=device)
        returns = torch.zeros(b, device=device)
        won = torch.zeros(b, dtype=torch.bool, device=device)
        lengths = torch.zeros(b, device=device)
        steps = limit
        for t in range(limit):
            _store_observation(ep, t, step)
            q, hidden = self.controller.step(self.controller.observe(step), last_actions, hidden,
                                             step.avail_actions)
            actions = epsilon_greedy(q, step.avail_actions, epsilon)
            step = env.step(actions)
            live = active.float()
            done = step.terminated | step.truncated
            ep.actions[:, t] = actions
            ep.reward[:, t] = step.reward * live
            ep.terminated[:, t] = (done & active).float()
            ep.filled[:, t] = live
            returns += step.reward * live
            won |= step.won & active
            lengths += live
            active &= ~done
            last_actions = actions
            if (t + 1) % DONE_CHECK_EVERY == 0 and not bool(active.any()):
                steps = t + 1
                break
        _store_observation(ep, steps, step)
        return ep.trim(steps), RolloutStats(returns, won, lengths)
