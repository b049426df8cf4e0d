"""The extended SMAX's observations and state carry SMAC's features, in SMAC's order, and no others.

The expected layouts are written from the references, not from our code: SMAC v1's
``smac/env/starcraft2/starcraft2.py`` (``get_obs_agent``, ``get_obs_*_feats_size``,
``get_state_dict``, ``get_state_size``; map parameters from ``maps/smac_maps.py``) with pymarl's
``sc2.yaml`` flags, and SMACv2's ``build_obs_feature_names``/``build_state_feature_names`` with
its ``sc2_gen_*.yaml`` flags (``obs_own_pos``, ``team_gen`` with ``observe: True``). The widths
are the ones SMAC and SMACv2 report for these maps (``get_obs_size``/``get_state_size``).

States are built directly (no reset, no compilation) and the observation functions run eagerly,
so each test takes well under a second.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlrepro.envs.smacx import (
    SCENARIOS,
    EnvState,
    ExtendedSMAX,
    UnitState,
    make_extended_smax,
)
from marlrepro.envs.smacx.observations import (
    ally_observations,
    smac_action_ids,
    world_state,
)
from marlrepro.envs.smacx.units import (
    COLOSSUS,
    MARAUDER,
    MARINE,
    MEDIVAC,
    STALKER,
    ZEALOT,
)


def smac_obs_names(n_agents: int, n_enemies: int, shield_ally: int, shield_enemy: int, type_bits: int,
                   own_pos: bool = False) -> list[str]:
    """SMAC's observation feature list (``obs_all_health``, no last action, no pathing/height grid,
    no timestep; SMACv2: ``obs_own_pos`` and the teammates' type bits of ``team_gen: observe``)."""
    names = ["move_action_north", "move_action_south", "move_action_east", "move_action_west"]
    for e in range(n_enemies):
        names += [f"enemy_shootable_{e}", f"enemy_distance_{e}", f"enemy_relative_x_{e}", f"enemy_relative_y_{e}",
                  f"enemy_health_{e}"]
        if shield_enemy:
            names.append(f"enemy_shield_{e}")
        names += [f"enemy_unit_type_{e}_bit_{b}" for b in range(type_bits)]
    for j in range(1, n_agents):
        names += [f"ally_visible_{j}", f"ally_distance_{j}", f"ally_relative_x_{j}", f"ally_relative_y_{j}",
                  f"ally_health_{j}"]
        if shield_ally:
            names.append(f"ally_shield_{j}")
        names += [f"ally_unit_type_{j}_bit_{b}" for b in range(type_bits)]
    names.append("own_health")
    if shield_ally:
        names.append("own_shield")
    if own_pos:
        names += ["own_pos_x", "own_pos_y"]
    return names + [f"own_unit_type_bit_{b}" for b in range(type_bits)]


def smac_state_names(n_agents: int, n_enemies: int, shield_ally: int, shield_enemy: int, type_bits: int,
                     n_actions: int) -> list[str]:
    """SMAC's state feature list (``state_last_action`` on, no timestep)."""
    names = []
    for i in range(n_agents):
        names += [f"ally_health_{i}", f"ally_cooldown_{i}", f"ally_relative_x_{i}", f"ally_relative_y_{i}"]
        if shield_ally:
            names.append(f"ally_shield_{i}")
        names += [f"ally_unit_type_{i}_bit_{b}" for b in range(type_bits)]
    for e in range(n_enemies):
        names += [f"enemy_health_{e}", f"enemy_relative_x_{e}", f"enemy_relative_y_{e}"]
        if shield_enemy:
            names.append(f"enemy_shield_{e}")
        names += [f"enemy_unit_type_{e}_bit_{b}" for b in range(type_bits)]
    for i in range(n_agents):
        names += [f"ally_last_action_{i}_action_{k}" for k in range(n_actions)]
    return names


# map: (n_agents, n_enemies, ally race Protoss, enemy race Protoss, unit_type_bits, SMACv2 own pos,
#       SMAC's get_obs_size(), get_state_size()); n_actions is SMAC's 6 + n_enemies
REFERENCE = {
    "8m": (8, 8, 0, 0, 0, False, 80, 168),
    "MMM2": (10, 12, 0, 0, 3, False, 176, 322),
    "3s5z": (8, 8, 1, 1, 2, False, 128, 216),
    "3s_vs_5z": (3, 5, 1, 1, 0, False, 48, 68),
    "protoss_5_vs_5": (5, 5, 1, 1, 3, True, 92, 130),
    "terran_10_vs_11": (10, 11, 0, 0, 3, True, 170, 306),
}


# get_obs_size(), get_state_size() of SMAC's StarCraft2Env (v1 maps, default flags) and SMACv2's
# (10gen_<race> with capability_config n_units/n_enemies and team_gen observe, obs_own_pos,
# use_unit_ranges, min_attack_range 2), evaluated from their source for every scenario we serve.
SMAC_WIDTHS = {
    "3m": (30, 48), "8m": (80, 168), "5m_vs_6m": (55, 98), "8m_vs_9m": (85, 179), "3s5z": (128, 216),
    "3s_vs_5z": (48, 68), "MMM2": (176, 322),
    "protoss_5_vs_5": (92, 130), "protoss_10_vs_10": (182, 310), "protoss_10_vs_11": (191, 327),
    "protoss_20_vs_20": (362, 820), "protoss_20_vs_23": (389, 901),
    "terran_5_vs_5": (82, 120), "terran_10_vs_10": (162, 290), "terran_10_vs_11": (170, 306),
    "terran_20_vs_20": (322, 780), "terran_20_vs_23": (346, 858),
    "zerg_5_vs_5": (82, 120), "zerg_10_vs_10": (162, 290), "zerg_10_vs_11": (170, 306),
    "zerg_20_vs_20": (322, 780), "zerg_20_vs_23": (346, 858),
}  # fmt: skip


def units_of(env: ExtendedSMAX, positions: Any, types: Any = None, alive: Any = None, **fields: Any) -> UnitState:
    """A unit state of ``env`` with the given positions (full health, shields and energy); the map's
    teams by default (SMACv2: the race's three types in turn)."""
    n = env.num_units
    spec = env.scenario_spec
    if types is None:
        types = spec.ally_types + spec.enemy_types if spec.race is None else [spec.race.unit_types[k % 3]
                                                                            for k in range(n)]
    types = jnp.asarray(types, dtype=jnp.int32)
    alive = jnp.ones(n, dtype=bool) if alive is None else jnp.asarray(alive)
    values = dict(
        done=jnp.array(False),
        step=jnp.array(0, dtype=jnp.int32),
        unit_positions=jnp.asarray(positions, dtype=jnp.float32),
        unit_alive=alive,
        unit_teams=(jnp.arange(n) >= env.num_allies).astype(jnp.int32),
        unit_health=jnp.where(alive, env.table.health[types], 0.0),
        unit_types=types,
        unit_weapon_cooldowns=jnp.zeros(n),
        prev_movement_actions=jnp.zeros((n, 2)),
        prev_attack_actions=jnp.zeros(n, dtype=jnp.int32),
        unit_shields=jnp.where(alive, env.table.shields[types], 0.0),
        unit_energy=jnp.where(alive, env.table.start_energy[types], 0.0),
        time_since_damage=jnp.zeros(n),
        ally_last_actions=jnp.full(env.num_allies, -1, dtype=jnp.int32),
    )
    return UnitState(**(values | fields))


def cluster(env: ExtendedSMAX, seed: int = 0, spread: float = 3.0) -> np.ndarray:
    """Allies around (12, 16), enemies around (17, 16), all within a few units of each other."""
    rng = np.random.default_rng(seed)
    centre = np.where(np.arange(env.num_units)[:, None] < env.num_allies, [12.0, 16.0], [17.0, 16.0])
    return centre + rng.uniform(-spread, spread, (env.num_units, 2))


def observe(env: ExtendedSMAX, units: UnitState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observations [A, obs], state [S], avail [A, actions]) of ``units``."""
    state = EnvState(state=units, enemy_policy_state=None)
    obs = env.get_obs(state)
    avail = np.stack([np.asarray(m) for m in env.get_avail_actions(state).values()])
    return np.stack([np.asarray(obs[a]) for a in env.agents]), np.asarray(obs["world_state"]), avail


def column(env: ExtendedSMAX, name: str) -> int:
    return env.obs_feature_names.index(name)


# ---- layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_obs_and_state_follow_smacs_feature_lists(name):
    n, m, shield_a, shield_e, bits, own_pos, obs_size, state_size = REFERENCE[name]
    env = make_extended_smax(name)
    assert env.obs_feature_names == smac_obs_names(n, m, shield_a, shield_e, bits, own_pos)
    assert env.state_feature_names == smac_state_names(n, m, shield_a, shield_e, bits, 6 + m)
    assert (env.obs_size, env.state_size) == (obs_size, state_size)
    obs, state, _ = observe(env, units_of(env, cluster(env)))
    assert obs.shape == (n, obs_size) and state.shape == (state_size,)


def test_every_scenario_has_smacs_obs_and_state_widths():
    assert set(SMAC_WIDTHS) == SCENARIOS
    for name, widths in SMAC_WIDTHS.items():
        env = make_extended_smax(name)
        assert (env.obs_size, env.state_size) == widths, name
        assert (len(env.obs_feature_names), len(env.state_feature_names)) == widths, name


def test_no_enemy_last_action_no_enemy_cooldown_and_no_own_position_on_smac_maps():
    env = make_extended_smax("MMM2")
    names = " ".join(env.obs_feature_names + env.state_feature_names)
    assert "own_pos" not in names and "enemy_cooldown" not in names and "enemy_last_action" not in names
    assert "ally_cooldown" not in " ".join(env.obs_feature_names), "SMAC shows cooldowns only in the state"
    base = units_of(env, cluster(env))
    busy = base.replace(
        unit_weapon_cooldowns=jnp.full(env.num_units, 0.3),
        prev_movement_actions=jnp.ones((env.num_units, 2)),
        prev_attack_actions=jnp.full(env.num_units, 7, dtype=jnp.int32),
    )
    obs, state, _ = observe(env, base)
    obs_busy, state_busy, _ = observe(env, busy)
    np.testing.assert_array_equal(obs, obs_busy)  # nobody's cooldown or last action is observed
    changed = {env.state_feature_names[k] for k in np.flatnonzero(state != state_busy)}
    assert changed == {f"ally_cooldown_{i}" for i in range(9)}, "only allies' cooldowns (the Medivac shows energy)"


def test_smacv2_shows_own_position_over_the_map_size():
    env = make_extended_smax("protoss_5_vs_5")
    positions = cluster(env)
    obs, _, _ = observe(env, units_of(env, positions, types=[STALKER, ZEALOT, COLOSSUS, STALKER, ZEALOT] * 2))
    np.testing.assert_allclose(obs[:, column(env, "own_pos_x")], positions[:5, 0] / 32, rtol=1e-6)
    np.testing.assert_allclose(obs[:, column(env, "own_pos_y")], positions[:5, 1] / 32, rtol=1e-6)


# ---- unit-type bits ------------------------------------------------------------------------------


def _bits(values: np.ndarray, names: list[str], prefix: str) -> list[float]:
    return [float(v) for v, name in zip(values, names, strict=True) if name.startswith(prefix)]


def test_type_bits_follow_smacs_ids_per_map():
    # MMM2: marauder 0, marine 1, medivac 2 for both teams (SMAC's map-type "MMM").
    mmm2 = make_extended_smax("MMM2")
    obs, state, _ = observe(mmm2, units_of(mmm2, cluster(mmm2, spread=1.0)))
    names = mmm2.obs_feature_names
    assert mmm2.scenario_spec.ally_types[0] == MARAUDER and mmm2.scenario_spec.ally_types[9] == MEDIVAC
    assert _bits(obs[0], names, "own_unit_type") == [1, 0, 0]
    assert _bits(obs[9], names, "own_unit_type") == [0, 0, 1]
    assert _bits(obs[0], names, "ally_unit_type_9_") == [0, 0, 1]  # the Medivac seen by ally 0
    assert _bits(obs[0], names, "ally_unit_type_2_") == [0, 1, 0]  # a marine
    assert mmm2.scenario_spec.enemy_types[11] == MEDIVAC
    assert _bits(obs[0], names, "enemy_unit_type_11_") == [0, 0, 1]
    assert _bits(state, mmm2.state_feature_names, "enemy_unit_type_0_") == [1, 0, 0]
    # 3s5z: allies stalker 0, zealot 1 (SMAC's own unit types); enemies by SC2 id: zealot 0, stalker 1.
    s3z5 = make_extended_smax("3s5z")
    assert s3z5.scenario_spec.enemy_types[0] == STALKER and s3z5.scenario_spec.enemy_types[7] == ZEALOT
    obs, state, _ = observe(s3z5, units_of(s3z5, cluster(s3z5, spread=1.0)))
    names = s3z5.obs_feature_names
    assert _bits(obs[0], names, "own_unit_type") == [1, 0]  # stalker
    assert _bits(obs[7], names, "own_unit_type") == [0, 1]  # zealot
    assert _bits(obs[0], names, "enemy_unit_type_0_") == [0, 1]  # enemy stalker
    assert _bits(obs[0], names, "enemy_unit_type_7_") == [1, 0]  # enemy zealot
    assert _bits(state, s3z5.state_feature_names, "ally_unit_type_0_") == [1, 0]
    assert _bits(state, s3z5.state_feature_names, "enemy_unit_type_0_") == [0, 1]
    # SMACv2 terran: marine 0, marauder 1, medivac 2 on both teams.
    terran = make_extended_smax("terran_5_vs_5")
    types = [MEDIVAC, MARINE, MARAUDER, MARINE, MARINE, MARAUDER, MEDIVAC, MARINE, MARINE, MARINE]
    obs, _, _ = observe(terran, units_of(terran, cluster(terran, spread=1.0), types=types))
    names = terran.obs_feature_names
    assert _bits(obs[0], names, "own_unit_type") == [0, 0, 1]
    assert _bits(obs[0], names, "ally_unit_type_2_") == [0, 1, 0]
    assert _bits(obs[0], names, "enemy_unit_type_1_") == [0, 0, 1]


# ---- values ----------------------------------------------------------------------------------------


def test_attack_bits_and_move_bits_are_the_available_action_mask():
    env = make_extended_smax("8m_vs_9m", sight_range=9.0)
    positions = np.array([[6.0 + 2 * i, 16.0] for i in range(8)] + [[10.0 + 2.5 * k, 20.0] for k in range(9)])
    obs, _, avail = observe(env, units_of(env, positions))
    names = env.obs_feature_names
    for i in range(env.num_allies):
        for e in range(env.num_enemies):
            visible = np.linalg.norm(positions[8 + e] - positions[i]) < 9.0
            assert obs[i, names.index(f"enemy_shootable_{e}")] == (avail[i, 5 + e] if visible else 0.0)
        np.testing.assert_array_equal(obs[i, :4], avail[i, [0, 2, 1, 3]])  # N, S, E, W from ours N, E, S, W
    assert 0 < obs[:, [names.index(f"enemy_shootable_{e}") for e in range(9)]].sum() < 8 * 9
    # the move bits follow the mask itself, in SMAC's order north, south, east, west
    units = units_of(env, positions)
    sight = jnp.full(8, 9.0)
    for ours, smac in ((0, 0), (1, 2), (2, 1), (3, 3)):  # ours: N, E, S, W
        mask = jnp.zeros((8, env.num_ally_actions), dtype=jnp.uint8).at[:, ours].set(1).at[:, 5 + 4].set(1)
        obs = np.asarray(ally_observations(env.table, units, env.view, sight, mask))
        np.testing.assert_array_equal(obs[:, :4], np.eye(4)[[smac] * 8])
        seen = np.linalg.norm(positions[8 + 4] - positions[:8], axis=1) < 9.0
        np.testing.assert_array_equal(obs[:, names.index("enemy_shootable_4")], seen.astype(float))


def test_distances_and_offsets_are_over_the_sight_range_and_visibility_is_strict():
    env = make_extended_smax("3m")
    positions = np.array([[10.0, 10.0], [13.0, 14.0], [10.0, 19.0], [16.0, 2.0], [10.0, 16.0], [12.0, 10.0]])
    units = units_of(env, positions)
    mask = jnp.ones((3, env.num_ally_actions), dtype=jnp.uint8)
    obs = np.asarray(ally_observations(env.table, units, env.view, jnp.array([9.0, 9.0, 6.0]), mask))
    names = env.obs_feature_names
    row = obs[0]
    # ally 1 at offset (3, 4): distance 5; ally 2 at distance exactly 9: not visible (SMAC: dist < sight)
    np.testing.assert_allclose(row[[names.index(f"ally_{f}_1") for f in ("visible", "distance", "relative_x",
                                                                            "relative_y", "health")]],
                               [1, 5 / 9, 3 / 9, 4 / 9, 1], rtol=1e-6)
    assert not row[[k for k, name in enumerate(names) if name.endswith("_2") and name.startswith("ally_")]].any()
    # enemy 0 at offset (6, -8): distance 10 > 9, hidden; enemy 1 at (0, 6); enemy 2 at (2, 0)
    assert not row[[k for k, name in enumerate(names) if name.startswith("enemy_") and name.endswith("_0")]].any()
    np.testing.assert_allclose(row[[names.index(f"enemy_{f}_1") for f in ("distance", "relative_x", "relative_y")]],
                               [6 / 9, 0, 6 / 9], rtol=1e-6)
    np.testing.assert_allclose(row[[names.index(f"enemy_{f}_2") for f in ("distance", "relative_x", "relative_y")]],
                               [2 / 9, 2 / 9, 0], rtol=1e-6)
    # each ally uses its own sight: ally 2 sees with 6, the enemy at (10, 16) is at 3 from it
    np.testing.assert_allclose(obs[2, names.index("enemy_distance_1")], 3 / 6, rtol=1e-6)
    np.testing.assert_allclose(obs[2, names.index("enemy_relative_y_1")], -3 / 6, rtol=1e-6)


def test_zero_sight_zeroes_every_other_unit_block_without_nans():
    env = make_extended_smax("MMM2", sight_range=0.0, full_sight_obs=True)
    positions = cluster(env, spread=1.0)
    positions[1] = positions[0]  # even a unit at distance 0 stays hidden
    units = units_of(env, positions)
    state = EnvState(state=units, enemy_policy_state=None)
    obs = env.get_obs(state)
    blind = np.stack([np.asarray(obs[a]) for a in env.agents])
    full = np.asarray(obs["full_sight_obs"])
    assert np.isfinite(blind).all() and np.isfinite(full).all()
    others = [k for k, name in enumerate(env.obs_feature_names) if name.startswith(("enemy_", "ally_"))]
    own = [k for k, name in enumerate(env.obs_feature_names) if name.startswith(("own_", "move_"))]
    assert not blind[:, others].any()
    assert full[:, others].any(), "the expert view at normal sight sees them"
    np.testing.assert_array_equal(blind[:, own], full[:, own])
    assert blind[:, :4].all(), "the move bits stay"


def test_dead_observer_sees_all_zeros_and_dead_units_are_zero_in_state():
    env = make_extended_smax("3s5z")
    alive = np.ones(16, dtype=bool)
    alive[[2, 9]] = False
    obs, state, avail = observe(env, units_of(env, cluster(env, spread=1.0), alive=alive))
    assert not obs[2].any() and obs[1].any() and avail[2, 4] == 1
    # the second other-ally slot is ally 2 for observers 0 and 1
    assert not obs[:2, [column(env, f"ally_{f}_2") for f in ("visible", "distance", "health")]].any()
    assert obs[:2, column(env, "ally_visible_3")].all()
    assert not obs[:, column(env, "enemy_health_1")].any() and obs[[0, 1, 3], column(env, "enemy_health_0")].all()
    dead = ["ally_health_2", "ally_cooldown_2", "ally_relative_x_2", "ally_relative_y_2", "ally_shield_2",
            "ally_unit_type_2_bit_0", "ally_unit_type_2_bit_1", "enemy_health_1", "enemy_relative_x_1",
            "enemy_relative_y_1", "enemy_shield_1", "enemy_unit_type_1_bit_0", "enemy_unit_type_1_bit_1"]
    assert not state[[env.state_feature_names.index(name) for name in dead]].any()
    assert state[env.state_feature_names.index("ally_health_1")] == 1


def test_state_positions_are_centred_over_the_map_size_and_last_actions_use_smacs_ids():
    env = make_extended_smax("3m")
    positions = np.array([[8.0, 16.0], [24.0, 4.0], [16.0, 16.0], [20.0, 28.0], [0.0, 0.0], [32.0, 32.0]])
    # ally 0 moved east, ally 1 attacked enemy 2 (our action 7), ally 2 was dead when it acted
    last = smac_action_ids(jnp.array([1, 7, 4]), jnp.array([True, True, False]))
    units = units_of(env, positions, ally_last_actions=last)
    state = np.asarray(world_state(env.table, units, env.view))
    names = env.state_feature_names
    np.testing.assert_allclose(state[[names.index(f"ally_relative_{c}_{i}") for i in range(3) for c in "xy"]],
                               [(8 - 16) / 32, 0, (24 - 16) / 32, (4 - 16) / 32, 0, 0])
    np.testing.assert_allclose(state[[names.index(f"enemy_relative_{c}_2") for c in "xy"]], [0.5, 0.5])
    actions = state[names.index("ally_last_action_0_action_0"):].reshape(3, 9)  # SMAC: 6 + 3 actions
    np.testing.assert_array_equal(actions.argmax(1), [4, 8, 0])  # east, attack enemy 2, no-op
    assert actions.sum() == 3
    np.testing.assert_array_equal(world_state(env.table, units_of(env, positions), env.view)[-27:], 0)


def test_a_step_records_each_allys_last_action_under_smacs_id():
    env = make_extended_smax("3m", enemy_shoots=False)
    alive = np.array([True, True, False, True, True, True])
    units = units_of(env, [[10.0, 16.0], [12.0, 16.0], [14.0, 16.0], [14.0, 17.0], [22.0, 16.0], [24.0, 16.0]],
                     alive=alive)
    state = env.reset(jax.random.key(0))[1].replace(state=units)
    actions = {"ally_0": jnp.int32(2), "ally_1": jnp.int32(5), "ally_2": jnp.int32(4)}  # south, attack 0, stop
    step = jax.jit(env.step_env).lower(jax.random.key(1), state, actions).compile(
        compiler_options={"xla_backend_optimization_level": 0})
    obs, _, _, _, _ = step(jax.random.key(1), state, actions)
    last = np.asarray(obs["world_state"])[-27:].reshape(3, 9)
    np.testing.assert_array_equal(last, np.eye(9)[[3, 6, 0]])  # SMAC: 3 south, 6 attack enemy 0, 0 no-op (dead)
