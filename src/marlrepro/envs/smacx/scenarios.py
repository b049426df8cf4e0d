"""The maps of the papers: SMAC maps with SMAC's episode limits and SMACv2's race scenarios.

SMAC maps (IGM-DA, CESMA) have fixed teams. The episode limits are the ``limit`` entries of SMAC's
``smac/env/starcraft2/maps/smac_maps.py`` (the same table is repeated in SMACv2's
``smacv2/env/starcraft2/maps/smac_maps.py``): 3m 60, 8m 120, 5m_vs_6m 70, 8m_vs_9m 120,
3s5z 150, 3s_vs_5z 250, MMM2 180.

SMACv2 scenarios (MIFQ, ME-IGM) are ``{race}_{n}_vs_{m}``. Their teams are sampled every episode
(SMACv2's ``weighted_teams`` distribution with the unit sets, weights and exception types of its
``sc2_gen_{race}.yaml`` configs), start positions are "surrounded" or "reflect" with probability 0.5
each (``surrounded_and_reflect``, ``p: 0.5``, 32 x 32 map), and the episode limit is the ``limit``
of the ``10gen_{race}`` map entries, 200 steps for every team size.

Ranges (SMAC's ``unit_sight_range`` and ``unit_shoot_range``): on SMAC maps every unit sees 9 and
may be ordered to attack (or heal) within 6, whatever its type; its weapon keeps its own range
(an attack order on a unit beyond it makes the unit close in, see :mod:`marlrepro.envs.smacx.combat`).
SMACv2's configs set ``use_unit_ranges: True`` and ``min_attack_range: 2``: sight is the unit
type's (stalker 10, zealot 9, colossus 10, zergling 8, baneling 8, hydralisk 9, marine 9,
marauder 10, medivac 11) and the order range is ``max(weapon range, 2)`` (stalker 6, colossus 7,
hydralisk 5, marine 5, marauder 6, medivac 4; zealot, zergling and baneling 2), which are the
``sight`` and ``attack_range`` columns of :mod:`marlrepro.envs.smacx.units`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx.units import (
    BANELING,
    COLOSSUS,
    HYDRALISK,
    MARAUDER,
    MARINE,
    MEDIVAC,
    STALKER,
    ZEALOT,
    ZERGLING,
    UnitTable,
)
from marlrepro.errors import unknown_choice


@dataclass(frozen=True)
class Race:
    """A SMACv2 race: its three unit types, their sampling weights, and its exception types.

    A team made only of exception types is redrawn (SMACv2: a Medivac alone cannot fight; the zerg
    config lists the Baneling).
    """

    name: str
    unit_types: tuple[int, ...]
    weights: tuple[float, ...]
    exceptions: tuple[int, ...]


RACES = {
    "protoss": Race("protoss", (STALKER, ZEALOT, COLOSSUS), (0.45, 0.45, 0.1), ()),
    "terran": Race("terran", (MARINE, MARAUDER, MEDIVAC), (0.45, 0.45, 0.1), (MEDIVAC,)),
    "zerg": Race("zerg", (ZERGLING, HYDRALISK, BANELING), (0.45, 0.45, 0.1), (BANELING,)),
}


@dataclass(frozen=True)
class Scenario:
    """One map: team sizes, episode limit, either fixed teams (SMAC) or a race (SMACv2), and ranges.

    ``sight_range`` and ``shoot_range`` are SMAC's uniform ``unit_sight_range`` and
    ``unit_shoot_range``; None means SMACv2's per-type ranges (module docstring).
    """

    name: str
    num_allies: int
    num_enemies: int
    episode_limit: int
    ally_types: tuple[int, ...] = ()
    enemy_types: tuple[int, ...] = ()
    race: Race | None = None
    sight_range: float | None = None
    shoot_range: float | None = None

    @property
    def possible_types(self) -> frozenset[int]:
        """Every unit type that can appear in this scenario."""
        if self.race is not None:
            return frozenset(self.race.unit_types)
        return frozenset(self.ally_types + self.enemy_types)

    def unit_ranges(self, table: UnitTable) -> tuple[jax.Array, jax.Array]:
        """(sight range, attack-order range) per unit type, each ``[num unit types]`` float32."""
        sight = table.sight if self.sight_range is None else jnp.full_like(table.sight, self.sight_range)
        shoot = table.attack_range if self.shoot_range is None else jnp.full_like(table.attack_range, self.shoot_range)
        return sight, shoot


# SMAC's StarCraft2Env.unit_sight_range and unit_shoot_range (every unit, every SMAC map).
SMAC_SIGHT_RANGE = 9.0
SMAC_SHOOT_RANGE = 6.0


def _smac(name: str, allies: tuple[int, ...], enemies: tuple[int, ...], limit: int) -> Scenario:
    """A SMAC map with fixed teams and SMAC's uniform ranges."""
    return Scenario(
        name=name,
        num_allies=len(allies),
        num_enemies=len(enemies),
        episode_limit=limit,
        ally_types=allies,
        enemy_types=enemies,
        sight_range=SMAC_SIGHT_RANGE,
        shoot_range=SMAC_SHOOT_RANGE,
    )


# SMAC orders allies by unit type id (marauder, marine, medivac on MMM maps; stalker before zealot).
_SMAC_MAPS = (
    _smac("3m", (MARINE,) * 3, (MARINE,) * 3, 60),
    _smac("8m", (MARINE,) * 8, (MARINE,) * 8, 120),
    _smac("5m_vs_6m", (MARINE,) * 5, (MARINE,) * 6, 70),
    _smac("8m_vs_9m", (MARINE,) * 8, (MARINE,) * 9, 120),
    _smac("3s5z", (STALKER,) * 3 + (ZEALOT,) * 5, (STALKER,) * 3 + (ZEALOT,) * 5, 150),
    _smac("3s_vs_5z", (STALKER,) * 3, (ZEALOT,) * 5, 250),
    _smac(
        "MMM2",
        (MARAUDER,) * 2 + (MARINE,) * 7 + (MEDIVAC,),
        (MARAUDER,) * 3 + (MARINE,) * 8 + (MEDIVAC,),
        180,
    ),
)

SMACV2_SIZES = ((5, 5), (10, 10), (10, 11), (20, 20), (20, 23))
SMACV2_EPISODE_LIMIT = 200  # SMACv2 smac_maps.py: "10gen_protoss" / "10gen_terran" / "10gen_zerg"

_SMACV2_SCENARIOS = tuple(
    Scenario(f"{race.name}_{n}_vs_{m}", n, m, SMACV2_EPISODE_LIMIT, race=race)
    for race in RACES.values()
    for n, m in SMACV2_SIZES
)

_ALL = {scenario.name: scenario for scenario in _SMAC_MAPS + _SMACV2_SCENARIOS}
SCENARIOS = frozenset(_ALL)
SMAC_MAPS = frozenset(scenario.name for scenario in _SMAC_MAPS)
SMACV2_SCENARIOS = frozenset(scenario.name for scenario in _SMACV2_SCENARIOS)


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; an unknown name raises :class:`marlrepro.errors.ConfigError`."""
    if name not in _ALL:
        raise unknown_choice("scenario", name, SCENARIOS)
    return _ALL[name]
