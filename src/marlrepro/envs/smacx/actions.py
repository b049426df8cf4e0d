"""The ally action space (SMAX's, with SMAC's Medivac rule): decoding and availability.

Actions of an ally: 0-3 move north (+y), east (+x), south (-y), west (-x), 4 stop, ``5 + k`` act on
slot ``k`` (``num_enemies`` slots). SMAC numbers them differently (0 no-op, 1 stop, 2 north (+y),
3 south (-y), 4 east (+x), 5 west (-x), ``6 + k`` act on slot ``k``); the directions are the same.
For every unit but the Medivac, slot ``k`` is enemy ``k`` (attack). For a Medivac, slot ``k`` is
ally ``k`` (heal), as SMAC's ``get_avail_agent_actions`` and ``get_agent_action`` do on its MMM
maps and SMACv2 on terran: a Medivac cannot attack.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx.combat import Mechanics
from marlrepro.envs.smacx.state import UnitState
from marlrepro.envs.smacx.units import UnitTable

NUM_MOVEMENT_ACTIONS = 5  # SMAX: four directions and stop
STOP = 4
# Direction of actions 0-4 (SMAX's decoding: north, east, south, west, stop).
MOVE_VECTORS = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [0.0, 0.0]])
# SMAC's can_move looks move_amount / 2 ahead (StarCraft2Env(move_amount=2)).
SMAC_MOVE_PROBE = 1.0


def decode_ally_actions(
    table: UnitTable, rules: Mechanics, state: UnitState, actions: jax.Array, num_allies: int
) -> tuple[jax.Array, jax.Array]:
    """Ally actions ``[num_allies]`` to (move direction ``[A, 2]``, target unit index ``[A]`` or -1)."""
    move = MOVE_VECTORS[jnp.minimum(actions, STOP)]
    slot = actions - NUM_MOVEMENT_ACTIONS
    acts = actions >= NUM_MOVEMENT_ACTIONS
    target = jnp.where(acts, num_allies + slot, -1)
    if rules.healers:
        healer = table.healer[state.unit_types[:num_allies]]
        target = jnp.where(healer & acts, jnp.where(slot < num_allies, slot, -1), target)
    return move, target


def ally_avail_actions(
    table: UnitTable,
    rules: Mechanics,
    state: UnitState,
    shoot_range: jax.Array,
    map_size: jax.Array,
    num_allies: int,
    num_enemies: int,
) -> jax.Array:
    """Available actions ``[num_allies, 5 + num_enemies]`` (uint8), SMAC's rules plus SC2 targeting.

    An alive ally may stop; it may move in a direction when SMAC's ``can_move`` holds: the point
    half of SMAC's ``move_amount`` (2) away in that direction, i.e. 1 unit, lies in a pathable map
    cell. Our open map is pathable everywhere, so that is ``0 <= floor(coordinate) < map size``
    (SMAC's ``int`` truncates towards zero and so also accepts a point less than 1 unit below the
    lower edges; ``floor`` treats both edges alike). Slot ``k`` is available when its unit is alive and within the actor's
    attack-order range ``shoot_range[type]`` (SMAC's ``unit_shoot_range``, ``distance <= range``,
    heals included), and the actor can affect it: anti-air weapons for air targets, friendly
    Biological units other than itself for a Medivac. Dead allies may only stop (SMAX's
    convention; SMAC uses a separate no-op).
    """
    types, alive, positions = state.unit_types, state.unit_alive, state.unit_positions
    ally_types = types[:num_allies]
    ally_alive = alive[:num_allies]
    reach = shoot_range[ally_types][:, None]
    to_enemy = jnp.linalg.norm(positions[:num_allies, None] - positions[None, num_allies:], axis=-1)
    slots = ally_alive[:, None] & alive[None, num_allies:] & (to_enemy <= reach)
    if rules.air:
        slots &= ~table.air[types[num_allies:]][None, :] | table.hits_air[ally_types][:, None]
    if rules.healers:
        to_ally = jnp.linalg.norm(positions[:num_allies, None] - positions[None, :num_allies], axis=-1)
        heal = ally_alive[:, None] & ally_alive[None, :] & table.healable[ally_types][None, :]
        heal &= (to_ally <= reach) & ~jnp.eye(num_allies, dtype=bool)
        heal = jnp.pad(heal, ((0, 0), (0, max(num_enemies - num_allies, 0))))[:, :num_enemies]
        slots = jnp.where(table.healer[ally_types][:, None], heal, slots)
    probe = jnp.floor(positions[:num_allies, None, :] + SMAC_MOVE_PROBE * MOVE_VECTORS[None, :STOP])
    moves = ally_alive[:, None] & jnp.all((probe >= 0) & (probe < map_size), axis=-1)
    stop = jnp.ones((num_allies, 1), dtype=bool)
    return jnp.concatenate([moves, stop, slots], axis=1).astype(jnp.uint8)
