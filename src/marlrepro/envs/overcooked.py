"""Overcooked (Carroll et al. 2019) through JaxMARL's ``Overcooked`` (v1), as ``overcooked:<layout>``
(ME-IGM §6.2, Figure 4). Facts checked against jaxmarl 0.2.0 (notes/overcooked_il.md):

* Layouts: ``cramped_room`` and ``asymmetric_advantages`` (JaxMARL's ``asymm_advantages``).
* Observations: each agent's fully observable (H, W, 26) grid of feature planes, its own position
  and orientation first, flattened to float32. There is no global state in JaxMARL; the state for
  the mixers is agent 0's grid, which holds every feature (the two agents' grids differ only in
  which planes are "own" and which are "other").
* Actions: 6 (up, down, right, left, stay, interact), always all available.
* Episodes last ``episode_limit`` steps (400) and then end by truncation, never by the task:
  ``terminated`` stays False, ``truncated`` is True on the last step. ``won`` is always False.
* Reward: the delivery reward, 20 per soup, the same for both agents (the team reward). The
  option ``shaped_reward`` (a coefficient, default 0) adds both agents' shaped rewards (onion into
  the pot 3, useful plate pick-up 3, soup pick-up 5), annealed linearly from the coefficient to 0
  over ``shaped_reward_horizon`` env steps of this batch of environments, as JaxMARL's baselines
  do (``REW_SHAPING_HORIZON``).
* Every environment resets on its own on the step after its episode ends (Gymnasium's "next
  step" auto-reset): the last step returns the final kitchen, from which a learner bootstraps the
  truncated episode; the next one ignores the actions and returns a fresh kitchen, with zero
  reward and no flags. A reset redraws the agents' orientations (JaxMARL's reset), not their
  positions.
* Without the shaped reward, rollouts are fused into one JAX call as SMAX's are
  (:class:`~marlrepro.envs.jax_rollout.FusedRollout`); with it, the stepwise runner serves them.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax.core.frozen_dict import FrozenDict

from marlrepro import env_catalog
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.envs.jax_smax import _jax_device, _where, unpack_outputs
from marlrepro.envs.jaxmarl_modules import jaxmarl_module
from marlrepro.errors import ConfigError

_overcooked = jaxmarl_module("jaxmarl.environments.overcooked")
Overcooked, overcooked_layouts = _overcooked.Overcooked, _overcooked.overcooked_layouts

# our layout name -> JaxMARL's key
LAYOUTS = {"cramped_room": "cramped_room", "asymmetric_advantages": "asymm_advantages"}
SCENARIOS = frozenset(LAYOUTS)
OPTIONS = env_catalog.OPTIONS["overcooked"]  # option -> (type, default)
N_CHANNELS = 26


def build_env(layout: str, episode_limit: int) -> Overcooked:
    """JaxMARL's env for ``layout`` with ``episode_limit`` steps (never jitted here)."""
    if episode_limit < 1:
        raise ConfigError(f"env.options.episode_limit: expected a positive int, got {episode_limit}")
    with warnings.catch_warnings():  # its constructor recommends OvercookedV2; ME-IGM's is v1
        warnings.simplefilter("ignore", DeprecationWarning)
        return Overcooked(layout=FrozenDict(overcooked_layouts[LAYOUTS[layout]]), max_steps=episode_limit)


def _check(shaped_reward: float, shaped_reward_horizon: int) -> None:
    if shaped_reward < 0:
        raise ConfigError(f"env.options.shaped_reward: expected a coefficient >= 0, got {shaped_reward}")
    if shaped_reward_horizon < 1:
        raise ConfigError(f"env.options.shaped_reward_horizon: expected a positive int, got {shaped_reward_horizon}")


def spec(layout: str, *, episode_limit: int, shaped_reward: float, shaped_reward_horizon: int) -> EnvSpec:
    """Static spec: the grid's size sets the observation and the state."""
    _check(shaped_reward, shaped_reward_horizon)
    env = build_env(layout, episode_limit)
    grid = env.height * env.width * N_CHANNELS
    return EnvSpec(name=f"overcooked:{layout}", n_agents=env.num_agents, obs_dim=grid, state_dim=grid,
                   n_actions=len(env.action_set), episode_limit=episode_limit)


class Env:
    """``num_envs`` vmapped Overcooked kitchens with per-environment auto-reset."""

    def __init__(self, layout: str, *, num_envs: int, seed: int, device: torch.device, episode_limit: int,
                 shaped_reward: float, shaped_reward_horizon: int) -> None:
        self.spec = spec(layout, episode_limit=episode_limit, shaped_reward=shaped_reward,
                         shaped_reward_horizon=shaped_reward_horizon)
        self._env = build_env(layout, episode_limit)
        self.num_envs = num_envs
        self.device = device
        self._jax_device = _jax_device(device)
        self._shaping = (shaped_reward, shaped_reward_horizon)
        self.key = jax.device_put(jax.random.key(seed), self._jax_device)
        self.env_steps = 0  # env steps taken by this batch: the clock of the shaping's annealing
        self._states: Any = None
        self._reset_fn = jax.jit(self.reset_batch)
        self._step_fn = jax.jit(self.step_batch)

    # ---- pure JAX (traced once) -------------------------------------------------------------

    def _outputs(self, obs: dict[str, jax.Array], reward: jax.Array, truncated: jax.Array) -> jax.Array:
        """The step packed into one float32 array [B, F] (``jax_smax.packed_widths`` layout)."""
        grids = jnp.stack([obs[agent] for agent in self._env.agents], axis=1).reshape(self.num_envs, 2, -1)
        grids = grids.astype(jnp.float32)
        avail = jnp.ones((self.num_envs, 2 * self.spec.n_actions), dtype=jnp.float32)
        false = jnp.zeros((self.num_envs, 1), dtype=jnp.float32)
        return jnp.concatenate([grids.reshape(self.num_envs, -1), grids[:, 0], avail, reward[:, None], false,
                                truncated.astype(jnp.float32)[:, None], false], axis=1)

    def reset_batch(self, key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """Reset every kitchen (pure, traceable): the states (the kitchens' and which ended on the
        last step), the next key and the packed outputs."""
        key, reset_key = jax.random.split(key)
        obs, states = jax.vmap(self._env.reset)(jax.random.split(reset_key, self.num_envs))
        zeros = jnp.zeros(self.num_envs, dtype=jnp.float32)
        return (states, zeros > 0), key, self._outputs(obs, zeros, zeros > 0)

    def _kitchen_step(self, states: tuple[Any, jax.Array], key: jax.Array, actions: jax.Array, shaping: jax.Array | float,
                      restart: bool) -> tuple[tuple[Any, jax.Array], jax.Array, jax.Array]:
        """One step of every kitchen; with ``restart``, one whose episode ended on the last step
        restarts instead; without it, it steps on with zero reward and no flags."""
        states, ended_before = states
        key, step_key = jax.random.split(key)
        step_keys, reset_keys = jax.vmap(jax.random.split, out_axes=1)(jax.random.split(step_key, self.num_envs))
        agent_actions = {agent: actions[:, i] for i, agent in enumerate(self._env.agents)}
        obs, states_after, rewards, dones, infos = jax.vmap(self._env.step_env)(step_keys, states, agent_actions)
        if restart:
            fresh_obs, fresh = jax.vmap(self._env.reset)(reset_keys)
            states_after = _where(ended_before, fresh, states_after)
            obs = _where(ended_before, fresh_obs, obs)
        shaped = sum(infos["shaped_reward"][agent] for agent in self._env.agents)
        reward = jnp.where(ended_before, 0.0, rewards[self._env.agents[0]] + shaping * shaped).astype(jnp.float32)
        truncated = dones["__all__"] & ~ended_before
        ended = truncated if restart else ended_before | truncated
        return (states_after, ended), key, self._outputs(obs, reward, truncated)

    def step_batch(self, states: tuple[Any, jax.Array], key: jax.Array, actions: jax.Array,
                   shaping: jax.Array | float = 0.0) -> tuple[tuple[Any, jax.Array], jax.Array, jax.Array]:
        """Step every kitchen with JaxMARL's ``step_env``, or restart one whose episode ended on the
        last step (pure, traceable; each kitchen's key split as JaxMARL's ``step`` splits it);
        ``shaping`` is the shaped reward's coefficient at this step."""
        return self._kitchen_step(states, key, actions, shaping, restart=True)

    def advance_batch(self, states: tuple[Any, jax.Array], key: jax.Array,
                      actions: jax.Array) -> tuple[tuple[Any, jax.Array], jax.Array, jax.Array]:
        """:meth:`step_batch` without its restarts, for the lock-step rollout (as
        :meth:`marlrepro.envs.jax_smax.SMAXBatch.advance_batch`): an ended kitchen steps on with
        zero reward and no flags, and its outputs mean nothing; the keys split as they do there."""
        return self._kitchen_step(states, key, actions, 0.0, restart=False)

    # ---- torch boundary -----------------------------------------------------------------------

    def _to_torch(self, packed: jax.Array) -> EnvBatch:
        return unpack_outputs(torch.from_dlpack(packed), self.spec)

    @property
    def fusable(self) -> bool:
        """Whether the fused rollout can run these kitchens: only without the shaped reward, whose
        coefficient follows the host's step clock (the stepwise runner serves that option)."""
        return self._shaping[0] == 0.0

    def fused_rollout(self, controller: Any, pack: list[Env], num_envs: int | None = None) -> Any:
        """A :class:`~marlrepro.envs.jax_rollout.FusedRollout` of ``controller`` on the kitchens of
        every run of a pack (``pack``: one batch per run, this one first)."""
        from marlrepro.envs.jax_rollout import FusedRollout

        return FusedRollout(pack, controller, num_envs)

    def shaping_coefficient(self) -> float:
        """The shaped reward's weight now: linear from ``shaped_reward`` to 0 over the horizon."""
        coefficient, horizon = self._shaping
        return coefficient * max(0.0, 1.0 - self.env_steps / horizon)

    def reset(self) -> EnvBatch:
        """Reset every kitchen."""
        self._states, self.key, outputs = self._reset_fn(self.key)
        return self._to_torch(outputs)

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Step every kitchen with ``actions`` [B, 2] (int64 on ``device``); those that ended on
        the last step restart instead."""
        if self._states is None:
            raise RuntimeError("Overcooked Env.step called before reset")
        jax_actions = jax.dlpack.from_dlpack(actions.to(torch.int32).contiguous())
        shaping = jnp.float32(self.shaping_coefficient())
        self._states, self.key, outputs = self._step_fn(self._states, self.key, jax_actions, shaping)
        self.env_steps += self.num_envs
        return self._to_torch(outputs)

    def rng_state(self) -> dict[str, Any]:
        """The PRNG key and the shaping clock (every rollout starts with a reset)."""
        return {"key": np.asarray(jax.random.key_data(self.key)), "env_steps": self.env_steps}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`rng_state`."""
        self.key = jax.device_put(jax.random.wrap_key_data(jnp.asarray(state["key"])), self._jax_device)
        self.env_steps = int(state["env_steps"])

    def close(self) -> None:
        """Drop the device state."""
        self._states = None
