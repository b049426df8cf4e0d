"""StarCraft II unit statistics of the extended SMAX: one row per unit type, every number sourced.

Rows 0-5 are SMAX's six types with SMAX's own numbers (the constructor defaults of
``jaxmarl.environments.smax.smax_env.SMAX`` in jaxmarl 0.2.0), unchanged except that SMAX's lumped
"health" of the two Protoss units (stalker 160, zealot 150) is split into SC2's health and shields
(80 + 80, 100 + 50), so their totals are SMAX's. Rows 6-8 are new (Medivac, Colossus, Baneling),
with StarCraft II: Legacy of the Void values as listed by Liquipedia (https://liquipedia.net/starcraft2/,
unit pages, no upgrades).

Conventions, inherited from SMAX:

* Time. Most of SMAX's rates (speeds, cooldowns) are SC2's values for the "Faster" game speed, i.e.
  per real-time second; new rates use the same convention (Liquipedia lists both; Faster = Normal
  x 1.4). At Faster, SC2 runs 22.4 game loops per second, and SMAC's environment step is
  ``step_mul = 8`` game loops, 8/22.4 = 0.357 s. The extended SMAX advances one game loop
  (:data:`GAME_LOOP_S`) per world step and :data:`GAME_LOOPS_PER_STEP` world steps per environment
  step, so every rate (movement, cooldowns, shields, heals, energy) runs on SMAC's clock. (Stock
  SMAX uses 1/16 s per world step, 0.5 s per environment step.)
* Ranges are centre-to-centre distances, as SMAX compares them with the distance between unit
  centres; SMAX models melee reach as 2 (zealot, zergling), which the baneling also uses.
* Damage is one number per attack (SC2's armour, upgrades and most attribute bonuses are not
  modelled, as in SMAX). The two new splash attackers keep their bonus against Light units, which
  defines their role; ``light`` marks the SC2 "Light" attribute for that bonus only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import jax
import jax.numpy as jnp

# SC2's game loop at the "Faster" speed (22.4 loops per real second) and SMAC's step_mul (game loops
# per environment step; StarCraft2Env(step_mul=8) in SMAC and SMACv2).
GAME_LOOP_S = 1.0 / 22.4
GAME_LOOPS_PER_STEP = 8

# SC2 plasma shields: 2 shield points per game second after 10 game seconds without taking damage
# (Liquipedia "Plasma Shield"; "Normal" speed). In this table's Faster convention: x 1.4 and / 1.4.
SHIELD_REGEN_PER_S = 2.0 * 1.4
SHIELD_REGEN_DELAY_S = 10.0 / 1.4

# SC2 Medivac "Heal": 3 health restored per energy point (Liquipedia "Medivac", LotV).
HEALTH_PER_ENERGY = 3.0


@dataclass(frozen=True)
class UnitType:
    """Static statistics of one unit type (see the module docstring for units and conventions)."""

    name: str
    shorthand: str
    health: float
    shields: float
    damage: float  # per attack
    bonus_vs_light: float  # extra damage per attack against Light targets
    attack_range: float  # attack or heal range, centre to centre
    cooldown: float  # seconds between attacks
    speed: float  # map units per second
    radius: float
    sight: float
    light: bool  # SC2 "Light" attribute (receives bonus_vs_light)
    air: bool  # flying: only units with hits_air can attack it; collides with air units only
    hits_air: bool
    healable: bool  # SC2 "Biological": a Medivac can heal it
    heal_rate: float = 0.0  # health per second restored to one target; > 0 marks a healer
    start_energy: float = 0.0
    max_energy: float = 0.0
    energy_regen: float = 0.0  # energy per second
    splash_radius: float = 0.0  # > 0: the attack also hits enemies around the target
    suicide: bool = False  # dies when it attacks
    collision_layer: int = 0  # units push each other apart only within the same layer


UNIT_TYPES: tuple[UnitType, ...] = (
    # --- SMAX's six types: every number is SMAX's constructor default (jaxmarl 0.2.0) -----------
    UnitType(
        name="marine",
        shorthand="m",
        health=45.0,  # SMAX; SC2 45
        shields=0.0,  # SC2: Terran, no shields
        damage=9.0,  # SMAX (SC2: 6)
        bonus_vs_light=0.0,  # not modelled for SMAX's types
        attack_range=5.0,  # SMAX; SC2 5
        cooldown=0.61,  # SMAX; SC2 0.61 (Faster)
        speed=3.15,  # SMAX; SC2 3.15 (Faster)
        radius=0.375,  # SMAX; SC2 0.375
        sight=9.0,  # SMAX; SC2 9
        # SC2: Light, Biological; ground/air weapon
        light=True,
        air=False,
        hits_air=True,
        healable=True,
    ),
    UnitType(
        name="marauder",
        shorthand="M",
        health=125.0,  # SMAX; SC2 125
        shields=0.0,
        damage=10.0,  # SMAX; SC2 10 (+10 vs Armored, not modelled)
        bonus_vs_light=0.0,
        attack_range=6.0,  # SMAX; SC2 6
        cooldown=1.07,  # SMAX; SC2 1.07 (Faster)
        speed=2.25,  # SMAX (SC2: 3.15 Faster, 2.25 Normal)
        radius=0.5625,  # SMAX; SC2 0.5625
        sight=10.0,  # SMAX; SC2 10
        # SC2: Armored, Biological; ground weapon
        light=False,
        air=False,
        hits_air=False,
        healable=True,
    ),
    UnitType(
        name="stalker",
        shorthand="s",
        health=80.0,  # SC2 80 (SMAX lumps health + shields: 160)
        shields=80.0,  # SC2 80
        damage=13.0,  # SMAX; SC2 13 (+5 vs Armored, not modelled)
        bonus_vs_light=0.0,
        attack_range=6.0,  # SMAX; SC2 6
        cooldown=1.87,  # SMAX (SC2: 1.34 Faster, 1.87 Normal)
        speed=4.13,  # SMAX; SC2 4.13 (Faster)
        radius=0.625,  # SMAX; SC2 0.625
        sight=10.0,  # SMAX; SC2 10
        # SC2: Armored, Mechanical; ground/air
        light=False,
        air=False,
        hits_air=True,
        healable=False,
    ),
    UnitType(
        name="zealot",
        shorthand="Z",
        health=100.0,  # SC2 100 (SMAX lumps health + shields: 150)
        shields=50.0,  # SC2 50
        damage=8.0,  # SMAX (SC2: 8 x 2 hits per attack)
        bonus_vs_light=0.0,
        attack_range=2.0,  # SMAX's melee approximation (SC2 0.1 edge to edge)
        cooldown=0.86,  # SMAX; SC2 0.86 (Faster)
        speed=3.15,  # SMAX; SC2 3.15 (Faster, without Charge)
        radius=0.5,  # SMAX; SC2 0.5
        sight=9.0,  # SMAX; SC2 9
        # SC2: Light, Biological; melee
        light=True,
        air=False,
        hits_air=False,
        healable=True,
    ),
    UnitType(
        name="zergling",
        shorthand="z",
        health=35.0,  # SMAX; SC2 35
        shields=0.0,
        damage=5.0,  # SMAX; SC2 5
        bonus_vs_light=0.0,
        attack_range=2.0,  # SMAX's melee approximation (SC2 0.1)
        cooldown=0.5,  # SMAX; SC2 0.497 (Faster)
        speed=4.13,  # SMAX; SC2 4.13 (Faster, without Metabolic Boost)
        radius=0.375,  # SMAX; SC2 0.375
        sight=8.0,  # SMAX; SC2 8
        # SC2: Light, Biological; melee
        light=True,
        air=False,
        hits_air=False,
        healable=True,
    ),
    UnitType(
        name="hydralisk",
        shorthand="h",
        health=80.0,  # SMAX (SC2: 90 since patch 4.7.1, 80 before)
        shields=0.0,
        damage=12.0,  # SMAX; SC2 12
        bonus_vs_light=0.0,
        attack_range=5.0,  # SMAX; SC2 5
        cooldown=0.59,  # SMAX; SC2 0.59 (Faster)
        speed=3.15,  # SMAX; SC2 3.15 (Faster, off creep)
        radius=0.625,  # SMAX; SC2 0.625
        sight=9.0,  # SMAX; SC2 9
        # SC2: Light, Biological; ground/air
        light=True,
        air=False,
        hits_air=True,
        healable=True,
    ),
    # --- new types: SC2 LotV values from Liquipedia, Faster game speed -------------------------
    UnitType(
        name="medivac",
        shorthand="V",
        health=150.0,  # SC2 150
        shields=0.0,
        damage=0.0,  # SC2: no weapon
        bonus_vs_light=0.0,
        attack_range=4.0,  # SC2 Heal range 4
        cooldown=1.0,  # unused: healing is continuous; the cooldown feature shows energy (as SMAC)
        speed=3.5,  # SC2 3.5 (Faster, without boost)
        radius=0.75,  # SC2 0.75
        sight=11.0,  # SC2 11
        # SC2: Armored, Mechanical; flying
        light=False,
        air=True,
        hits_air=False,
        healable=False,
        heal_rate=12.6,  # SC2 Heal 12.6 health per second (Faster)
        start_energy=50.0,  # SC2 default starting energy 50
        max_energy=200.0,  # SC2 200
        energy_regen=0.7875,  # SC2 0.7875 per second (Faster; 0.5625 Normal)
        collision_layer=1,  # air units do not collide with ground units
    ),
    UnitType(
        name="colossus",
        shorthand="C",
        health=200.0,  # SC2 200
        shields=150.0,  # SC2 150
        damage=20.0,  # SC2 Thermal Lances 10 x 2 hits
        bonus_vs_light=10.0,  # SC2 +5 vs Light x 2 hits
        attack_range=7.0,  # SC2 7 (9 with Extended Thermal Lance, not modelled)
        cooldown=1.07,  # SC2 1.07 (Faster)
        speed=3.15,  # SC2 3.15 (Faster)
        radius=1.0,  # SC2 1.0
        sight=10.0,  # SC2 10
        # SC2: Armored, Mechanical, Massive
        light=False,
        air=False,
        hits_air=False,
        healable=False,
        splash_radius=1.0,  # approximation of the lance line: a disc of radius 1 around the target
        collision_layer=2,  # SC2: a Colossus walks over small ground units (collides with Colossi)
    ),
    UnitType(
        name="baneling",
        shorthand="b",
        health=30.0,  # SC2 30
        shields=0.0,
        damage=16.0,  # SC2 Volatile Burst 16
        bonus_vs_light=19.0,  # SC2 +19 vs Light
        attack_range=2.0,  # SMAX's melee approximation (SC2 0.25)
        cooldown=1.0,  # unused: the attack kills the baneling
        speed=3.5,  # SC2 3.5 (Faster, without Centrifugal Hooks)
        radius=0.375,  # SC2 0.375
        sight=8.0,  # SC2 8
        # SC2: Biological; ground only
        light=False,
        air=False,
        hits_air=False,
        healable=True,
        splash_radius=2.2,  # SC2 Volatile Burst splash radius 2.2
        suicide=True,  # SC2: the baneling dies when it attacks
    ),
)

MARINE, MARAUDER, STALKER, ZEALOT, ZERGLING, HYDRALISK, MEDIVAC, COLOSSUS, BANELING = range(len(UNIT_TYPES))
NUM_UNIT_TYPES = len(UNIT_TYPES)


class UnitTable(NamedTuple):
    """The numeric columns of :data:`UNIT_TYPES` as arrays indexed by type (float32 or bool)."""

    health: jax.Array
    shields: jax.Array
    damage: jax.Array
    bonus_vs_light: jax.Array
    attack_range: jax.Array
    cooldown: jax.Array
    speed: jax.Array
    radius: jax.Array
    sight: jax.Array
    light: jax.Array
    air: jax.Array
    hits_air: jax.Array
    healable: jax.Array
    heal_rate: jax.Array
    start_energy: jax.Array
    max_energy: jax.Array
    energy_regen: jax.Array
    splash_radius: jax.Array
    suicide: jax.Array
    collision_layer: jax.Array

    @property
    def healer(self) -> jax.Array:
        """Types whose attack actions heal friends instead of hitting enemies (the Medivac)."""
        return self.heal_rate > 0


def unit_table() -> UnitTable:
    """Build the :class:`UnitTable` of :data:`UNIT_TYPES`."""
    columns = {}
    for field in fields(UnitType):
        if field.name in UnitTable._fields:
            values = [getattr(unit, field.name) for unit in UNIT_TYPES]
            dtype = jnp.bool_ if isinstance(values[0], bool) else jnp.float32
            dtype = jnp.int32 if field.name == "collision_layer" else dtype
            columns[field.name] = jnp.asarray(values, dtype=dtype)
    return UnitTable(**columns)
