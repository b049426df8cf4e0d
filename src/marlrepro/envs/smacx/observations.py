"""Ally observations (SMAX's unit-list layout with shields, per-team sight) and the world state.

Observation of an ally (``obs_size`` floats): one block per other unit, allies before enemies in
index order (the observer skipped), then the observer's own block.

Other-unit block (``7 + S + T``): health fraction; x and y offset divided by the observer's sight
range; last movement x, y; last action normalised (SMAX's "last targeted"); weapon cooldown
fraction (energy fraction for a Medivac, as SMAC); [shield fraction]; unit-type one-hot.
Own block (``4 + S + T``): health fraction; x / map width, y / map height; cooldown (energy)
fraction; [shield fraction]; unit-type one-hot.

``S`` is 1 when the scenario can contain shielded (Protoss) units, else 0 (SMAC's
``shield_bits``); ``T`` is the number of unit types (9). A block is all zeros when the other unit is
dead or not strictly within the observer's sight range, or when the observer is dead.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from marlrepro.envs.smacx.state import UnitState
from marlrepro.envs.smacx.units import NUM_UNIT_TYPES, UnitTable


@dataclass(frozen=True)
class View:
    """Static facts the observation functions need."""

    num_allies: int
    num_enemies: int
    num_ally_actions: int
    num_enemy_actions: int
    shields: bool
    see_enemy_actions: bool
    map_size: tuple[float, float]

    @property
    def unit_block(self) -> int:
        """Features per other unit."""
        return 7 + int(self.shields) + NUM_UNIT_TYPES

    @property
    def own_block(self) -> int:
        """Own features (also the per-unit block of the world state)."""
        return 4 + int(self.shields) + NUM_UNIT_TYPES

    @property
    def obs_size(self) -> int:
        return (self.num_allies + self.num_enemies - 1) * self.unit_block + self.own_block

    @property
    def state_size(self) -> int:
        return (self.num_allies + self.num_enemies) * self.own_block + self.num_allies * self.num_ally_actions

    def others(self) -> np.ndarray:
        """``[A, N - 1]`` index of the k-th other unit seen by ally i (i itself skipped)."""
        k = np.arange(self.num_allies + self.num_enemies - 1)
        i = np.arange(self.num_allies)[:, None]
        return k[None, :] + (k[None, :] >= i)


def _unit_status(table: UnitTable, state: UnitState, view: View) -> jax.Array:
    """Per-unit ``[N, 2 + S + T]``: health fraction, cooldown (energy) fraction, [shields], one-hot."""
    types = state.unit_types
    cooldown = jnp.clip(state.unit_weapon_cooldowns / table.cooldown[types], 0.0, 1.0)
    energy = state.unit_energy / jnp.maximum(table.max_energy[types], 1.0)
    columns = [
        (state.unit_health / table.health[types])[:, None],
        jnp.where(table.healer[types], energy, cooldown)[:, None],
    ]
    if view.shields:
        columns.append((state.unit_shields / jnp.maximum(table.shields[types], 1.0))[:, None])
    columns.append(jax.nn.one_hot(types, NUM_UNIT_TYPES))
    return jnp.concatenate(columns, axis=1)


def ally_observations(table: UnitTable, state: UnitState, view: View, sight: jax.Array) -> jax.Array:
    """Observations ``[A, obs_size]`` of the allies, each seeing within its ``sight`` ``[A]``."""
    a = view.num_allies
    others = view.others()
    status = _unit_status(table, state, view)
    positions = state.unit_positions
    offset = positions[others] - positions[:a, None, :]
    visible = (
        state.unit_alive[:a, None]
        & state.unit_alive[others]
        & (jnp.linalg.norm(offset, axis=-1) < sight[:, None])
    )
    scale = jnp.where(sight > 0, sight, 1.0)[:, None, None]

    max_action = (
        jnp.where(jnp.arange(positions.shape[0]) < a, view.num_ally_actions, view.num_enemy_actions) - 1
    )
    last_action = jnp.clip(state.prev_attack_actions / max_action, 0.0, 1.0)[:, None]
    actions = jnp.concatenate([state.prev_movement_actions, last_action], axis=1)[others]
    if not view.see_enemy_actions:
        actions = jnp.where((others >= a)[..., None], 0.0, actions)

    blocks = jnp.concatenate(
        [status[others][..., :1], offset / scale, actions, status[others][..., 1:]], axis=-1
    )
    blocks = jnp.where(visible[..., None], blocks, 0.0).reshape(a, -1)
    size = jnp.asarray(view.map_size)
    own = jnp.concatenate([status[:a, :1], positions[:a] / size, status[:a, 1:]], axis=1)
    own = jnp.where(state.unit_alive[:a, None], own, 0.0)
    return jnp.concatenate([blocks, own], axis=1)


def world_state(table: UnitTable, state: UnitState, view: View) -> jax.Array:
    """Global state ``[state_size]`` for centralised training, laid out as SMAC's ``get_state``.

    Per unit (allies then enemies, ``4 + S + T``): health fraction; x, y relative to the map centre
    divided by half the map size; cooldown (energy) fraction; [shield fraction]; unit-type one-hot
    (zeros when dead). Then each ally's last action one-hot (SMAC's ``state_last_action=True``).
    """
    status = _unit_status(table, state, view)
    half = jnp.asarray(view.map_size) / 2
    units = jnp.concatenate([status[:, :1], (state.unit_positions - half) / half, status[:, 1:]], axis=1)
    units = jnp.where(state.unit_alive[:, None], units, 0.0)
    last_actions = jax.nn.one_hot(state.ally_last_actions, view.num_ally_actions)
    return jnp.concatenate([units.reshape(-1), last_actions.reshape(-1)])
