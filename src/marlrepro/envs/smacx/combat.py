"""One world step (one SC2 game loop, 1/22.4 s) of the SMAX physics with SC2's rules, vectorised over units.

Rules kept from SMAX (``SMAX._world_step`` and the steps around it): units move by their speed
along the chosen direction; an attack lands when the target is alive, within the weapon's range
(centre to centre) and the weapon is off cooldown; the cooldown is then reset to the unit's
cooldown plus pysc2-like uniform jitter in ``[-dt, 2 dt]``; all attacks of a world step resolve
simultaneously; overlapping units are pushed apart.

Rules added or changed here (SC2, see :mod:`marlrepro.envs.smacx.units` for the numbers):

* the map edge stops a unit, as SC2's pathing does: a unit's centre stays at least its radius
  inside the map (SMAX instead kills units that touch the edge);
* an attack (heal) order on a unit beyond the weapon's (heal) range makes the attacker walk
  straight towards its target until the target is in range, then attack, as an SC2 attack order
  does (SMAX's attack does nothing out of range);
* only units with an anti-air weapon can hit air units (the Medivac);
* damage hits Protoss shields first, then health; shields regenerate after a delay without damage;
* splash attackers (Colossus, Baneling) also hit every enemy ground unit whose body reaches into a
  disc of ``splash_radius`` around the target;
* a Baneling dies when it attacks;
* a Medivac's "attack" heals a friendly Biological unit in range, continuously, at its heal rate,
  paying one energy per three health restored; energy regenerates.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx.state import UnitState
from marlrepro.envs.smacx.units import (
    HEALTH_PER_ENERGY,
    SHIELD_REGEN_DELAY_S,
    SHIELD_REGEN_PER_S,
    UnitTable,
)


class Intents(NamedTuple):
    """What every unit does during one environment step (allies first, then enemies)."""

    move: jax.Array  # [N, 2] direction (unit vector, or zero to stand still)
    target: jax.Array  # [N] int32 unit index attacked (healed, for healers); -1 for none


class Mechanics(NamedTuple):
    """Which SC2 rules a scenario needs (static): rules for absent unit types are not traced."""

    shields: bool
    healers: bool
    splash: bool
    suicide: bool
    air: bool


def mechanics_for(types: frozenset[int], table: UnitTable) -> Mechanics:
    """The :class:`Mechanics` needed by a scenario whose units are drawn from ``types``."""
    index = jnp.asarray(sorted(types))
    return Mechanics(
        shields=bool(jnp.any(table.shields[index] > 0)),
        healers=bool(jnp.any(table.healer[index])),
        splash=bool(jnp.any(table.splash_radius[index] > 0)),
        suicide=bool(jnp.any(table.suicide[index])),
        air=bool(jnp.any(table.air[index])),
    )


def _order_valid(table: UnitTable, rules: Mechanics, state: UnitState, target: jax.Array) -> jax.Array:
    """Units whose attack (or heal) order can be carried out, range and cooldown aside: alive, target
    alive, an enemy it can hit (SC2: air units need an anti-air weapon) or, for a healer, another
    friendly Biological unit."""
    types, teams = state.unit_types, state.unit_teams
    index = jnp.arange(types.shape[0])
    safe = jnp.maximum(target, 0)
    valid = (target >= 0) & state.unit_alive & state.unit_alive[safe]
    hostile = teams[safe] != teams
    if rules.air:
        hostile &= ~table.air[types[safe]] | table.hits_air[types]
    if not rules.healers:
        return valid & hostile
    healable = ~hostile & table.healable[types[safe]] & (safe != index)
    return valid & jnp.where(table.healer[types], healable, hostile)


def on_map(table: UnitTable, types: jax.Array, positions: jax.Array, map_size: jax.Array) -> jax.Array:
    """Positions ``[N, 2]`` clamped so that each unit's body stays on the map (SC2's pathing edge)."""
    radius = table.radius[types][:, None]
    return jnp.clip(positions, radius, map_size - radius)


def _damage_taken(
    table: UnitTable, rules: Mechanics, state: UnitState, target: jax.Array, fires: jax.Array
) -> jax.Array:
    """Damage received by every unit from this world step's attacks ``fires`` (a [N] mask)."""
    types, positions = state.unit_types, state.unit_positions
    n = types.shape[0]
    safe = jnp.maximum(target, 0)
    per_victim = (
        table.damage[types][:, None] + table.bonus_vs_light[types][:, None] * table.light[types][None, :]
    )
    hits = fires[:, None] & (safe[:, None] == jnp.arange(n)[None, :])
    if rules.splash:
        gap = jnp.linalg.norm(positions[None, :, :] - positions[safe][:, None, :], axis=-1)
        reach = table.splash_radius[types][:, None] + table.radius[types][None, :]
        splashes = fires & (table.splash_radius[types] > 0)
        hits |= (
            splashes[:, None]
            & (gap < reach)
            & (state.unit_teams[None, :] != state.unit_teams[:, None])
            & state.unit_alive[None, :]
            & ~table.air[types][None, :]
        )
    return jnp.sum(jnp.where(hits, per_victim, 0.0), axis=0)


def world_step(
    table: UnitTable,
    rules: Mechanics,
    state: UnitState,
    intents: Intents,
    jitter: jax.Array,
    dt: float,
    map_size: jax.Array,
) -> UnitState:
    """Advance every unit by one world step of ``dt`` seconds (movement, attacks, heals, shields).

    A unit with a valid attack (heal) order whose target is within its weapon's range (centre to
    centre, strictly) stands and fires when off cooldown; beyond it, the unit moves ``speed * dt``
    straight towards the target instead of along ``intents.move``. ``jitter`` ``[N]`` (uniform in
    ``[-dt, 2 dt]``) is added to the cooldown of units that fire.
    """
    types, alive = state.unit_types, state.unit_alive
    offset = state.unit_positions[jnp.maximum(intents.target, 0)] - state.unit_positions
    distance = jnp.linalg.norm(offset, axis=-1)
    ordered = _order_valid(table, rules, state, intents.target)
    ready = ordered & (distance < table.attack_range[types])
    closing = ordered & ~ready
    heading = jnp.where(closing[:, None], offset / jnp.maximum(distance, 1e-6)[:, None], intents.move)
    step = heading * (table.speed[types] * dt)[:, None]
    moved = on_map(table, types, state.unit_positions + step, map_size)
    positions = jnp.where(alive[:, None], moved, state.unit_positions)

    fires = ready & (state.unit_weapon_cooldowns <= 0.0)
    if rules.healers:
        fires &= ~table.healer[types]
    damage = _damage_taken(table, rules, state, intents.target, fires)

    shields = state.unit_shields
    health_damage = damage
    if rules.shields:
        absorbed = jnp.minimum(shields, damage)
        shields = shields - absorbed
        health_damage = damage - absorbed
    health = jnp.maximum(state.unit_health - health_damage, 0.0)

    energy = state.unit_energy
    if rules.healers:
        health, energy = _heal(table, state, intents.target, ready & table.healer[types], health, dt)
    if rules.suicide:
        health = jnp.where(fires & table.suicide[types], 0.0, health)

    since_damage = jnp.where(damage > 0, 0.0, state.time_since_damage + dt)
    if rules.shields:
        regenerating = alive & (since_damage >= SHIELD_REGEN_DELAY_S)
        shields = jnp.where(
            regenerating, jnp.minimum(shields + SHIELD_REGEN_PER_S * dt, table.shields[types]), shields
        )

    cooldowns = jnp.where(fires, table.cooldown[types] + jitter, state.unit_weapon_cooldowns - dt)
    return state.replace(
        unit_positions=positions,
        unit_health=health,
        unit_shields=shields,
        unit_energy=energy,
        time_since_damage=since_damage,
        unit_weapon_cooldowns=cooldowns,
    )


def _heal(
    table: UnitTable, state: UnitState, target: jax.Array, heals: jax.Array, health: jax.Array, dt: float
) -> tuple[jax.Array, jax.Array]:
    """SC2 Medivac Heal: each healing unit restores up to ``heal_rate * dt`` health to its target,
    limited by its energy (3 health per energy) and the target's missing health; energy regenerates
    up to the maximum. Returns the new health and energy."""
    types = state.unit_types
    n = types.shape[0]
    safe = jnp.maximum(target, 0)
    missing = table.health[types[safe]] - health[safe]
    amount = jnp.minimum(table.heal_rate[types] * dt, state.unit_energy * HEALTH_PER_ENERGY)
    amount = jnp.where(heals, jnp.clip(amount, 0.0, jnp.maximum(missing, 0.0)), 0.0)
    received = jnp.sum(jnp.where(safe[:, None] == jnp.arange(n)[None, :], amount[:, None], 0.0), axis=0)
    health = jnp.where(received > 0, jnp.minimum(health + received, table.health[types]), health)
    energy = state.unit_energy - amount / HEALTH_PER_ENERGY + table.energy_regen[types] * dt
    energy = jnp.where(state.unit_alive, jnp.minimum(energy, table.max_energy[types]), state.unit_energy)
    return health, energy


def settle(table: UnitTable, state: UnitState, map_size: jax.Array) -> UnitState:
    """SMAX's end of a world step without its wall deaths: deaths at zero health (shields and energy
    cleared), then one collision push (SMAX's ``_push_units_away``) within each collision layer,
    after which the map edge stops the pushed units (:func:`on_map`)."""
    alive = state.unit_health > 0
    state = state.replace(
        unit_alive=alive,
        unit_shields=jnp.where(alive, state.unit_shields, 0.0),
        unit_energy=jnp.where(alive, state.unit_energy, 0.0),
    )
    state = push_apart(table, state)
    return state.replace(unit_positions=on_map(table, state.unit_types, state.unit_positions, map_size))


def push_apart(table: UnitTable, state: UnitState) -> UnitState:
    """SMAX's collision push (each overlapping pair moves apart by half the relative overlap), with
    SC2's collision layers: air units and Colossi do not collide with small ground units."""
    types, alive = state.unit_types, state.unit_alive
    n = types.shape[0]
    layer = table.collision_layer[types]
    pairs = alive[:, None] & alive[None, :] & (layer[:, None] == layer[None, :])
    delta = state.unit_positions[:, None] - state.unit_positions[None, :]
    distance = jnp.linalg.norm(delta, axis=-1) + jnp.identity(n) + 1e-6
    radii = table.radius[types][:, None] + table.radius[types][None, :]
    overlap = jnp.where(pairs, jax.nn.relu(radii / distance - 1.0), 0.0)
    pushed = state.unit_positions + jnp.sum(delta * overlap[:, :, None], axis=1) / 2
    return state.replace(unit_positions=jnp.where(alive[:, None], pushed, state.unit_positions))
