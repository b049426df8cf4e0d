"""Fidelity tests of the extended SMAX (``marlrepro.envs.smacx``): CPU, small maps, few steps.

Programs are compiled with XLA's backend optimisation level 0: these tests check values, and on
the CPU that halves compile time, which dominates here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlrepro.envs.smacx import (
    FULL_SIGHT_KEY,
    SCENARIOS,
    SMAC_MAPS,
    SMACV2_SCENARIOS,
    EnvState,
    ExtendedSMAX,
    make_extended_smax,
)
from marlrepro.envs.smacx.scenarios import RACES
from marlrepro.envs.smacx.units import (
    BANELING,
    COLOSSUS,
    HYDRALISK,
    MARAUDER,
    MARINE,
    MEDIVAC,
    SHIELD_REGEN_DELAY_S,
    SHIELD_REGEN_PER_S,
    STALKER,
    UNIT_TYPES,
    ZEALOT,
    ZERGLING,
)
from marlrepro.errors import ConfigError

FAST_COMPILE = {"xla_backend_optimization_level": 0}
STOP = 4
NORTH, EAST, SOUTH, WEST = range(4)
# SMAC's clock: one env step is step_mul = 8 game loops, at 22.4 game loops per second ("faster").
GAME_LOOP_S = 1 / 22.4
STEP_S = 8 * GAME_LOOP_S
SMAC_LIMITS = {
    "3m": 60,
    "8m": 120,
    "5m_vs_6m": 70,
    "8m_vs_9m": 120,
    "3s5z": 150,
    "3s_vs_5z": 250,
    "MMM2": 180,
}
SMACV2_SIZES = {
    "5_vs_5": (5, 5),
    "10_vs_10": (10, 10),
    "10_vs_11": (10, 11),
    "20_vs_20": (20, 20),
    "20_vs_23": (20, 23),
}


def compiled(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` jit-compiled for ``args`` (cheap CPU optimisation level)."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)


@functools.cache
def env_of(name: str, **options: Any) -> ExtendedSMAX:
    return make_extended_smax(name, **options)


@functools.cache
def reset_of(env: ExtendedSMAX) -> Any:
    """``env.reset``, compiled."""
    return compiled(env.reset, jax.random.key(0))


def _state_of(env: ExtendedSMAX) -> EnvState:
    return reset_of(env)(jax.random.key(0))[1]


@functools.cache
def step_of(env: ExtendedSMAX) -> Any:
    """``env.step_env`` (unbatched, no auto-reset), compiled."""
    return compiled(env.step_env, jax.random.key(0), _state_of(env), stop_all(env))


@functools.cache
def avail_of(env: ExtendedSMAX) -> Any:
    """``env.get_avail_actions``, compiled."""
    return compiled(env.get_avail_actions, _state_of(env))


def stop_all(env: ExtendedSMAX, **overrides: int) -> dict[str, jax.Array]:
    actions = {agent: STOP for agent in env.agents} | overrides
    return {agent: jnp.array(a, dtype=jnp.int32) for agent, a in actions.items()}


def scripted(env: ExtendedSMAX, positions: Any, *, alive: Any = None, types: Any = None) -> EnvState:
    """A freshly reset state with the given positions, alive units and unit types (full health)."""
    state = _state_of(env)
    units = state.state
    types = units.unit_types if types is None else jnp.asarray(types, dtype=jnp.int32)
    alive = jnp.ones(env.num_units, dtype=bool) if alive is None else jnp.asarray(alive)
    units = units.replace(
        unit_types=types,
        unit_positions=jnp.asarray(positions, dtype=jnp.float32),
        unit_alive=alive,
        unit_health=jnp.where(alive, env.table.health[types], 0.0),
        unit_shields=jnp.where(alive, env.table.shields[types], 0.0),
        unit_energy=jnp.where(alive, env.table.start_energy[types], 0.0),
    )
    return state.replace(state=units)


def other_unit_features(env: ExtendedSMAX, obs: jax.Array) -> jax.Array:
    """The enemy and ally blocks of observations ``[..., obs_size]`` (move and own features dropped)."""
    return obs[..., env.view.other_units]


# ---- scenarios, limits, options ------------------------------------------------------------------


def test_scenario_names_sizes_and_smac_episode_limits():
    races = {f"{race}_{size}" for race in ("protoss", "terran", "zerg") for size in SMACV2_SIZES}
    assert set(SMAC_LIMITS) == SMAC_MAPS
    assert races == SMACV2_SCENARIOS
    assert SCENARIOS == SMAC_MAPS | SMACV2_SCENARIOS
    for name, limit in SMAC_LIMITS.items():
        assert env_of(name).max_steps == limit, name
    for name in SMACV2_SCENARIOS:
        env = env_of(name)
        assert env.max_steps == 200
        assert (env.num_allies, env.num_enemies) == SMACV2_SIZES[name.split("_", 1)[1]]
    mmm2 = env_of("MMM2").scenario_spec
    assert sorted(UNIT_TYPES[t].name for t in mmm2.ally_types) == ["marauder"] * 2 + ["marine"] * 7 + [
        "medivac"
    ]
    assert sorted(UNIT_TYPES[t].name for t in mmm2.enemy_types) == ["marauder"] * 3 + ["marine"] * 8 + [
        "medivac"
    ]
    assert make_extended_smax("3m", episode_limit=7).max_steps == 7


def test_bad_options_raise_config_errors():
    with pytest.raises(ConfigError, match=r"valid choices are: .*MMM2"):
        make_extended_smax("MMM3")
    with pytest.raises(ConfigError, match="reward"):
        make_extended_smax("3m", reward="dense")
    with pytest.raises(ConfigError, match="attack_mode"):
        make_extended_smax("3m", attack_mode="weakest")
    with pytest.raises(ConfigError, match="sight_range"):
        make_extended_smax("3m", sight_range=-1)
    with pytest.raises(ConfigError, match="episode_limit"):
        make_extended_smax("3m", episode_limit=0)


# ---- every scenario builds, steps under jit + vmap, and reports won -----------------------------


def _random_rollout(env: ExtendedSMAX, num_envs: int, steps: int) -> Any:
    """Reset ``num_envs`` battles and take ``steps`` uniformly random available actions."""
    n_agents, n_actions = env.num_allies, env.num_ally_actions

    def episode(key: jax.Array):
        obs, state = env.reset(key)
        keys = jax.random.split(key, 2 * steps).reshape(steps, 2)

        def body(state, step_keys):
            avail = jnp.stack(list(env.get_avail_actions(state).values()))
            u = jax.random.uniform(step_keys[0], (n_agents * n_actions,)).reshape(n_agents, n_actions)
            actions = jnp.argmax(jnp.where(avail > 0, u, -1.0), axis=1)
            _, state, rewards, dones, infos = env.step_env(
                step_keys[1], state, dict(zip(env.agents, actions, strict=True))
            )
            return state, (rewards[env.agents[0]], dones["__all__"], infos["won"], env.won(state), avail)

        state, outputs = jax.lax.scan(body, state, keys)
        return obs, outputs

    keys = jax.random.split(jax.random.key(1), num_envs)
    return compiled(jax.vmap(episode), keys)(keys)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_steps_under_jit_and_vmap(name):
    env = env_of(name, full_sight_obs=True)
    obs, (reward, done, won, won_of_state, avail) = _random_rollout(env, num_envs=4, steps=3)
    assert obs[env.agents[0]].shape == (4, env.obs_size)
    assert obs["world_state"].shape == (4, env.state_size)
    assert obs[FULL_SIGHT_KEY].shape == (4, env.num_allies, env.obs_size)
    assert avail.shape == (4, 3, env.num_allies, env.num_ally_actions)
    assert bool(jnp.all(avail[..., STOP] == 1))
    assert won.dtype == jnp.bool_ and won.shape == (4, 3)
    np.testing.assert_array_equal(won, won_of_state)
    assert bool(jnp.all(jnp.isfinite(reward)))
    assert not bool(jnp.any(won & ~done)), "won only on a final step"


def test_state_keeps_its_types_across_steps():
    env = env_of("MMM2")
    _, state = reset_of(env)(jax.random.key(3))
    _, stepped, _, _, _ = step_of(env)(jax.random.key(4), state, stop_all(env))

    def signature(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)

    assert signature(state) == signature(stepped)


# ---- sight range --------------------------------------------------------------------------------


def test_zero_sight_hides_every_unit_but_enemies_still_fight():
    env = env_of("3m", sight_range=0, full_sight_obs=True)
    step, avail = step_of(env), avail_of(env)
    obs, state = reset_of(env)(jax.random.key(5))
    start_health = float(state.state.unit_health[: env.num_allies].sum())
    seen_full = in_range_attack = 0
    key = jax.random.key(6)
    for _ in range(30):
        key, step_key = jax.random.split(key)
        obs, state, _, dones, _ = step(step_key, state, stop_all(env))
        own = jnp.stack([obs[agent] for agent in env.agents])
        assert not bool(jnp.any(other_unit_features(env, own))), "sight 0: no other unit is visible"
        seen_full += int(jnp.any(other_unit_features(env, obs[FULL_SIGHT_KEY])))
        in_range_attack += int(sum(m[5:].sum() for m in avail(state).values()))
        if dones["__all__"]:
            break
    assert float(state.state.unit_health[: env.num_allies].sum()) < start_health, "the enemy kept shooting"
    assert seen_full > 0, "the full-sight view shows the units"
    assert in_range_attack > 0, "available actions still reveal enemies in attack range"


def test_full_sight_view_is_the_default_sight_observation():
    blind = env_of("3m", sight_range=0, full_sight_obs=True)
    obs, _ = reset_of(blind)(jax.random.key(7))
    full = obs[FULL_SIGHT_KEY]
    assert bool(jnp.any(other_unit_features(blind, full))), "allies start within sight of each other"
    own_block = slice(blind.view.other_units.stop, None)
    for i, agent in enumerate(blind.agents):
        np.testing.assert_array_equal(full[i, own_block], obs[agent][own_block])
    default = env_of("3m")
    obs_default, _ = reset_of(default)(jax.random.key(7))
    np.testing.assert_allclose(full, jnp.stack([obs_default[a] for a in default.agents]), atol=1e-6)


# ---- new units and shields ----------------------------------------------------------------------


def test_medivacs_heal_damaged_friends_on_both_sides():
    env = env_of("MMM2")  # allies: 0-1 marauders, 2-8 marines, 9 medivac; enemies 10-21, 21 medivac
    positions = np.array([[4.0 + i, 4.0] for i in range(10)] + [[27.0, 28.0 - i] for i in range(12)])
    positions[9] = [5.0, 5.0]  # ally medivac next to marauder 1 at (5, 4)
    positions[21] = [26.0, 28.0]  # enemy medivac next to enemy marauder 10 at (27, 28)
    state = scripted(env, positions)
    units = state.state
    state = state.replace(state=units.replace(unit_health=units.unit_health.at[1].set(50.0).at[10].set(60.0)))
    avail = avail_of(env)(state)["ally_9"]
    assert avail[5 + 1] == 1 and avail[5 + 9] == 0, "a medivac's slots are allies in heal range, not itself"
    _, after, _, _, _ = step_of(env)(jax.random.key(8), state, stop_all(env, ally_9=5 + 1))
    heal = 12.6 * STEP_S  # SC2 heal rate x one step
    np.testing.assert_allclose(after.state.unit_health[1], 50.0 + heal, rtol=1e-5)
    np.testing.assert_allclose(after.state.unit_energy[9], 50.0 - heal / 3 + 0.7875 * STEP_S, rtol=1e-5)
    assert float(after.state.unit_health[10]) > 60.0, "the heuristic enemy's medivac heals too"


def test_shields_absorb_damage_first_and_regenerate_after_the_delay():
    env = env_of("3s5z")  # allies 0-2 stalkers; enemies 11-15 zealots
    alive = np.zeros(env.num_units, dtype=bool)
    alive[[0, 11]] = True
    positions = np.full((env.num_units, 2), 16.0)
    positions[0], positions[11] = [10.0, 16.0], [14.0, 16.0]
    state = scripted(env, positions, alive=alive)
    step = step_of(env)
    attack = stop_all(env, ally_0=5 + 3)  # enemy slot 3 is unit 11
    _, state, _, _, _ = step(jax.random.key(9), state, attack)
    zealot = UNIT_TYPES[ZEALOT]
    assert float(state.state.unit_shields[11]) == zealot.shields - UNIT_TYPES[STALKER].damage
    assert float(state.state.unit_health[11]) == zealot.health

    units = state.state
    state = state.replace(
        state=units.replace(
            unit_shields=units.unit_shields.at[11].set(5.0),
            unit_weapon_cooldowns=units.unit_weapon_cooldowns.at[0].set(0.0),
        )
    )
    _, state, _, _, _ = step(jax.random.key(10), state, attack)
    assert float(state.state.unit_shields[11]) == 0.0
    assert float(state.state.unit_health[11]) == zealot.health - (UNIT_TYPES[STALKER].damage - 5.0)

    quiet_steps = math.floor(SHIELD_REGEN_DELAY_S / STEP_S) - 1  # still inside the delay
    for i in range(quiet_steps):
        _, state, _, _, _ = step(jax.random.fold_in(jax.random.key(11), i), state, stop_all(env))
    assert float(state.state.unit_shields[11]) == 0.0, "no regeneration within the delay"
    for i in range(4):
        _, state, _, _, _ = step(jax.random.fold_in(jax.random.key(12), i), state, stop_all(env))
    regenerating = float(state.state.time_since_damage[11]) - SHIELD_REGEN_DELAY_S
    assert regenerating > 0
    np.testing.assert_allclose(
        state.state.unit_shields[11], SHIELD_REGEN_PER_S * regenerating, atol=SHIELD_REGEN_PER_S * GAME_LOOP_S
    )
    assert float(state.state.unit_health[11]) == zealot.health - 8.0, "health does not regenerate"


def test_baneling_dies_on_attack_and_splashes_enemies_around_its_target():
    env = env_of("zerg_5_vs_5")
    allies = [BANELING, ZERGLING, ZERGLING, HYDRALISK, HYDRALISK]
    enemies = [HYDRALISK, HYDRALISK, ZERGLING, HYDRALISK, BANELING]  # units 5-9
    ally_positions = [[10, 16], [4, 4], [4, 6], [4, 8], [4, 10]]
    enemy_positions = [[11.5, 16], [12.5, 16], [11.5, 17.5], [20, 20], [28, 28]]
    positions = [*ally_positions, *enemy_positions]
    state = scripted(env, positions, types=[*allies, *enemies])
    avail = avail_of(env)(state)["ally_0"]
    np.testing.assert_array_equal(avail[5:], [1, 0, 0, 0, 0])  # only the hydralisk 1.5 away is in reach
    _, after, _, _, _ = step_of(env)(jax.random.key(13), state, stop_all(env, ally_0=5))
    bane = UNIT_TYPES[BANELING]
    burst = bane.damage + bane.bonus_vs_light  # hydralisks and zerglings are Light
    assert not bool(after.state.unit_alive[0]), "the baneling dies when it attacks"
    health = after.state.unit_health
    np.testing.assert_allclose(health[5:9], [80 - burst, 80 - burst, 0.0, 80.0])  # target, splash x2, far
    assert not bool(after.state.unit_alive[7])


def test_colossus_splash_hits_enemies_around_its_target():
    env = env_of("protoss_5_vs_5")
    allies = [COLOSSUS, STALKER, STALKER, ZEALOT, ZEALOT]
    enemies = [ZEALOT, ZEALOT, STALKER, ZEALOT, COLOSSUS]  # units 5-9
    ally_positions = [[10, 16], [4, 4], [4, 7], [4, 10], [4, 13]]
    enemy_positions = [[16, 16], [16.8, 16], [16, 17.5], [24, 24], [28, 28]]
    positions = [*ally_positions, *enemy_positions]
    state = scripted(env, positions, types=[*allies, *enemies])
    _, after, _, _, _ = step_of(env)(jax.random.key(14), state, stop_all(env, ally_0=5))
    colossus = UNIT_TYPES[COLOSSUS]
    shields = after.state.unit_shields[5:9]
    light_hit = colossus.damage + colossus.bonus_vs_light  # zealots are Light, stalkers not
    np.testing.assert_allclose(shields, [50 - light_hit, 50 - light_hit, 80 - colossus.damage, 50.0])


# ---- battle end with Medivacs -------------------------------------------------------------------


def lined_up(env: ExtendedSMAX) -> np.ndarray:
    """Start positions with the allies in a column at x = 3 and the enemies at x = 29."""
    allies = [[3.0, 2.0 + 1.4 * i] for i in range(env.num_allies)]
    enemies = [[29.0, 2.0 + 1.4 * i] for i in range(env.num_enemies)]
    return np.array(allies + enemies)


def test_only_enemy_medivacs_left_is_a_win_on_terran_and_mmm2():
    terran = env_of("terran_5_vs_5")
    types = [MARINE, MARINE, MARAUDER, MARAUDER, MEDIVAC, MARINE, MARAUDER, MARINE, MEDIVAC, MEDIVAC]
    alive = np.ones(10, dtype=bool)
    alive[5:8] = False  # only the two enemy Medivacs are left (SMACv2's only_medivac_left)
    state = scripted(terran, lined_up(terran), alive=alive, types=types)
    _, _, _, dones, infos = step_of(terran)(jax.random.key(40), state, stop_all(terran))
    assert bool(infos["won"]) and bool(dones["__all__"])
    alive[7] = True  # an enemy marine still fights
    state = scripted(terran, lined_up(terran), alive=alive, types=types)
    _, _, _, dones, infos = step_of(terran)(jax.random.key(40), state, stop_all(terran))
    assert not bool(infos["won"]) and not bool(dones["__all__"])

    mmm2 = env_of("MMM2")  # allies 0-8 fight, 9 is the Medivac; enemies 10-20 fight, 21 is the Medivac
    alive = np.zeros(22, dtype=bool)
    alive[[0, 21]] = True
    state = scripted(mmm2, lined_up(mmm2), alive=alive)
    assert bool(mmm2.won(state)) and bool(mmm2.battle_over(state)), "MMM2: only the enemy Medivac left"
    alive = np.zeros(22, dtype=bool)
    alive[[9, 10]] = True
    state = scripted(mmm2, lined_up(mmm2), alive=alive)
    assert bool(mmm2.battle_over(state)) and not bool(mmm2.won(state)), "only the ally Medivac left: lost"


# ---- the map edge -------------------------------------------------------------------------------


def test_the_map_edge_stops_units_and_blocks_moves_into_it():
    env = env_of("protoss_5_vs_5", enemy_shoots=False)
    types = [STALKER] * 5 + [ZEALOT] * 5
    alive = np.zeros(10, dtype=bool)
    alive[[0, 1, 2, 3, 4, 9]] = True
    walls = [[1.5, 8.0], [8.0, 30.5], [24.0, 1.5], [30.5, 24.0]]  # allies 0-3, 1.5 from an edge
    state = scripted(env, [*walls, [16.0, 16.0], *[[16.0, 16.0]] * 4, [24.0, 12.0]], alive=alive, types=types)
    into = {"ally_0": WEST, "ally_1": NORTH, "ally_2": SOUTH, "ally_3": EAST}
    avail = avail_of(env)
    assert all(int(avail(state)[agent][d]) == 1 for agent, d in into.items()), "1.5 from the edge: may move"
    for i in range(3):
        _, state, _, _, _ = step_of(env)(jax.random.key(41 + i), state, stop_all(env, **into))
    units = state.state
    assert bool(jnp.all(units.unit_alive[:5])), "walking into the edge kills no one"
    r = UNIT_TYPES[STALKER].radius
    stopped = [[r, 8], [8, 32 - r], [24, r], [32 - r, 24]]  # the body touches the edge
    np.testing.assert_allclose(units.unit_positions[:4], stopped, atol=1e-5)
    masks = avail(state)
    for agent, d in into.items():
        assert int(masks[agent][d]) == 0 and int(masks[agent][(d + 2) % 4]) == 1, agent
    np.testing.assert_array_equal(masks["ally_4"][:4], [1, 1, 1, 1])


def test_allies_walking_into_the_edge_do_not_die():
    env = env_of("protoss_5_vs_5", enemy_shoots=False)
    walk = {agent: jnp.array(i % 4, dtype=jnp.int32) for i, agent in enumerate(env.agents)}
    for seed in range(4):
        _, state = reset_of(env)(jax.random.key(50 + seed))
        for t in range(40):  # 40 steps x at least 1.1 map units: every ally reaches its edge
            _, state, _, _, _ = step_of(env)(jax.random.fold_in(jax.random.key(seed), t), state, walk)
        units = state.state
        assert bool(jnp.all(units.unit_alive[: env.num_allies])), f"seed {seed}: an ally died walking"
        assert bool(jnp.all((units.unit_positions >= 0) & (units.unit_positions <= 32)))


# ---- ranges, attack orders, time base -----------------------------------------------------------

# SMACv2 (use_unit_ranges=True, min_attack_range=2): unit_shoot_range and unit_sight_range per type.
SMACV2_SHOOT = {STALKER: 6, ZEALOT: 2, COLOSSUS: 7, ZERGLING: 2, BANELING: 2, HYDRALISK: 5, MARINE: 5,
                MARAUDER: 6, MEDIVAC: 4}  # fmt: skip
SMACV2_SIGHT = {STALKER: 10, ZEALOT: 9, COLOSSUS: 10, ZERGLING: 8, BANELING: 8, HYDRALISK: 9, MARINE: 9,
                MARAUDER: 10, MEDIVAC: 11}  # fmt: skip


def _slot_mask(env: ExtendedSMAX, types: list[int], actor: int, near: int, far: int, reach: float) -> tuple:
    """Availability of the slots of units ``near`` (at ``reach - 0.1`` from ally ``actor``) and ``far``
    (at ``reach + 0.1``), every other unit dead; ``near``/``far`` are allies (heal) or enemies."""
    positions = np.full((env.num_units, 2), 30.0)
    positions[actor] = [10.0, 16.0]
    positions[near] = [10.0 + reach - 0.1, 16.0]
    positions[far] = [10.0, 16.0 - reach - 0.1]
    alive = np.zeros(env.num_units, dtype=bool)
    alive[[actor, near, far]] = True
    mask = avail_of(env)(scripted(env, positions, alive=alive, types=types))[env.agents[actor]]
    slot = (lambda unit: unit) if near < env.num_allies else (lambda unit: unit - env.num_allies)
    return int(mask[5 + slot(near)]), int(mask[5 + slot(far)])


def test_attack_orders_reach_6_on_smac_maps_and_each_types_range_on_smacv2():
    s3z5 = env_of("3s5z")  # allies 0-2 stalkers, 3-7 zealots; enemies from 8
    mmm2 = env_of("MMM2")  # allies 0-1 marauders, 2-8 marines, 9 Medivac (heals allies)
    v1 = [(s3z5, 0, 8, 9), (s3z5, 3, 8, 9), (mmm2, 0, 10, 11), (mmm2, 2, 10, 11), (mmm2, 9, 1, 3)]
    for env, actor, near, far in v1:
        types = list(np.asarray(_state_of(env).state.unit_types))
        assert _slot_mask(env, types, actor, near, far, 6.0) == (1, 0), (env.scenario_spec.name, actor)
    for name in sorted(SMAC_MAPS):
        env = env_of(name)
        units = _state_of(env).state
        np.testing.assert_array_equal(env.unit_shoot_range(units), 6.0, err_msg=name)
        np.testing.assert_array_equal(env.unit_sight_range(units), 9.0, err_msg=name)

    teams = {
        "terran_5_vs_5": [MARINE, MARAUDER, MEDIVAC, MARINE, MARINE] + [MARINE] * 5,
        "protoss_5_vs_5": [STALKER, ZEALOT, COLOSSUS, STALKER, STALKER] + [ZEALOT] * 5,
        "zerg_5_vs_5": [ZERGLING, HYDRALISK, BANELING, ZERGLING, ZERGLING] + [ZERGLING] * 5,
    }
    for name, types in teams.items():
        env = env_of(name)
        units = scripted(env, lined_up(env), types=types).state
        np.testing.assert_array_equal(env.unit_shoot_range(units), [SMACV2_SHOOT[t] for t in types])
        np.testing.assert_array_equal(env.unit_sight_range(units), [SMACV2_SIGHT[t] for t in types])
        for actor in range(3):
            near, far = (3, 4) if types[actor] == MEDIVAC else (5, 6)
            reach = float(SMACV2_SHOOT[types[actor]])
            assert _slot_mask(env, types, actor, near, far, reach) == (1, 0), (name, actor)


@functools.cache
def obs_of(env: ExtendedSMAX) -> Any:
    """``env.get_obs``, compiled."""
    return compiled(env.get_obs, _state_of(env))


def _sees(env: ExtendedSMAX, distance: float) -> bool:
    """Whether ally 0's observation changes when enemy ``num_allies`` (alone with it) moves from
    ``distance`` north of it to the far corner: i.e. whether ally 0 sees that enemy."""
    alive = np.zeros(env.num_units, dtype=bool)
    alive[[0, env.num_allies]] = True
    positions = np.full((env.num_units, 2), 30.0)
    positions[0] = [16.0, 10.0]
    types = [STALKER] * env.num_units
    near = positions.copy()
    near[env.num_allies] = [16.0, 10.0 + distance]
    obs = [obs_of(env)(scripted(env, p, alive=alive, types=types))["ally_0"] for p in (near, positions)]
    return not bool(jnp.array_equal(obs[0], obs[1]))


def test_stalkers_see_9_on_smac_maps_and_10_on_smacv2():
    smac, smacv2 = env_of("3s5z"), env_of("protoss_5_vs_5")
    assert _sees(smac, 8.5) and not _sees(smac, 9.5)
    assert _sees(smacv2, 9.5) and not _sees(smacv2, 10.5)


def test_heuristic_enemy_sees_9_on_smac_maps():
    env = env_of("3s5z")  # enemy 8 is a stalker (per-type sight 10)
    alive = np.zeros(env.num_units, dtype=bool)
    alive[[0, 8]] = True
    for distance, chases in ((8.5, True), (9.5, False)):
        positions = np.full((env.num_units, 2), 30.0)
        positions[8], positions[0] = [16.0, 16.0], [16.0, 16.0 + distance]
        state = scripted(env, positions, alive=alive)
        memory = state.enemy_policy_state  # without a visible ally: head for (2, 2), south-west
        south = memory.replace(default_target=jnp.full_like(memory.default_target, 2.0))
        state = state.replace(enemy_policy_state=south)
        _, after, _, _, _ = step_of(env)(jax.random.key(60), state, stop_all(env))
        moved_north = float(after.state.unit_positions[8, 1]) > 16.0
        assert moved_north == chases, f"ally {distance} away: chased it {moved_north}"


def test_an_attack_order_beyond_weapon_range_closes_in_then_hits():
    env = env_of("3s5z")  # ally 0 stalker (decoy), ally 3 zealot (range 2); enemy 8 stalker
    alive = np.zeros(env.num_units, dtype=bool)
    alive[[0, 3, 8]] = True
    positions = np.full((env.num_units, 2), 30.0)
    positions[8], positions[0], positions[3] = [16.0, 16.0], [16.0, 12.0], [10.5, 16.0]
    state = scripted(env, positions, alive=alive)  # the enemy shoots the closer decoy and stands
    assert int(avail_of(env)(state)["ally_3"][5]) == 1, "5.5 away: within SMAC's attack-order range 6"
    attack = stop_all(env, ally_3=5)  # slot 0: enemy 8
    zealot = UNIT_TYPES[ZEALOT]
    shields = UNIT_TYPES[STALKER].shields
    x = [10.5]
    for i in range(4):
        _, state, _, _, _ = step_of(env)(jax.random.key(70 + i), state, attack)
        x.append(float(state.state.unit_positions[3, 0]))
        if i < 3:  # 3 steps walk 3.375 of the 3.5 needed to come within 2
            assert float(state.state.unit_shields[8]) == shields, f"no hit out of weapon range (step {i})"
    np.testing.assert_allclose(np.diff(x[:4]), zealot.speed * STEP_S, rtol=1e-4)
    assert float(state.state.unit_shields[8]) == shields - zealot.damage, "in range: the zealot hits"
    assert 16.0 - x[-1] < zealot.attack_range


def test_one_step_is_8_game_loops_at_faster_speed():
    env = env_of("3m")
    alive = np.zeros(env.num_units, dtype=bool)
    alive[[0, 3]] = True
    positions = np.full((env.num_units, 2), 28.0)
    positions[0] = [6.0, 16.0]
    state = scripted(env, positions, alive=alive)
    cooldowns = state.state.unit_weapon_cooldowns.at[0].set(1.0)
    state = state.replace(state=state.state.replace(unit_weapon_cooldowns=cooldowns))
    _, after, _, _, _ = step_of(env)(jax.random.key(80), state, stop_all(env, ally_0=EAST))
    marine = UNIT_TYPES[MARINE]
    np.testing.assert_allclose(after.state.unit_positions[0], [6.0 + marine.speed * STEP_S, 16.0], rtol=1e-5)
    np.testing.assert_allclose(after.state.unit_weapon_cooldowns[0], 1.0 - STEP_S, rtol=1e-5)
    assert env.time_per_step * env.world_steps_per_env_step == pytest.approx(STEP_S)


# ---- SMACv2 team and start-position sampling ----------------------------------------------------


@functools.cache
def smacv2_resets(name: str, n: int = 5000) -> tuple[ExtendedSMAX, np.ndarray, np.ndarray]:
    """Unit types and start positions of ``n`` resets."""
    env = env_of(name)

    def draw(key):
        units = env.reset(key)[1].state
        return units.unit_types, units.unit_positions

    keys = jax.random.split(jax.random.key(15), n)
    types, positions = compiled(jax.vmap(draw), keys)(keys)
    return env, np.asarray(types), np.asarray(positions)


@pytest.mark.parametrize("name", sorted(SMACV2_SCENARIOS))
def test_smacv2_teams_follow_the_race_weights(name):
    env, types, positions = smacv2_resets(name)
    race = RACES[name.split("_")[0]]
    a, e = env.num_allies, env.num_enemies
    assert types.shape == (5000, a + e)
    assert set(np.unique(types)) <= set(race.unit_types)
    allies, mirrored, extra = types[:, :a], types[:, a : a + min(a, e)], types[:, a + min(a, e) :]
    assert np.all(np.diff(allies, axis=1) >= 0), "agents are numbered in unit-type order"
    np.testing.assert_array_equal(np.sort(mirrored, axis=1), allies[:, :e], "enemies mirror the allies")
    for team in (allies, extra):
        if team.size and race.exceptions:
            assert not np.any(np.all(np.isin(team, race.exceptions), axis=1)), (
                "never a team of only exceptions"
            )
    # i.i.d. draws with weights 0.45/0.45/0.1: each frequency within 4 standard errors
    for unit_type, weight in zip(race.unit_types, race.weights, strict=True):
        frequency = np.mean(allies == unit_type)
        assert abs(frequency - weight) < 4 * math.sqrt(weight * (1 - weight) / allies.size) + 1e-4, (
            UNIT_TYPES[unit_type].name
        )
    if extra.size:
        assert len(np.unique(extra)) >= 2, "extra enemies are sampled, not all marines"
        if not race.exceptions:
            for unit_type, weight in zip(race.unit_types, race.weights, strict=True):
                frequency = np.mean(extra == unit_type)
                assert abs(frequency - weight) < 4 * math.sqrt(weight * (1 - weight) / extra.size) + 1e-4

    assert np.all((positions > 0) & (positions < 32)), "spawns stay inside the map"
    centre_distance = np.linalg.norm(positions[:, :a] - 16.0, axis=-1).mean(axis=1)
    surrounded = np.mean(centre_distance < 3.0)
    assert abs(surrounded - 0.5) < 4 * math.sqrt(0.25 / 5000), "surrounded and reflect starts, 50% each"


# ---- reward -------------------------------------------------------------------------------------


def _scripted_battle(env: ExtendedSMAX, focus_fire: bool) -> Any:
    """Episode returns of 4 battles in which the allies focus-fire (or stop) and the enemy never shoots.

    Returns (return up to the end, won, episode length), summing rewards until ``dones["__all__"]``.
    """

    def episode(key):
        _, state = env.reset(key)

        def body(carry, step_key):
            state, total, over, won, length = carry
            avail = jnp.stack(list(env.get_avail_actions(state).values()))
            attack = 5 + jnp.argmax(avail[:, 5:], axis=1)
            actions = jnp.where(
                jnp.any(avail[:, 5:], axis=1) & focus_fire, attack, jnp.where(focus_fire, 1, STOP)
            )
            _, state, rewards, dones, infos = env.step_env(
                step_key, state, dict(zip(env.agents, actions, strict=True))
            )
            total = total + jnp.where(over, 0.0, rewards[env.agents[0]])
            won = won | (infos["won"] & ~over)
            length = length + ~over
            return (state, total, over | dones["__all__"], won, length), None

        init = (state, jnp.float32(0.0), jnp.array(False), jnp.array(False), jnp.int32(0))
        (_, total, _, won, length), _ = jax.lax.scan(body, init, jax.random.split(key, env.max_steps + 1))
        return total, won, length

    keys = jax.random.split(jax.random.key(16), 4)
    return compiled(jax.vmap(episode), keys)(keys)


@pytest.mark.parametrize(("reward", "maximum"), [("smac", 20.0), ("smax", 2.0)])
def test_scripted_win_returns_the_maximum(reward, maximum):
    env = env_of("3m", enemy_shoots=False, reward=reward)
    total, won, length = _scripted_battle(env, focus_fire=True)
    assert bool(jnp.all(won))
    assert bool(jnp.all(length < env.max_steps))
    np.testing.assert_allclose(total, maximum, atol=1e-3)


def test_episode_ends_at_the_limit_without_a_win():
    env = env_of("3m", enemy_shoots=False, reward="smac")
    total, won, length = _scripted_battle(env, focus_fire=False)
    assert not bool(jnp.any(won))
    np.testing.assert_array_equal(length, env.max_steps)
    np.testing.assert_array_equal(total, 0.0)
