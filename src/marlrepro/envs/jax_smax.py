"""Batched SMAX-family battles: ``num_envs`` vmapped JAX environments behind the torch interface.

The core shared by the ``smax``/``smacv2`` backends (the extended SMAX of
:mod:`marlrepro.envs.smacx`) and ``smax_stock`` (JaxMARL's unmodified ``HeuristicEnemySMAX``).
Reset and step are each jitted once. The PRNG key lives inside the jitted state, so ``step`` never
draws host randomness or synchronises with the host; each step's outputs are packed into one
float32 array that crosses to torch through DLPack without a copy (on the GPU when ``device`` is
CUDA, on the host otherwise).

Episode bookkeeping done here, identically for every SMAX-family env:

* ``terminated``: the battle ended by the env's own rules (``battle_over``); ``won``: the
  allies won it (``won``). Both come from a :class:`BattleRules` object.
* ``truncated``: the episode reached ``episode_limit`` steps without the battle ending.
* Team reward: every ally receives the same team reward; it is ally 0's reward times
  ``reward_scale``.
* Ended battles restart on their next step (auto-reset, Gymnasium's "next step" mode): the step
  that ends a battle returns its reward and flags with its final observation, from which a
  learner bootstraps a truncated episode; the next step ignores that battle's actions and returns
  the new episode's first observation, with zero reward and no flags.

GPU memory: JAX preallocates most of the GPU by default, which starves torch on a shared GPU.
This module sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (via ``os.environ.setdefault``, before
JAX starts) so users keep the choice; set it yourself if JAX is initialised elsewhere first.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import torch

from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.errors import ConfigError


class BattleRules(Protocol):
    """How a SMAX-family env decides that a battle is over and who won (traceable)."""

    def battle_over(self, state: Any) -> jax.Array: ...

    def won(self, state: Any) -> jax.Array: ...


def spec_of(name: str, env: Any) -> EnvSpec:
    """Static spec read from a constructed (never jitted) SMAX-family env."""
    return EnvSpec(
        name=name,
        n_agents=env.num_allies,
        obs_dim=env.obs_size,
        state_dim=env.state_size,
        n_actions=env.num_ally_actions,
        episode_limit=env.max_steps,
        full_obs_dim=env.obs_size if getattr(env, "full_sight_obs", False) else 0,
        unit_dim=getattr(env, "ally_state_size", 0),  # our SMAC-layout envs; stock SMAX's state has none
    )


def _jax_device(device: torch.device) -> jax.Device:
    """The JAX device that shares memory with torch ``device``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            return jax.devices("gpu")[index]
        except RuntimeError:
            raise ConfigError(
                f"device: SMAX on {device} needs a CUDA-enabled JAX (e.g. pip install 'jax[cuda12]'), "
                f"but JAX sees only {jax.devices()}; check JAX_PLATFORMS"
            ) from None
    if device.type == "cpu":
        return jax.devices("cpu")[0]
    raise ConfigError(f"device: SMAX runs on 'cpu' or 'cuda', got {device}")


def _where(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per-environment select over pytrees: leaf ``[B, ...]`` from ``new`` where ``mask[B]``."""

    def select(n: jax.Array, o: jax.Array) -> jax.Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(select, new, old)


def packed_widths(spec: EnvSpec) -> list[int]:
    """Column widths of the packed per-step outputs.

    obs, state, availability, the full-sight obs (width 0 unless requested), then four flags:
    reward, terminated, truncated, won (always the last four columns).
    """
    n = spec.n_agents
    return [n * spec.obs_dim, spec.state_dim, n * spec.n_actions, n * spec.full_obs_dim, 1, 1, 1, 1]


def unpack_outputs(flat: torch.Tensor, spec: EnvSpec) -> EnvBatch:
    """Views of packed outputs ``[..., F]`` as an :class:`EnvBatch` with the same leading dims."""
    lead = flat.shape[:-1]
    obs, state, avail, full, reward, terminated, truncated, won = flat.split(packed_widths(spec), dim=-1)
    return EnvBatch(
        obs=obs.unflatten(-1, (spec.n_agents, spec.obs_dim)),
        state=state,
        avail_actions=avail.unflatten(-1, (spec.n_agents, spec.n_actions)) > 0.5,
        reward=reward.reshape(lead),
        terminated=terminated.reshape(lead) > 0.5,
        truncated=truncated.reshape(lead) > 0.5,
        won=won.reshape(lead) > 0.5,
        full_obs=full.unflatten(-1, (spec.n_agents, spec.full_obs_dim)) if spec.full_obs_dim else None,
    )


class JaxBatchedEnv:
    """The torch side of a batch of ``num_envs`` JAX environments with per-environment auto-reset
    (SMAX-family battles, Gold Miner games, particle worlds). A subclass's constructor calls :meth:`_setup`; it
    defines ``spec`` and the pure-JAX ``reset_batch(key)`` and ``step_batch(states, key,
    actions)`` (and ``advance_batch`` for the fused rollout), returning packed outputs
    (:func:`unpack_outputs`)."""

    spec: EnvSpec

    def _setup(self, num_envs: int, seed: int, device: torch.device) -> None:
        self.num_envs = num_envs
        self.device = device
        self._jax_device = _jax_device(device)
        self.key = jax.device_put(jax.random.key(seed), self._jax_device)
        self._states: Any = None  # the vmapped env states, set by reset
        self._reset_fn = jax.jit(self.reset_batch)
        self._step_fn = jax.jit(self.step_batch)

    def reset_batch(self, key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        raise NotImplementedError

    def step_batch(self, states: Any, key: jax.Array, actions: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        raise NotImplementedError

    def _to_torch(self, packed: jax.Array) -> EnvBatch:
        """Unpack the packed outputs into torch views on ``device`` (one DLPack, no copy)."""
        return unpack_outputs(torch.from_dlpack(packed), self.spec)

    def fused_rollout(self, controller: Any, pack: list[JaxBatchedEnv], num_envs: int | None = None) -> Any:
        """A :class:`~marlrepro.envs.jax_rollout.FusedRollout` of ``controller`` on the environments
        of every run of a pack (``pack``: one batch per run, this one first, all of the same env)."""
        from marlrepro.envs.jax_rollout import FusedRollout

        return FusedRollout(pack, controller, num_envs)

    def reset(self) -> EnvBatch:
        """Reset every environment."""
        self._states, self.key, outputs = self._reset_fn(self.key)
        return self._to_torch(outputs)

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Step every environment with ``actions`` [B, N] (int64 on ``device``); those that ended
        on the last step restart instead."""
        if self._states is None:
            raise RuntimeError(f"{type(self).__name__}.step called before reset")
        jax_actions = jax.dlpack.from_dlpack(actions.to(torch.int32).contiguous())
        self._states, self.key, outputs = self._step_fn(self._states, self.key, jax_actions)
        return self._to_torch(outputs)

    def rng_state(self) -> np.ndarray:
        """The raw data of the PRNG key (every rollout starts with a reset, so the key is the
        only state that crosses rollouts)."""
        return np.asarray(jax.random.key_data(self.key))

    def set_rng_state(self, state: np.ndarray) -> None:
        """Continue from a key saved by :meth:`rng_state`."""
        self.key = jax.device_put(jax.random.wrap_key_data(jnp.asarray(state)), self._jax_device)

    def close(self) -> None:
        """Drop the device state."""
        self._states = None


class EndFlaggedBatch(JaxBatchedEnv):
    """A :class:`JaxBatchedEnv` whose traced state is (the environments' states, which of them
    ended on the last step), as Gold Miner's and the JAX MPE's: a subclass defines
    ``_reset_all(key)`` (every environment's start state) and ``_outputs(states, reward,
    terminated, truncated, won)`` (the packed outputs); the reset is theirs in common."""

    def reset_batch(self, key: jax.Array) -> tuple[tuple[Any, jax.Array], jax.Array, jax.Array]:
        """Reset every environment (pure, traceable): the states (the environments' and which ended
        on the last step: none), the next key and the packed outputs."""
        key, reset_key = jax.random.split(key)
        states = self._reset_all(reset_key)
        false = jnp.zeros(self.num_envs, bool)
        return (states, false), key, self._outputs(states, jnp.zeros(self.num_envs), false, false, false)


class SMAXBatch(JaxBatchedEnv):
    """``num_envs`` vmapped battles of one SMAX-family env, with per-environment auto-reset.

    ``env`` is a constructed JaxMARL-style env (``reset``, ``step_env``, ``get_avail_actions``,
    ``agents``; its observation dict holds one entry per ally, ``"world_state"`` and, when it
    offers a full-sight view, ``full_obs_key``); ``rules`` decides battle ends and wins.
    """

    def __init__(
        self,
        env: Any,
        rules: BattleRules,
        name: str,
        *,
        num_envs: int,
        seed: int,
        device: torch.device,
        reward_scale: float,
        full_obs_key: str | None = None,
    ) -> None:
        self._env = env
        self._rules = rules
        self.spec = spec_of(name, env)
        self._full_obs_key = full_obs_key if self.spec.full_obs_dim else None
        self._reward_scale = reward_scale
        self._setup(num_envs, seed, device)

    # ---- pure JAX (traced once) -------------------------------------------------------------

    def _observed(self, obs: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
        """(obs [B, N, obs], world state [B, S]) and, if requested, the full-sight obs [B, N, obs]."""
        views = (self._stack_agents(obs), obs["world_state"])
        return views + (obs[self._full_obs_key],) if self._full_obs_key else views

    def _reset_all(self, key: jax.Array) -> tuple[Any, tuple[jax.Array, ...]]:
        """Reset ``num_envs`` battles: returns (env states, :meth:`_observed` views).

        The heuristic enemy's initial state holds weakly typed ints, which stepping makes strong;
        making them strong here keeps the carry's type fixed, so ``step`` compiles only once.
        """
        obs, state = jax.vmap(self._env.reset)(jax.random.split(key, self.num_envs))
        state = jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), state)
        return state, self._observed(obs)

    def _stack_agents(self, per_agent: dict[str, jax.Array]) -> jax.Array:
        """Stack an agent-keyed dict of ``[B, ...]`` arrays into ``[B, N, ...]`` in agent order."""
        return jnp.stack([per_agent[agent] for agent in self._env.agents], axis=1)

    def _outputs(self, state: Any, views: tuple[jax.Array, ...], *flags: jax.Array) -> jax.Array:
        """One :class:`EnvBatch` packed into a single float32 array ``[B, F]`` (layout:
        :func:`packed_widths`). One array means one DLPack hand-over per step instead of eight;
        :func:`unpack_outputs` reads it back with views."""
        obs, world, *full = views
        avail = self._stack_agents(jax.vmap(self._env.get_avail_actions)(state))
        columns = [obs, world, avail, *full, *(f[:, None] for f in flags)]
        return jnp.concatenate([c.reshape(self.num_envs, -1).astype(jnp.float32) for c in columns], axis=1)

    def reset_batch(self, key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """Reset every battle (pure, traceable): the new states (the battles' and which ended on
        the last step), the next key and the packed outputs."""
        key, reset_key = jax.random.split(key)
        state, views = self._reset_all(reset_key)
        false = jnp.zeros(self.num_envs, dtype=jnp.bool_)
        reward = jnp.zeros(self.num_envs, dtype=jnp.float32)
        return (state, false), key, self._outputs(state, views, reward, false, false, false)

    def _battle_step(
        self, states: tuple[Any, jax.Array], key: jax.Array, actions: jax.Array
    ) -> tuple[Any, tuple[jax.Array, ...], tuple[jax.Array, ...], jax.Array, jax.Array]:
        """Step every battle, restarting none: (battle states, observation views, the flags
        (reward, terminated, truncated, won), the next key, a key for restarts). A battle that
        ended on the last step steps on with zero reward and no flags."""
        state, ended_before = states
        key, step_key, reset_key = jax.random.split(key, 3)
        agent_actions = {agent: actions[:, i] for i, agent in enumerate(self._env.agents)}
        obs, state, rewards, _, _ = jax.vmap(self._env.step_env)(
            jax.random.split(step_key, self.num_envs), state, agent_actions
        )
        stepping = ~ended_before
        terminated = jax.vmap(self._rules.battle_over)(state) & stepping
        won = jax.vmap(self._rules.won)(state) & terminated
        truncated = stepping & ~terminated & (state.state.step >= self.spec.episode_limit)
        reward = jnp.where(stepping, rewards[self._env.agents[0]] * self._reward_scale, 0.0)
        return state, self._observed(obs), (reward, terminated, truncated, won), key, reset_key

    def advance_batch(
        self, states: tuple[Any, jax.Array], key: jax.Array, actions: jax.Array
    ) -> tuple[tuple[Any, jax.Array], jax.Array, jax.Array]:
        """:meth:`step_batch` without its restarts (pure, traceable): a battle that has ended steps
        on, with zero reward and no flags, and its outputs mean nothing. The lock-step rollout
        masks an environment once its episode has ended, so it needs no restarts, and a restart
        costs a whole batched reset at every step."""
        state, views, flags, key, _ = self._battle_step(states, key, actions)
        _, terminated, truncated, _ = flags
        return (state, states[1] | terminated | truncated), key, self._outputs(state, views, *flags)

    def step_batch(
        self, states: tuple[Any, jax.Array], key: jax.Array, actions: jax.Array
    ) -> tuple[tuple[Any, jax.Array], jax.Array, jax.Array]:
        """Step every battle and do the win/limit bookkeeping; a battle that ended on the last step
        restarts instead (pure, traceable). ``actions`` [B, N] int32; returns the new states, the
        next key and the packed outputs (an ending step's with the battle's final observation)."""
        ended_before = states[1]
        state, views, flags, key, reset_key = self._battle_step(states, key, actions)
        _, terminated, truncated, _ = flags
        fresh_state, fresh_views = self._reset_all(reset_key)
        state = _where(ended_before, fresh_state, state)
        views = _where(ended_before, fresh_views, views)
        return (state, terminated | truncated), key, self._outputs(state, views, *flags)
