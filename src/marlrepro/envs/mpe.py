"""Multi-agent particle environments (MPE) through ``mpe2``'s PettingZoo parallel API.

``mpe2`` simulates one environment at a time in numpy, so this backend keeps ``num_envs``
discrete-action environments and steps them in a Python loop; each step gathers everything
into one numpy array and crosses to ``device`` once.

Heterogeneous agents (``simple_speaker_listener``: the speaker sees 3 features and has 3 actions,
the listener 11 and 5) are padded: observations with zeros up to the largest observation, actions
up to the largest action count, with padded actions marked unavailable. The state is the
concatenation of all agents' unpadded observations. Episodes never terminate; they are
truncated after ``max_cycles`` steps. ``won`` is always False.

Options:

* ``max_cycles`` (int, default 25, mpe2's default): the episode limit.
* ``shared_reward`` (bool, default False, matching mpe2's defaults): when True every agent gets
  the same fully shared reward and the team reward is that value. ``simple_spread`` and
  ``simple_reference`` mix a global and a per-agent reward with ``local_ratio`` (mpe2 default
  0.5); ``shared_reward=True`` sets ``local_ratio=0``, so every agent receives the global reward
  (``simple_spread``: minus the sum over landmarks of the closest agent's distance, without the
  per-agent collision penalty; ``simple_reference``: the mean of both agents' goal distances).
  ``simple_speaker_listener`` always pays both agents the same reward (minus the listener's
  squared distance to the goal). When False the team reward is the sum of the agents' rewards.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import torch
from mpe2 import simple_reference_v3, simple_speaker_listener_v4, simple_spread_v3
from pettingzoo import ParallelEnv

from marlrepro import env_catalog
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.errors import ConfigError

# scenario -> (mpe2 module, whether it mixes global and local rewards through ``local_ratio``)
_MODULES: dict[str, tuple[ModuleType, bool]] = {
    "simple_spread": (simple_spread_v3, True),
    "simple_reference": (simple_reference_v3, True),
    "simple_speaker_listener": (simple_speaker_listener_v4, False),
}
SCENARIOS = frozenset(_MODULES)
OPTIONS = env_catalog.OPTIONS["mpe"]  # option -> (type, default)


def _make_one(scenario: str, max_cycles: int, shared_reward: bool) -> ParallelEnv:
    """Build one discrete-action mpe2 parallel environment for the resolved options."""
    if max_cycles < 1:
        raise ConfigError(f"env.options.max_cycles: expected a positive int, got {max_cycles}")
    module, mixes_rewards = _MODULES[scenario]
    kwargs: dict[str, Any] = {"max_cycles": max_cycles, "continuous_actions": False}
    if shared_reward and mixes_rewards:
        kwargs["local_ratio"] = 0.0
    return module.parallel_env(**kwargs)


def _sizes(env: ParallelEnv) -> tuple[list[int], list[int]]:
    """Per-agent observation sizes and action counts, in agent order."""
    agents = env.possible_agents
    return (
        [env.observation_space(a).shape[0] for a in agents],
        [int(env.action_space(a).n) for a in agents],
    )


def spec(scenario: str, max_cycles: int, shared_reward: bool) -> EnvSpec:
    """Static spec (builds one environment object, which is cheap; steps nothing)."""
    obs_dims, action_counts = _sizes(_make_one(scenario, max_cycles, shared_reward))
    return EnvSpec(
        name=f"mpe:{scenario}",
        n_agents=len(obs_dims),
        obs_dim=max(obs_dims),
        state_dim=sum(obs_dims),
        n_actions=max(action_counts),
        episode_limit=max_cycles,
    )


def _pad_index(obs_dims: list[int]) -> torch.Tensor:
    """Index [N, max_obs] into the state extended by one zero column: agent i's padded obs.

    Entry ``[i, k]`` is the state position of agent ``i``'s feature ``k`` or, for ``k`` past
    that agent's size, the appended zero column.
    """
    starts = torch.tensor([0, *obs_dims[:-1]]).cumsum(0)
    k = torch.arange(max(obs_dims))
    return torch.where(k < torch.tensor(obs_dims)[:, None], starts[:, None] + k, sum(obs_dims))


class Env:
    """``num_envs`` independently seeded mpe2 environments with per-environment auto-reset on the
    step after an episode ends (Gymnasium's "next step" mode).

    The returned ``avail_actions`` and ``won`` are shared constant tensors: copy before
    modifying them.
    """

    def __init__(
        self,
        scenario: str,
        *,
        num_envs: int,
        seed: int,
        device: torch.device,
        max_cycles: int,
        shared_reward: bool,
    ) -> None:
        self.spec = spec(scenario, max_cycles, shared_reward)
        self.num_envs = num_envs
        self.device = device
        self._envs = [_make_one(scenario, max_cycles, shared_reward) for _ in range(num_envs)]
        self._agents = self._envs[0].possible_agents
        self._shared_reward = shared_reward
        obs_dims, action_counts = _sizes(self._envs[0])
        self._pad_index = _pad_index(obs_dims).to(device)
        avail = torch.arange(self.spec.n_actions) < torch.tensor(action_counts)[:, None]
        self._avail = avail.repeat(num_envs, 1, 1).to(device)
        self._won = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self._ended = [False] * num_envs  # which environments' episodes ended on the last step
        # Distinct, reproducible per-environment seeds; later resets continue each env's stream.
        for env, env_seed in zip(self._envs, np.random.SeedSequence(seed).generate_state(num_envs)):
            env.reset(seed=int(env_seed))

    def _flat_obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One environment's observations concatenated in agent order (= its state)."""
        return np.concatenate([obs[a] for a in self._agents])

    def _to_batch(self, host: np.ndarray) -> EnvBatch:
        """Move ``host`` [B, state_dim + 3] (state, reward, terminated, truncated) to ``device``."""
        packed = torch.from_numpy(host).to(self.device)
        s = self.spec.state_dim
        state = packed[:, :s]
        obs = torch.nn.functional.pad(state, (0, 1))[:, self._pad_index]
        return EnvBatch(
            obs=obs,
            state=state,
            avail_actions=self._avail,
            reward=packed[:, s],
            terminated=packed[:, s + 1].bool(),
            truncated=packed[:, s + 2].bool(),
            won=self._won,
        )

    def reset(self) -> EnvBatch:
        """Reset every environment."""
        self._ended = [False] * self.num_envs
        host = np.zeros((self.num_envs, self.spec.state_dim + 3), dtype=np.float32)
        for b, env in enumerate(self._envs):
            host[b, : self.spec.state_dim] = self._flat_obs(env.reset()[0])
        return self._to_batch(host)

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Step every environment. The step that ends an episode reports its final obs (a
        truncated episode bootstraps from it); the next step restarts that environment instead,
        whatever its actions, and reports the first obs with zero reward and no flags."""
        s = self.spec.state_dim
        host = np.zeros((self.num_envs, s + 3), dtype=np.float32)
        first = self._agents[0]
        for b, (env, row) in enumerate(zip(self._envs, actions.cpu().tolist())):
            if self._ended[b]:
                host[b, :s] = self._flat_obs(env.reset()[0])
                self._ended[b] = False
                continue
            obs, rewards, terminations, truncations, _ = env.step(dict(zip(self._agents, row)))
            terminated, truncated = terminations[first], truncations[first]
            self._ended[b] = terminated or truncated
            host[b, :s] = self._flat_obs(obs)
            reward = rewards[first] if self._shared_reward else sum(rewards.values())
            host[b, s:] = (reward, terminated, truncated)
        return self._to_batch(host)

    def rng_state(self) -> list[dict]:
        """Each environment's numpy generator state (it draws every reset's positions)."""
        return [env.unwrapped.np_random.bit_generator.state for env in self._envs]

    def set_rng_state(self, state: list[dict]) -> None:
        """Continue each environment's generator from :meth:`rng_state`."""
        for env, generator_state in zip(self._envs, state, strict=True):
            env.unwrapped.np_random.bit_generator.state = generator_state

    def close(self) -> None:
        """Close every environment."""
        for env in self._envs:
            env.close()
        self._envs = []
