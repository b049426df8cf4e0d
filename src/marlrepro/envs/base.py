"""The batched multi-agent environment interface shared by every backend.

Every backend steps ``num_envs`` copies of one task at once and returns torch tensors on one
device. Episodes auto-reset per environment: the step that ends an episode returns that episode's
reward and flags, and the observations of the *next* episode's first step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a task, known before the first reset."""

    name: str
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int
    full_obs_dim: int = 0  # width of the optional full-sight ("expert") obs; 0 = not provided
    # the state starts with one block of this many features per ally (SMAC's ``get_state``, the
    # ``unit_dim`` of Qatten's and FOP's attention keys); 0 = the state has no per-ally blocks
    unit_dim: int = 0
    # SMAC's death convention: an agent whose only available action is the no-op is dead (the
    # death mask of the actor-critic and imitation losses, ``learners.ppo.live_agents``). False
    # where no agent dies before its episode ends, so a step whose mask forces a single action is
    # still a live agent's (Gold Miner: any player's elimination ends the episode)
    one_action_means_dead: bool = True


class EnvBatch(NamedTuple):
    """One time step of ``B`` environments with ``N`` agents.

    ``obs`` [B, N, obs_dim] float32, ``state`` [B, state_dim] float32,
    ``avail_actions`` [B, N, n_actions] bool, ``reward`` [B] float32 (team reward),
    ``terminated`` [B] bool (the episode ended by the task itself), ``truncated`` [B] bool
    (the episode hit ``episode_limit``), ``won`` [B] bool (the ended episode was a win).
    ``full_obs`` [B, N, full_obs_dim] is the full-sight observation where the backend was asked
    for it (e.g. ``sight_range=0`` allies plus the expert's view), else None.
    After ``reset`` the reward is zero and all flags are False.

    Auto-reset (Gymnasium's "next step" mode): the step that ends an episode returns its reward,
    flags and *final* observation (a truncated episode bootstraps from it, as pymarl's runner
    does); the next ``step`` ignores that environment's actions, restarts it and returns the new
    episode's first observation with zero reward and all flags False. (The matrix games, whose
    every step is a whole episode from one constant state, are the exception.)
    """

    obs: torch.Tensor
    state: torch.Tensor
    avail_actions: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    won: torch.Tensor
    full_obs: torch.Tensor | None = None


class BatchedEnv(Protocol):
    """What every backend implements."""

    spec: EnvSpec
    num_envs: int
    device: torch.device

    def reset(self) -> EnvBatch:
        """Reset every environment and return the first step."""
        ...

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Apply ``actions`` [B, N] (int64, on ``device``) and return the next step."""
        ...

    def close(self) -> None:
        """Release worker processes or devices, if any."""
        ...

    def rng_state(self) -> Any:
        """The environments' random state between rollouts, as a picklable snapshot, for
        checkpoints; None where the backend cannot capture it (StarCraft II keeps its randomness
        inside the game processes). A deterministic backend returns an empty snapshot."""
        ...

    def set_rng_state(self, state: Any) -> None:
        """Continue from a snapshot of :meth:`rng_state` (taken from an env of the same task)."""
        ...
