"""JaxMARL's heuristic enemy, computed from the unit state for all enemies at once, plus a healer rule.

The fighting rule is that of ``jaxmarl.environments.smax.heuristic_enemy`` (jaxmarl 0.2.0), which
reads each enemy's own observation; this version reads the same facts (what lies strictly within
the enemy's sight range, the scenario's: SMAC's 9 on SMAC maps, per type on SMACv2) from the
state, so the enemy keeps its normal sight whatever the allies' sight range is. Attacks use the
weapon's range:

* if an ally it can hit is in attack range: keep attacking last step's target while it stays
  hittable, else attack the closest such ally (``attack_mode="closest"``) or a uniformly random one
  (``"random"``);
* otherwise, if it sees an ally: move towards a randomly chosen visible ally (redrawn every step);
* otherwise: head for its start position mirrored through the map centre.

A healer (Medivac) follows SC2's auto-cast Heal instead: heal the friendly Biological unit in heal
range with the lowest health fraction, if any is damaged; otherwise fly towards the nearest visible
damaged friendly Biological unit (or the nearest such unit when none is damaged), holding position
within half its heal range; with none in sight it follows the fighting rule's movement.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx.actions import MOVE_VECTORS, NUM_MOVEMENT_ACTIONS, STOP
from marlrepro.envs.smacx.combat import Mechanics
from marlrepro.envs.smacx.state import HeuristicState, UnitState
from marlrepro.envs.smacx.units import UnitTable

ATTACK_MODES = ("closest", "random")


def initial_heuristic_state(state: UnitState, num_allies: int, map_size: jax.Array) -> HeuristicState:
    """Each enemy's default target: its start position rotated 180 degrees about the map centre."""
    start = state.unit_positions[num_allies:]
    return HeuristicState(
        default_target=map_size - start,
        last_target=jnp.full(start.shape[0], -1, dtype=jnp.int32),
    )


def _move_towards(vector: jax.Array) -> jax.Array:
    """SMAX heuristic's movement: the cardinal direction (action 0-3) most aligned with ``vector``."""
    return jnp.argmax(vector @ MOVE_VECTORS[:STOP].T, axis=-1)


def enemy_actions(
    table: UnitTable,
    rules: Mechanics,
    state: UnitState,
    sight_range: jax.Array,
    memory: HeuristicState,
    noise: jax.Array,
    num_allies: int,
    attack_mode: str,
    shoot: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, HeuristicState]:
    """Actions of every enemy: (move direction ``[E, 2]``, target unit index ``[E]`` or -1,
    SMAX-style attack code ``[E]`` (0 when not attacking) for the observations, new memory).

    ``sight_range`` ``[num unit types]`` is the scenario's sight per type. ``noise`` ``[2, E, A]``
    is uniform in [0, 1): Gumbel noise for the random attack target and for the random visible
    ally to chase.
    """
    a = num_allies
    types, alive, positions = state.unit_types, state.unit_alive, state.unit_positions
    enemy_types = types[a:]
    me = positions[a:]
    to_ally = positions[None, :a] - me[:, None]
    ally_distance = jnp.linalg.norm(to_ally, axis=-1)
    sight = sight_range[enemy_types][:, None]
    visible = alive[a:, None] & alive[None, :a] & (ally_distance < sight)
    hittable = visible & (ally_distance < table.attack_range[enemy_types][:, None])
    if rules.air:
        hittable &= ~table.air[types[:a]][None, :] | table.hits_air[enemy_types][:, None]
    if rules.healers:
        hittable &= ~table.healer[enemy_types][:, None]

    gumbel = -jnp.log(-jnp.log(jnp.clip(noise, 1e-12, 1.0 - 1e-7)))  # Gumbel-max: uniform choices
    if attack_mode == "random":
        fresh = jnp.argmax(jnp.where(hittable, gumbel[0], -jnp.inf), axis=-1)
    else:
        fresh = jnp.argmin(jnp.where(hittable, ally_distance, jnp.inf), axis=-1)
    last = jnp.maximum(memory.last_target, 0)
    keep = (memory.last_target >= 0) & jnp.take_along_axis(hittable, last[:, None], axis=1)[:, 0]
    attack_target = jnp.where(keep, last, fresh)
    attacks = jnp.any(hittable, axis=1) & shoot

    chased = jnp.argmax(jnp.where(visible, gumbel[1], -jnp.inf), axis=-1)
    goal = jnp.where(jnp.any(visible, axis=1)[:, None], positions[chased], memory.default_target)
    move_action = _move_towards(goal - me)
    target = jnp.where(attacks, attack_target, -1)
    code = jnp.where(attacks, NUM_MOVEMENT_ACTIONS + a - 1 - attack_target, 0)
    if rules.healers:
        move_action, target, code = _healer_actions(table, state, sight, a, move_action, target, code)
    new_memory = memory.replace(last_target=jnp.where(attacks, attack_target, -1).astype(jnp.int32))
    acting = target >= 0
    move = jnp.where(acting[:, None], 0.0, MOVE_VECTORS[move_action])
    return move, target, code, new_memory


def _healer_actions(
    table: UnitTable,
    state: UnitState,
    sight: jax.Array,
    num_allies: int,
    move_action: jax.Array,
    target: jax.Array,
    code: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Replace the fighting rule's choice by the healer rule for enemy healers (module docstring);
    ``sight`` ``[E, 1]`` is each enemy's sight range."""
    a = num_allies
    n = state.unit_types.shape[0]
    types, alive, positions = state.unit_types, state.unit_alive, state.unit_positions
    enemy_types = types[a:]
    me = positions[a:]
    distance = jnp.linalg.norm(positions[None, a:] - me[:, None], axis=-1)
    fraction = state.unit_health[a:] / table.health[enemy_types]
    friends = alive[a:, None] & alive[None, a:] & table.healable[enemy_types][None, :]
    friends &= ~jnp.eye(n - a, dtype=bool)
    seen = friends & (distance < sight)
    damaged = fraction[None, :] < 1.0
    reach = table.attack_range[enemy_types][:, None]
    in_reach = seen & damaged & (distance < reach)
    heal = jnp.argmin(jnp.where(in_reach, fraction[None, :], jnp.inf), axis=1)
    heals = jnp.any(in_reach, axis=1)
    follow = jnp.argmin(jnp.where(seen, distance + 1e3 * ~damaged, jnp.inf), axis=1)
    follows = jnp.any(seen, axis=1)
    gap = jnp.take_along_axis(distance, follow[:, None], axis=1)[:, 0]
    follow_action = jnp.where(gap < reach[:, 0] / 2, STOP, _move_towards(positions[a + follow] - me))

    healer = table.healer[enemy_types]
    move_action = jnp.where(healer & follows, follow_action, move_action)
    heal_target = jnp.where(heals, a + heal, -1)
    target = jnp.where(healer, heal_target, target)
    heal_code = NUM_MOVEMENT_ACTIONS + n - 1 - heal_target
    code = jnp.where(healer, jnp.where(heals, heal_code, 0), code)
    return move_action, target, code
