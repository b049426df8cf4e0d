"""JAX pytrees of the extended SMAX: unit state, heuristic-enemy memory, and the env state."""

from __future__ import annotations

import jax
from flax import struct

from marlrepro.envs.smacx._jaxmarl import SMAXState


@struct.dataclass
class UnitState(SMAXState):
    """SMAX's unit state plus the SC2 quantities SMAX lacks (arrays over all units, allies first).

    Inherited: ``done``, ``step``, ``unit_positions``, ``unit_alive``, ``unit_teams``,
    ``unit_health``, ``unit_types``, ``unit_weapon_cooldowns``, ``prev_movement_actions``,
    ``prev_attack_actions``.
    """

    unit_shields: jax.Array  # [N] float, Protoss plasma shields
    unit_energy: jax.Array  # [N] float, Medivac energy
    time_since_damage: jax.Array  # [N] float seconds, for shield regeneration
    ally_last_actions: jax.Array  # [num_allies] int32, SMAC's id of each ally's last action, -1: none yet


@struct.dataclass
class HeuristicState:
    """Memory of the heuristic enemy, one row per enemy."""

    default_target: jax.Array  # [num_enemies, 2] point headed for when no ally is visible
    last_target: jax.Array  # [num_enemies] int32 unit index attacked last step, -1 if none


@struct.dataclass
class EnvState:
    """The env state, shaped as stock ``HeuristicEnemySMAX``'s: ``state.state.unit_alive`` works."""

    state: UnitState
    enemy_policy_state: HeuristicState
