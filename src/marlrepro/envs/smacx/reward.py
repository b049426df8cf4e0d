"""Battle outcome and the two reward schemes: SMAC's (default) and SMAX's."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx.state import UnitState
from marlrepro.envs.smacx.units import UnitTable

REWARDS = ("smac", "smax")

# SMAC's defaults (StarCraft2Env.__init__): reward_death_value, reward_win, reward_scale_rate.
SMAC_DEATH_VALUE = 10.0
SMAC_WIN_VALUE = 200.0
SMAC_SCALE_RATE = 20.0
SMAX_WIN_BONUS = 1.0  # SMAX's won_battle_bonus


def outcome(table: UnitTable, state: UnitState, num_allies: int) -> tuple[jax.Array, jax.Array]:
    """SMAC's ``update_units`` end codes as (won, battle over) booleans, with Medivacs not counted.

    Lost: no ally left that is not a healer. Won: not lost and no enemy left that is not a healer.
    This is SMACv2's ``only_medivac_left`` (MMM and ``terran_gen`` maps, both sides); on maps
    without Medivacs it is "every ally (enemy) dead". SMAC v1 runs it on MMM maps only, and on the
    enemy side only when exactly one enemy is left and it is a Medivac: the same on MMM2, whose
    enemy has one Medivac. Both sides out in the same step is over, not won (SMAC: a loss on
    Medivac maps, a draw elsewhere; neither is a win).
    """
    fighters = state.unit_alive & ~table.healer[state.unit_types]
    allies_fight = jnp.any(fighters[:num_allies])
    enemies_fight = jnp.any(fighters[num_allies:])
    return allies_fight & ~enemies_fight, ~allies_fight | ~enemies_fight


def _enemy_total(state: UnitState, num_allies: int) -> jax.Array:
    """Health plus shields of every enemy (zero when dead)."""
    return (state.unit_health + state.unit_shields)[num_allies:]


def smac_reward(
    table: UnitTable, before: UnitState, after: UnitState, won: jax.Array, num_allies: int
) -> jax.Array:
    """SMAC's default team reward for one step (``reward_battle`` plus the win bonus, scaled).

    ``|damage dealt to enemy health and shields + 10 per enemy killed| + 200 on a win``, divided by
    ``max_reward / 20`` with ``max_reward = 10 n_enemies + 200 + sum of the enemies' maximum health
    and shields``, so a perfect episode returns 20. SMAC's ``reward_only_positive=True`` ignores
    ally damage, and its ``abs`` turns enemy shield regeneration and healing into positive reward.
    ``max_reward`` uses this episode's enemy team (SMACv2 fixes it from its first episode).
    """
    was_alive = before.unit_alive[num_allies:]
    dealt = jnp.sum(
        jnp.where(was_alive, _enemy_total(before, num_allies) - _enemy_total(after, num_allies), 0.0)
    )
    kills = jnp.sum(was_alive & ~after.unit_alive[num_allies:])
    raw = jnp.abs(dealt + SMAC_DEATH_VALUE * kills) + SMAC_WIN_VALUE * won
    enemy_types = after.unit_types[num_allies:]
    max_reward = (
        SMAC_DEATH_VALUE * enemy_types.shape[0]
        + SMAC_WIN_VALUE
        + jnp.sum(table.health[enemy_types] + table.shields[enemy_types])
    )
    return raw / (max_reward / SMAC_SCALE_RATE)


def smax_reward(
    table: UnitTable, before: UnitState, after: UnitState, won: jax.Array, num_allies: int
) -> jax.Array:
    """SMAX's team reward (``SMAX.compute_reward``): the enemies' summed loss of health (here health
    plus shields) as a fraction of their maximum, divided by the number of enemies, plus 1 on a win."""
    enemy_types = after.unit_types[num_allies:]
    maximum = table.health[enemy_types] + table.shields[enemy_types]
    loss = (_enemy_total(before, num_allies) - _enemy_total(after, num_allies)) / maximum
    return jnp.abs(jnp.sum(loss)) / enemy_types.shape[0] + SMAX_WIN_BONUS * won
