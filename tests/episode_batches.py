"""Stored episodes for the learners' and envs' tests: a small batch with the cases every loss must
mask, a trainer whose replay holds one collected rollout, and one greedy rollout collected by
each runner mode."""

from __future__ import annotations

from collections.abc import Callable

import torch

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.train import PackMember, Trainer


def masked_cases_batch(spec: EnvSpec, seed: int) -> Episodes:
    """Four random episodes of ``spec.episode_limit`` steps for two agents or more: episode 2
    terminates after step 2 (its later steps are padding), and agent 1 dies at step 3 of every
    episode (from then on its single available action is the no-op)."""
    g = torch.Generator().manual_seed(seed)
    b, t, n, a = 4, spec.episode_limit, spec.n_agents, spec.n_actions
    filled = torch.ones(b, t)
    filled[2, 3:] = 0
    terminated = torch.zeros(b, t)
    terminated[2, 2] = 1
    avail = torch.ones(b, t + 1, n, a, dtype=torch.bool)
    avail[:, 3:, 1] = False
    avail[:, 3:, 1, 0] = True
    return Episodes(obs=torch.randn(b, t + 1, n, spec.obs_dim, generator=g),
                    state=torch.randn(b, t + 1, spec.state_dim, generator=g), avail_actions=avail,
                    actions=torch.randint(0, a, (b, t, n), generator=g), reward=torch.randn(b, t, generator=g) * filled,
                    terminated=terminated, filled=filled)


def trainer_with_one_rollout(config: TrainConfig, run_dir) -> Trainer:
    """A trainer of one run whose replay holds one rollout its acting controller collected
    (ε = 0: the controller's own exploration), ready for :meth:`Trainer._train_step`."""
    trainer = Trainer([PackMember(config, run_dir)])
    episodes, _ = trainer.runner.run([0.0], [True], [trainer.runs[0].generator])
    trainer.buffer.insert(episodes, [0])
    return trainer


def greedy_rollouts_by_mode(env_for: Callable[[str], object]) -> dict[str, tuple[dict, object]]:
    """One greedy rollout of an untrained recurrent agent (torch seed 1, run generator seed 0) per
    runner mode, ``stepwise`` then ``fused``, on the env that ``env_for(mode)`` prepares: each
    mode's (episode tensors, rollout stats)."""
    from marlrepro.config import AgentConfig
    from marlrepro.controller import AgentController
    from marlrepro.core.stacked import StackedModules
    from marlrepro.runner import EpisodeRunner

    collected = {}
    for mode in ("stepwise", "fused"):
        env = env_for(mode)
        torch.manual_seed(1)
        holder = torch.nn.Module()
        holder.controller = AgentController(env.spec, AgentConfig())
        runner = EpisodeRunner([env], StackedModules([holder]), "controller", mode)
        assert (runner._fused is not None) == (mode == "fused")
        episodes, stats = runner.run([0.0], [True], [torch.Generator().manual_seed(0)])
        collected[mode] = (episodes.tensors(), stats)
    return collected


def greedy_rollouts_from_one_key(env, key: int = 21) -> tuple[tuple[dict, object], tuple[dict, object]]:
    """:func:`greedy_rollouts_by_mode` on one JAX env restarted from the same key for each mode:
    ((fused episodes, stats), (stepwise episodes, stats))."""
    import jax
    import numpy as np

    start = np.asarray(jax.random.key_data(jax.random.key(key)))

    def from_the_same_key(mode: str):
        env.set_rng_state(start)
        return env

    collected = greedy_rollouts_by_mode(from_the_same_key)
    return collected["fused"], collected["stepwise"]


def greedy_actions_by_mode(env, controller: torch.nn.Module, key: int = 5) -> tuple[dict[str, torch.Tensor], object]:
    """The actions [B, T, N] of one greedy rollout of ``controller`` per runner mode, ``stepwise``
    then ``fused``, each from JAX key ``key`` on ``env``; and the fused runner, for more rollouts."""
    import jax
    import numpy as np

    from marlrepro.core.stacked import StackedModules
    from marlrepro.runner import EpisodeRunner

    holder = torch.nn.Module()
    holder.controller = controller
    start = np.asarray(jax.random.key_data(jax.random.key(key)))
    actions = {}
    for mode in ("stepwise", "fused"):
        env.set_rng_state(start)
        runner = EpisodeRunner([env], StackedModules([holder]), "controller", mode)
        assert runner.fused == (mode == "fused")
        episodes, _ = runner.run([0.0], [True], [torch.Generator().manual_seed(0)])
        actions[mode] = episodes.actions[0]
    return actions, runner
