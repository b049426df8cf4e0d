"""SMAX (JaxMARL's StarCraft-like micromanagement) against the built-in heuristic enemy.

``num_envs`` copies of :class:`jaxmarl.environments.smax.HeuristicEnemySMAX` are vmapped, and
reset and step are each jitted once. The PRNG key lives inside the jitted state, so ``step``
never draws host randomness or synchronises with the host; arrays cross between JAX and torch
through DLPack without copies (on the GPU when ``device`` is CUDA, on the host otherwise).

Semantics, checked against the jaxmarl 0.2.0 source:

* Win rule: SMAX pays ``won_battle_bonus`` (1.0) when, after a step, every enemy is dead and at
  least one ally is alive (both teams dying in the same step is a draw). ``won`` uses exactly
  that rule; ``terminated`` marks a battle that ended (one side wiped out).
* Team reward: SMAX computes one reward per team (normalised enemy-health loss plus the win
  bonus) and hands the same value to every ally, so the team reward is ally 0's reward times
  ``reward_scale``.
* Time limit: SMAX checks ``step >= max_steps`` *before* incrementing the step counter, so its
  own episodes last ``max_steps + 1`` steps. This wrapper ends episodes itself after exactly
  ``episode_limit`` steps (``truncated``); SMAX's ``max_steps`` is set to ``episode_limit`` so
  its own time-out never fires first.

GPU memory: JAX preallocates most of the GPU by default, which starves torch on a shared GPU.
This module sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (via ``os.environ.setdefault``, before
JAX starts) so users keep the choice; set it yourself if JAX is initialised elsewhere first.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402


@contextlib.contextmanager
def _quiet_jaxmarl_import() -> Iterator[None]:
    """Swallow jaxmarl 0.2.0's import-time prints and undo its stream rebinding.

    ``jaxmarl.environments`` prints two lines on import, and its MABrax module rebinds
    ``sys.stdout``/``sys.stderr`` to ``sys.__stdout__``/``sys.__stderr__`` (which would escape
    ``contextlib.redirect_stdout`` and clobber any caller's redirection). Pointing the dunder
    streams at a sink for the duration, then restoring all four, contains both.
    """
    saved = sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__
    sys.stdout = sys.__stdout__ = io.StringIO()
    sys.__stderr__ = sys.stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved


with _quiet_jaxmarl_import():
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario  # noqa: E402
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO  # noqa: E402

from marlrepro.envs.base import EnvBatch, EnvSpec  # noqa: E402
from marlrepro.errors import ConfigError, unknown_choice  # noqa: E402

SCENARIOS = frozenset(MAP_NAME_TO_SCENARIO)
ATTACK_MODES = ("closest", "random")
OPTIONS: dict[str, tuple[type, Any]] = {
    "episode_limit": (int, 100),  # SMAX's default max_steps
    "reward_scale": (float, 1.0),
    "see_enemy_actions": (bool, True),  # SMAX default
    "walls_cause_death": (bool, True),  # SMAX default
    "attack_mode": (str, "closest"),  # heuristic enemy's target choice; SMAX default
}


def build_env(
    scenario: str,
    *,
    episode_limit: int,
    reward_scale: float,
    see_enemy_actions: bool,
    walls_cause_death: bool,
    attack_mode: str,
) -> HeuristicEnemySMAX:
    """Validate the options and build the (never jitted here) jaxmarl environment.

    ``reward_scale`` is applied by :class:`Env`; it is accepted here so that callers can pass
    the resolved options unchanged.
    """
    if attack_mode not in ATTACK_MODES:
        raise unknown_choice("env.options.attack_mode", attack_mode, ATTACK_MODES)
    if episode_limit < 1:
        raise ConfigError(f"env.options.episode_limit: expected a positive int, got {episode_limit}")
    return HeuristicEnemySMAX(
        scenario=map_name_to_scenario(scenario),
        attack_mode=attack_mode,
        see_enemy_actions=see_enemy_actions,
        walls_cause_death=walls_cause_death,
        max_steps=episode_limit,
    )


def _spec_of(scenario: str, env: HeuristicEnemySMAX) -> EnvSpec:
    """Static spec read from a constructed jaxmarl environment."""
    return EnvSpec(
        name=f"smax:{scenario}",
        n_agents=env.num_allies,
        obs_dim=env.obs_size,
        state_dim=env.state_size,
        n_actions=env.num_ally_actions,
        episode_limit=env.max_steps,
    )


def spec(scenario: str, **options: Any) -> EnvSpec:
    """Static spec: builds the lightweight jaxmarl object, compiles and runs nothing."""
    return _spec_of(scenario, build_env(scenario, **options))


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


class Env:
    """``num_envs`` vmapped SMAX battles with per-environment auto-reset."""

    def __init__(
        self, scenario: str, *, num_envs: int, seed: int, device: torch.device, **options: Any
    ) -> None:
        self._env = build_env(scenario, **options)
        self.spec = _spec_of(scenario, self._env)
        self.num_envs = num_envs
        self.device = device
        self._jax_device = _jax_device(device)
        self._reward_scale = options["reward_scale"]
        self._key = jax.device_put(jax.random.key(seed), self._jax_device)
        self._states: Any = None  # the vmapped jaxmarl states, set by reset
        self._reset_fn = jax.jit(self._reset_batch)
        self._step_fn = jax.jit(self._step_batch)

    # ---- pure JAX (traced once) -------------------------------------------------------------

    def _reset_all(self, key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """Reset ``num_envs`` battles: returns (env states, obs [B, N, obs], world state [B, S]).

        The heuristic enemy's initial state holds weakly typed ints, which stepping makes strong;
        making them strong here keeps the carry's type fixed, so ``step`` compiles only once.
        """
        obs, state = jax.vmap(self._env.reset)(jax.random.split(key, self.num_envs))
        state = jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), state)
        return state, self._stack_agents(obs), obs["world_state"]

    def _stack_agents(self, per_agent: dict[str, jax.Array]) -> jax.Array:
        """Stack an agent-keyed dict of ``[B, ...]`` arrays into ``[B, N, ...]`` in agent order."""
        return jnp.stack([per_agent[agent] for agent in self._env.agents], axis=1)

    def _outputs(self, state: Any, obs: jax.Array, world: jax.Array, *flags: jax.Array) -> jax.Array:
        """One :class:`EnvBatch` packed into a single float32 array ``[B, F]``.

        Columns: obs (N·obs_dim), world state, availability (N·n_actions, 0/1), then ``flags``:
        reward, terminated, truncated and won. One array means one DLPack hand-over per step
        instead of seven; :meth:`_to_torch` unpacks it with views.
        """
        avail = self._stack_agents(jax.vmap(self._env.get_avail_actions)(state))
        columns = [obs, world, avail, *(f[:, None] for f in flags)]
        return jnp.concatenate([c.reshape(self.num_envs, -1).astype(jnp.float32) for c in columns], axis=1)

    def _reset_batch(self, key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """Jitted reset: the new states, the next key and the first step's outputs."""
        key, reset_key = jax.random.split(key)
        state, obs, world = self._reset_all(reset_key)
        false = jnp.zeros(self.num_envs, dtype=jnp.bool_)
        reward = jnp.zeros(self.num_envs, dtype=jnp.float32)
        return state, key, self._outputs(state, obs, world, reward, false, false, false)

    def _step_batch(
        self, state: Any, key: jax.Array, actions: jax.Array
    ) -> tuple[Any, jax.Array, jax.Array]:
        """Jitted step of every battle, the win/limit bookkeeping, and auto-reset of ended ones."""
        key, step_key, reset_key = jax.random.split(key, 3)
        agent_actions = {agent: actions[:, i] for i, agent in enumerate(self._env.agents)}
        obs, state, rewards, _, _ = jax.vmap(self._env.step_env)(
            jax.random.split(step_key, self.num_envs), state, agent_actions
        )
        alive = state.state.unit_alive
        allies_alive = alive[:, : self._env.num_allies].any(axis=1)
        enemies_alive = alive[:, self._env.num_allies :].any(axis=1)
        terminated = ~(allies_alive & enemies_alive)
        won = allies_alive & ~enemies_alive
        truncated = ~terminated & (state.state.step >= self.spec.episode_limit)
        ended = terminated | truncated
        reward = rewards[self._env.agents[0]] * self._reward_scale

        fresh_state, fresh_obs, fresh_world = self._reset_all(reset_key)
        state = _where(ended, fresh_state, state)
        obs, world = _where(ended, (fresh_obs, fresh_world), (self._stack_agents(obs), obs["world_state"]))
        return state, key, self._outputs(state, obs, world, reward, terminated, truncated, won)

    # ---- torch boundary -----------------------------------------------------------------------

    def _to_torch(self, packed: jax.Array) -> EnvBatch:
        """Unpack :meth:`_outputs` into torch views on ``device`` (one DLPack, no copy)."""
        flat = torch.from_dlpack(packed)
        spec, b = self.spec, self.num_envs
        n_obs, n_avail = spec.n_agents * spec.obs_dim, spec.n_agents * spec.n_actions
        obs, state, avail, reward, terminated, truncated, won = flat.split(
            [n_obs, spec.state_dim, n_avail, 1, 1, 1, 1], dim=1
        )
        return EnvBatch(
            obs=obs.view(b, spec.n_agents, spec.obs_dim),
            state=state,
            avail_actions=avail.view(b, spec.n_agents, spec.n_actions) > 0.5,
            reward=reward.squeeze(1),
            terminated=terminated.squeeze(1) > 0.5,
            truncated=truncated.squeeze(1) > 0.5,
            won=won.squeeze(1) > 0.5,
        )

    def reset(self) -> EnvBatch:
        """Reset every battle."""
        self._states, self._key, outputs = self._reset_fn(self._key)
        return self._to_torch(outputs)

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Step every battle with ``actions`` [B, N] (int64 on ``device``); ended ones restart."""
        if self._states is None:
            raise RuntimeError("SMAX Env.step called before reset")
        jax_actions = jax.dlpack.from_dlpack(actions.to(torch.int32).contiguous())
        self._states, self._key, outputs = self._step_fn(self._states, self._key, jax_actions)
        return self._to_torch(outputs)

    def close(self) -> None:
        """Drop the device state."""
        self._states = None
