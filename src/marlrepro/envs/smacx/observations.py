"""Ally observations and the world state, laid out exactly as SMAC's and SMACv2's.

References: ``smac/env/starcraft2/starcraft2.py`` (SMAC v1: ``get_obs_agent``,
``get_obs_*_feats_size``, ``get_state_dict``, ``get_unit_type_id``) with the flags of pymarl's
``sc2.yaml`` (also the IGM-DA authors'), which are SMAC's defaults: ``obs_all_health``,
``obs_own_health``, ``state_last_action`` on; ``obs_last_action``, ``obs_pathing_grid``,
``obs_terrain_height``, ``obs_timestep_number``, ``obs_instead_of_state``, ``state_timestep_number``
off. ``smacv2/env/starcraft2/starcraft2.py`` (SMACv2: the same functions plus
``build_obs_feature_names``/``build_state_feature_names``) with the flags of its
``examples/configs/sc2_gen_*.yaml``: the same, plus ``obs_own_pos`` on, ``conic_fov`` off, and a
``capability_config`` whose only feature-bearing entry is ``team_gen`` with ``observe: True``
(teammates' unit-type bits shown).

Observation of ally ``i`` (``obs_size`` floats), in this order:

* move features (4): SMAC's move-availability bits north, south, east, west, read from the
  available-action mask (our actions 0-3 are north, east, south, west);
* per enemy ``e`` (``5 + S_e + T``): available-to-attack (the mask's action ``5 + e``), distance /
  sight, relative x / sight, relative y / sight, health fraction, [shield fraction], type bits;
* per other ally ``j`` in index order (``5 + S_a + T``): visible (1), distance / sight, relative
  x / sight, relative y / sight, health fraction, [shield fraction], type bits;
* own features (``1 + S_a + 2 P + T``): health fraction, [shield fraction], [x / map width,
  y / map height (SMACv2's ``obs_own_pos``)], type bits.

An enemy or ally block is all zeros unless that unit is alive and strictly within the observer's
sight (``distance < sight``, as SMAC); the whole observation is zeros for a dead observer. With
sight 0 no other unit is visible and no division by the sight happens. ``S_e``/``S_a`` is 1 when
that team is Protoss (SMAC's ``shield_bits_enemy``/``shield_bits_ally``), ``P`` is 1 on SMACv2
scenarios, ``T`` is SMAC's per-map ``unit_type_bits`` (:data:`SMAC_TYPE_IDS`; 3 on SMACv2).

As in SMAC, the available-to-attack bit of a Medivac's enemy block ``e`` is its mask entry
``5 + e``, which for a Medivac means "may heal ally ``e``".

World state (``state_size``): per ally ``4 + S_a + T`` (health fraction, weapon cooldown fraction
or, for a Medivac, energy / 200, x and y relative to the map centre over the map width and height,
[shield fraction], type bits), per enemy ``3 + S_e + T`` (health fraction, relative x, relative
y, [shield fraction], type bits), zeros for dead units; then each ally's last action one-hot over
SMAC's ``n_actions = num_ally_actions + 1`` actions (SMAC's ids: 0 no-op, 1 stop, 2-5 move north,
south, east, west, 6 + k target ``k``); an ally that was dead when it acted did SMAC's no-op; all
zeros before the first step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from marlrepro.envs.smacx.actions import NUM_MOVEMENT_ACTIONS
from marlrepro.envs.smacx.scenarios import Scenario
from marlrepro.envs.smacx.state import UnitState
from marlrepro.envs.smacx.units import (
    MARAUDER,
    MARINE,
    MEDIVAC,
    NUM_UNIT_TYPES,
    STALKER,
    ZEALOT,
    UnitTable,
)

# SMAC v1's unit-type bits per map: the unit type with type id 0, 1, ... for allies and for enemies
# (the number of ids is smac_maps.py's ``unit_type_bits``). Allies are numbered by SMAC's
# map-specific unit types from the smallest (``_init_ally_unit_types``), enemies by
# ``get_unit_type_id``'s SC2 ids, which on "stalkers_and_zealots" maps put the zealot (SC2 id 73)
# before the stalker (74); "marines" and "stalkers" maps (3s_vs_5z) have no type bits.
SMAC_TYPE_IDS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "3m": ((), ()),
    "8m": ((), ()),
    "5m_vs_6m": ((), ()),
    "8m_vs_9m": ((), ()),
    "3s_vs_5z": ((), ()),
    "3s5z": ((STALKER, ZEALOT), (ZEALOT, STALKER)),
    "MMM2": ((MARAUDER, MARINE, MEDIVAC), (MARAUDER, MARINE, MEDIVAC)),
}

# SMAC's action id of our actions 0-4 (north, east, south, west, stop); targets: ours + 1.
SMAC_MOVE_IDS = np.array([2, 4, 3, 5, 1])
# Our action index of SMAC's move features north, south, east, west.
SMAC_MOVE_ORDER = np.array([0, 2, 1, 3])
NUM_MOVE_FEATURES = len(SMAC_MOVE_ORDER)


def _type_bit_rows(type_ids: tuple[int, ...]) -> tuple[tuple[float, ...], ...]:
    """Row ``t`` (unit type) of SMAC's type one-hot: 1 at ``type_ids.index(t)``, zeros if absent."""
    rows = np.zeros((NUM_UNIT_TYPES, len(type_ids)), dtype=np.float32)
    rows[list(type_ids), np.arange(len(type_ids))] = 1.0
    return tuple(map(tuple, rows))


@dataclass(frozen=True)
class View:
    """Static facts of the observation and state layout of one scenario (build with :meth:`of`)."""

    num_allies: int
    num_enemies: int
    num_ally_actions: int
    ally_shields: bool
    enemy_shields: bool
    own_position: bool
    ally_type_bits: tuple[tuple[float, ...], ...]  # [NUM_UNIT_TYPES, T] one-hot row per unit type
    enemy_type_bits: tuple[tuple[float, ...], ...]
    map_size: tuple[float, float]

    @classmethod
    def of(cls, scenario: Scenario, table: UnitTable, num_ally_actions: int, map_size: tuple[float, float]) -> View:
        """The layout of ``scenario``: SMAC's per-map type bits, or the race's 3 types on SMACv2."""
        if scenario.race is not None:
            ally_ids = enemy_ids = scenario.race.unit_types
            ally_types = enemy_types = scenario.race.unit_types
        else:
            ally_ids, enemy_ids = SMAC_TYPE_IDS[scenario.name]
            ally_types, enemy_types = scenario.ally_types, scenario.enemy_types
        shields = np.asarray(table.shields) > 0
        return cls(
            num_allies=scenario.num_allies,
            num_enemies=scenario.num_enemies,
            num_ally_actions=num_ally_actions,
            ally_shields=bool(shields[list(ally_types)].any()),
            enemy_shields=bool(shields[list(enemy_types)].any()),
            own_position=scenario.race is not None,
            ally_type_bits=_type_bit_rows(ally_ids),
            enemy_type_bits=_type_bit_rows(enemy_ids),
            map_size=map_size,
        )

    @property
    def type_bits(self) -> int:
        """SMAC's ``unit_type_bits``."""
        return len(self.ally_type_bits[0])

    @property
    def enemy_block(self) -> int:
        """Observation features per enemy."""
        return 5 + int(self.enemy_shields) + self.type_bits

    @property
    def ally_block(self) -> int:
        """Observation features per other ally."""
        return 5 + int(self.ally_shields) + self.type_bits

    @property
    def own_size(self) -> int:
        """Own observation features."""
        return 1 + int(self.ally_shields) + 2 * int(self.own_position) + self.type_bits

    @property
    def other_units(self) -> slice:
        """Where the enemy and ally blocks lie in an observation."""
        start = NUM_MOVE_FEATURES
        return slice(start, start + self.num_enemies * self.enemy_block + (self.num_allies - 1) * self.ally_block)

    @property
    def obs_size(self) -> int:
        return self.other_units.stop + self.own_size

    @property
    def last_action_size(self) -> int:
        """SMAC's ``n_actions``: ours plus SMAC's no-op."""
        return self.num_ally_actions + 1

    @property
    def ally_state_size(self) -> int:
        """State features per ally (the state's first ``num_allies`` blocks)."""
        return 4 + int(self.ally_shields) + self.type_bits

    @property
    def state_size(self) -> int:
        enemy = 3 + int(self.enemy_shields) + self.type_bits
        return self.num_allies * (self.ally_state_size + self.last_action_size) + self.num_enemies * enemy

    def obs_feature_names(self) -> list[str]:
        """Names of the observation features, as SMACv2's ``build_obs_feature_names`` (ally 0's view)."""
        bits = range(self.type_bits)
        names = ["move_action_north", "move_action_south", "move_action_east", "move_action_west"]
        for e in range(self.num_enemies):
            names += [f"enemy_shootable_{e}", f"enemy_distance_{e}", f"enemy_relative_x_{e}",
                      f"enemy_relative_y_{e}", f"enemy_health_{e}"]
            names += [f"enemy_shield_{e}"] * self.enemy_shields
            names += [f"enemy_unit_type_{e}_bit_{b}" for b in bits]
        for j in range(1, self.num_allies):
            names += [f"ally_visible_{j}", f"ally_distance_{j}", f"ally_relative_x_{j}",
                      f"ally_relative_y_{j}", f"ally_health_{j}"]
            names += [f"ally_shield_{j}"] * self.ally_shields
            names += [f"ally_unit_type_{j}_bit_{b}" for b in bits]
        names += ["own_health"] + ["own_shield"] * self.ally_shields
        names += ["own_pos_x", "own_pos_y"] * self.own_position
        return names + [f"own_unit_type_bit_{b}" for b in bits]

    def state_feature_names(self) -> list[str]:
        """Names of the state features, as SMACv2's ``build_state_feature_names``."""
        bits = range(self.type_bits)
        names = []
        for i in range(self.num_allies):
            names += [f"ally_health_{i}", f"ally_cooldown_{i}", f"ally_relative_x_{i}", f"ally_relative_y_{i}"]
            names += [f"ally_shield_{i}"] * self.ally_shields
            names += [f"ally_unit_type_{i}_bit_{b}" for b in bits]
        for e in range(self.num_enemies):
            names += [f"enemy_health_{e}", f"enemy_relative_x_{e}", f"enemy_relative_y_{e}"]
            names += [f"enemy_shield_{e}"] * self.enemy_shields
            names += [f"enemy_unit_type_{e}_bit_{b}" for b in bits]
        for i in range(self.num_allies):
            names += [f"ally_last_action_{i}_action_{k}" for k in range(self.last_action_size)]
        return names

    def type_bits_of(self, types: jax.Array) -> tuple[jax.Array, jax.Array]:
        """SMAC's type bits of the allies ``[A, T]`` and of the enemies ``[E, T]`` (types ``[N]``)."""
        ally = jnp.asarray(np.asarray(self.ally_type_bits, dtype=np.float32))
        enemy = jnp.asarray(np.asarray(self.enemy_type_bits, dtype=np.float32))
        return ally[types[: self.num_allies]], enemy[types[self.num_allies :]]

    def other_allies(self) -> np.ndarray:
        """``[A, A - 1]``: the k-th other ally of ally i (i itself skipped)."""
        k = np.arange(self.num_allies - 1)
        return k[None, :] + (k[None, :] >= np.arange(self.num_allies)[:, None])


def smac_action_ids(actions: jax.Array, acted: jax.Array) -> jax.Array:
    """SMAC's action id ``[A]`` of our actions ``[A]``; 0 (no-op) where the ally was dead (``~acted``)."""
    ids = jnp.where(
        actions < NUM_MOVEMENT_ACTIONS,
        jnp.asarray(SMAC_MOVE_IDS)[jnp.clip(actions, 0, NUM_MOVEMENT_ACTIONS - 1)],
        actions + 1,
    )
    return jnp.where(acted, ids, 0)


def _fractions(table: UnitTable, state: UnitState) -> tuple[jax.Array, jax.Array]:
    """Health and shield fractions ``[N]`` (shield 0 for unshielded types)."""
    types = state.unit_types
    return (
        state.unit_health / table.health[types],
        state.unit_shields / jnp.maximum(table.shields[types], 1.0),
    )


def _unit_blocks(
    offset: jax.Array,
    seen: jax.Array,
    sight: jax.Array,
    first: jax.Array,
    health: jax.Array,
    shield: jax.Array | None,
    bits: jax.Array,
) -> jax.Array:
    """SMAC's per-unit blocks ``[A, K, F]``: ``first``, distance and offset over sight, health,
    [shield], type bits; zeros unless ``seen`` (alive) and strictly within ``sight`` ``[A]``."""
    distance = jnp.linalg.norm(offset, axis=-1)
    visible = seen & (distance < sight[:, None])
    scale = jnp.where(sight > 0, sight, 1.0)[:, None]  # sight 0: nothing visible, nothing divided
    columns = [first, distance / scale, offset[..., 0] / scale, offset[..., 1] / scale, health]
    if shield is not None:
        columns.append(shield)
    block = jnp.concatenate([jnp.stack(columns, axis=-1), bits], axis=-1)
    return jnp.where(visible[..., None], block, 0.0)


def ally_observations(
    table: UnitTable, state: UnitState, view: View, sight: jax.Array, avail: jax.Array
) -> jax.Array:
    """Observations ``[A, obs_size]`` of the allies (layout in the module docstring).

    ``sight`` ``[A]`` is each ally's sight range; ``avail`` ``[A, num_ally_actions]`` the allies'
    available-action mask, the source of the move bits and the available-to-attack bits.
    """
    a, e = view.num_allies, view.num_enemies
    positions, alive, types = state.unit_positions, state.unit_alive, state.unit_types
    health, shield = _fractions(table, state)
    avail = avail.astype(jnp.float32)
    ally_bits, enemy_bits = view.type_bits_of(types)
    own_alive = alive[:a]

    enemies = _unit_blocks(
        positions[None, a:] - positions[:a, None],
        own_alive[:, None] & alive[None, a:],
        sight,
        avail[:, NUM_MOVEMENT_ACTIONS : NUM_MOVEMENT_ACTIONS + e],
        jnp.broadcast_to(health[a:], (a, e)),
        jnp.broadcast_to(shield[a:], (a, e)) if view.enemy_shields else None,
        jnp.broadcast_to(enemy_bits, (a, *enemy_bits.shape)),
    )
    others = view.other_allies()
    allies = _unit_blocks(
        positions[others] - positions[:a, None],
        own_alive[:, None] & alive[others],
        sight,
        jnp.ones(others.shape),
        health[others],
        shield[others] if view.ally_shields else None,
        ally_bits[others],
    )
    own = [health[:a, None]]
    if view.ally_shields:
        own.append(shield[:a, None])
    if view.own_position:
        own.append(positions[:a] / jnp.asarray(view.map_size))
    own.append(ally_bits)
    obs = jnp.concatenate(
        [avail[:, SMAC_MOVE_ORDER], enemies.reshape(a, -1), allies.reshape(a, -1), *own], axis=1
    )
    return jnp.where(own_alive[:, None], obs, 0.0)


def world_state(table: UnitTable, state: UnitState, view: View) -> jax.Array:
    """Global state ``[state_size]``, SMAC's ``get_state`` (layout in the module docstring)."""
    a = view.num_allies
    types, alive = state.unit_types, state.unit_alive
    health, shield = _fractions(table, state)
    size = jnp.asarray(view.map_size)
    centred = (state.unit_positions - size / 2) / size
    cooldown = jnp.clip(state.unit_weapon_cooldowns / table.cooldown[types], 0.0, 1.0)
    energy = state.unit_energy / jnp.maximum(table.max_energy[types], 1.0)
    ally_bits, enemy_bits = view.type_bits_of(types)

    allies = [health[:a, None], jnp.where(table.healer[types[:a]], energy[:a], cooldown[:a])[:, None], centred[:a]]
    if view.ally_shields:
        allies.append(shield[:a, None])
    enemies = [health[a:, None], centred[a:]]
    if view.enemy_shields:
        enemies.append(shield[a:, None])
    allies = jnp.where(alive[:a, None], jnp.concatenate([*allies, ally_bits], axis=1), 0.0)
    enemies = jnp.where(alive[a:, None], jnp.concatenate([*enemies, enemy_bits], axis=1), 0.0)
    last_actions = jax.nn.one_hot(state.ally_last_actions, view.last_action_size)
    return jnp.concatenate([allies.reshape(-1), enemies.reshape(-1), last_actions.reshape(-1)])
