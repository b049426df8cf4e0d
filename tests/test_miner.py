"""Gold Miner (``miner:easy_2_vs_2``): each rule as a small scripted game with expected energy,
score and positions; the gold drawn at reset; the observation's layout; the action mask;
GreedyBot; the step limit and auto-reset; the batched step against the one-game step; and the
JAX rules against a plain-Python step written from the rules, over random episodes."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from miner_games import game

from marlrepro import env_catalog
from marlrepro.config import load_config
from marlrepro.envs import make, miner, miner_bots
from marlrepro.envs.miner import DIG, DOWN, LEFT, REST, RIGHT, UP, Game
from marlrepro.envs.miner_maps import FOREST, HEIGHT, LAND, MAPS, SWAMP, TRAP, WIDTH
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError

STEP = jax.jit(miner.apply_actions)
AVAIL = jax.jit(miner.avail_actions)
ALLY_AVAIL = jax.jit(miner.ally_avail_actions, static_argnums=1)
OBSERVE = jax.jit(miner.observe, static_argnums=1)
_GREEDY = jax.jit(miner_bots.greedy_action)
B = 4  # every env-level test shares one compiled batch of 4 games (compiling is most of the time)


@pytest.fixture(scope="module")
def env():
    return make("miner:easy_2_vs_2", num_envs=B, seed=1)


def set_games(env, g: Game, target=(-1, -1)) -> None:
    """Put game ``g`` in every environment of ``env`` (bots: GreedyBot, ``target``), none ended."""
    memory = miner.BotMemory.fresh(2)._replace(target=jnp.asarray(target, jnp.int32))
    state = miner.MinerState(game=g, kinds=jnp.zeros(2, jnp.int32), memory=memory)
    batched = jax.tree.map(lambda x: jnp.broadcast_to(x, (env.num_envs, *x.shape)), state)
    # committed to the env's device, as its own states are, so its compiled step serves them
    env._states = jax.device_put((batched, jnp.zeros(env.num_envs, bool)), env._jax_device)


def step(g: Game, actions, forest=(5, 5, 5, 5)) -> Game:
    return STEP(g, jnp.asarray(actions, jnp.int32), jnp.asarray(forest, jnp.int32))


def ints(x) -> list[int]:
    return [int(v) for v in np.asarray(x)]


# ---- registration -----------------------------------------------------------------------------


def test_spec_registration_and_config_validation():
    spec, options = validate_env("miner:easy_2_vs_2")
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.episode_limit) == (2, 199, 398, 6, 100)
    assert options == {}
    assert env_catalog.SCENARIOS["miner"] == miner.SCENARIOS == {"easy_2_vs_2", "medium_2_vs_2", "hard_2_vs_2"}
    assert "miner" in env_catalog.FUSED_BACKENDS
    assert load_config(overrides=["env.name=miner:easy_2_vs_2"]).env.name == "miner:easy_2_vs_2"
    with pytest.raises(ConfigError, match="easy_2_vs_2, hard_2_vs_2, medium_2_vs_2"):
        validate_env("miner:hard_3_vs_3")


def test_the_maps_are_the_references():
    assert len(MAPS) == 12 and all(len(m) == HEIGHT and all(len(r) == WIDTH for r in m) for m in MAPS)
    assert miner_bots.MAX_GOLDS == miner.MAP_GOLD_CELLS.sum((1, 2)).max()  # the bots' gold slots hold every map's
    first = "".join(MAPS[0])  # the note's census of map 1
    assert [first.count(c) for c in "FTS.G"] == [34, 45, 37, 53, 20]


# ---- energy costs -----------------------------------------------------------------------------


def test_entering_land_gold_and_forest_costs():
    g = game([(1, 0), (3, 0), (5, 0), (7, 0)], cells={(6, 0): "F", (8, 0): "F"}, gold={(4, 0): 300})
    g = step(g, [RIGHT, RIGHT, RIGHT, RIGHT], forest=(5, 5, 7, 20))
    assert ints(g.energy) == [49, 46, 43, 30]  # land 1, gold 4, forest as drawn (7, 20)
    assert ints(g.pos[:, 0]) == [2, 4, 6, 8] and ints(g.pos[:, 1]) == [0] * 4


def test_the_forest_cost_is_drawn_from_5_to_20_per_player(env):
    costs = set()
    for _ in range(30):
        set_games(env, game([(1, 0), (1, 1), (20, 8), (20, 8)], cells={(2, 0): "F", (2, 1): "F"}))
        batch = env.step(torch.full((B, 2), RIGHT))
        costs |= set((50 - batch.obs[:, :, -2] * 50).round().long().flatten().tolist())
    assert costs == set(range(5, 21))


def test_a_trap_costs_10_then_becomes_land():
    g = game([(0, 0), (0, 1), (0, 2), (0, 3)], cells={(1, 0): "T"})
    g = step(g, [RIGHT, REST, REST, REST])
    assert int(g.energy[0]) == 40 and int(g.terrain[0, 1]) == LAND
    g = step(step(g, [LEFT, REST, REST, REST]), [RIGHT, REST, REST, REST])
    assert int(g.energy[0]) == 38  # back on the sprung trap: land, 1


def test_a_swamp_costs_5_then_20_40_100_on_later_entries():
    g = game([(0, 0), (5, 5), (5, 6), (5, 7)], cells={(1, 0): "S"}, energy=(500, 50, 50, 50))
    spent = []
    for _ in range(5):
        before = int(g.energy[0])
        g = step(g, [RIGHT, REST, REST, REST])
        spent.append(before - int(g.energy[0]))
        g = step(g, [LEFT, REST, REST, REST])  # back onto land (1)
    assert spent == [5, 20, 40, 100, 100]
    assert int(g.terrain[0, 1]) == SWAMP and int(g.energy[0]) == 500 - 265 - 5


def test_two_players_entering_one_swamp_together_pay_the_same_and_it_worsens_once():
    g = game([(0, 0), (2, 0), (5, 5), (5, 6)], cells={(1, 0): "S"})
    g = step(g, [RIGHT, LEFT, REST, REST])
    assert ints(g.energy[:2]) == [45, 45] and int(g.cost[0, 1]) == 20


def test_dig_costs_5_on_gold_and_10_elsewhere():
    g = game([(0, 0), (1, 0), (5, 5), (5, 6)], gold={(0, 0): 500})
    g = step(g, [DIG, DIG, REST, REST])
    assert ints(g.energy[:2]) == [45, 40] and ints(g.score[:2]) == [50, 0]


def test_rest_recovers_a_quarter_a_third_a_half_then_full_and_a_move_or_dig_resets_the_count():
    def energies(start: int, script: list[int]) -> list[int]:
        g, seen = game([(0, 0), (5, 5), (5, 6), (5, 7)], energy=start), []
        for action in script:
            g = step(g, [action, REST, REST, REST])
            seen.append(int(g.energy[0]))
        return seen

    assert energies(1, [REST] * 4) == [13, 29, 50, 50]  # +12, +16, +25 (54, capped at 50), full
    assert energies(11, [REST, RIGHT, REST, REST]) == [23, 22, 34, 50]  # the move restarts the count
    assert energies(11, [REST, DIG, REST]) == [23, 13, 25]  # so does a dig (off gold: 10)
    g = step(step(game([(0, 0)] * 4, energy=20), [REST] * 4), [REST] * 4)
    assert ints(g.energy) == [48] * 4 and ints(g.rests) == [2] * 4


# ---- elimination and the end of the episode ------------------------------------------------------


def test_running_out_of_energy_eliminates():
    g = game([(0, 0), (0, 1), (0, 2), (5, 5)], cells={(1, 0): "F", (1, 1): "F"}, energy=(5, 6, 1, 50))
    g = step(g, [RIGHT, RIGHT, RIGHT, REST], forest=(5, 5, 5, 5))
    assert ints(g.energy[:3]) == [0, 1, 0]
    assert ints(g.status) == [miner.OUT_OF_ENERGY, miner.PLAYING, miner.OUT_OF_ENERGY, miner.PLAYING]
    assert ints(g.pos[0]) == [1, 0]  # it moved, then dropped
    after = step(g, [LEFT, LEFT, LEFT, REST])
    assert ints(after.pos[0]) == [1, 0] and ints(after.pos[1]) == [0, 1]  # the eliminated do not act


def test_leaving_the_map_or_an_invalid_action_eliminates_and_ends_the_episode():
    g = game([(0, 4), (20, 4), (3, 0), (3, 8)])
    for actions, player, status in [([LEFT, REST, REST, REST], 0, miner.LEFT_MAP),
                                    ([REST, RIGHT, REST, REST], 1, miner.LEFT_MAP),
                                    ([REST, REST, UP, REST], 2, miner.LEFT_MAP),
                                    ([REST, REST, REST, DOWN], 3, miner.LEFT_MAP),
                                    ([6, REST, REST, REST], 0, miner.INVALID_ACTION),
                                    ([REST, -1, REST, REST], 1, miner.INVALID_ACTION)]:
        after = step(g, actions)
        expected = [miner.PLAYING] * 4
        expected[player] = status
        assert ints(after.status) == expected
        assert np.array_equal(np.asarray(after.pos), np.asarray(g.pos))  # stays on its last cell
        task_end, limit = miner.episode_over(after)
        assert bool(task_end) and not bool(limit)


def test_the_episode_ends_when_the_last_gold_is_dug():
    g = game([(4, 4), (4, 4), (9, 8), (0, 0)], gold={(4, 4): 60})
    g = step(g, [DIG, DIG, REST, REST])
    assert ints(g.score) == [30, 30, 0, 0] and int(g.gold.sum()) == 0
    assert bool(miner.episode_over(g)[0])


def test_the_last_step_reports_the_win_of_the_allies_mean_score(env):
    set_games(env, game([(2, 2), (3, 3), (20, 8), (20, 8)], gold={(2, 2): 500, (3, 3): 500}, t=99))
    batch = env.step(torch.tensor([[DIG, DIG], [DIG, REST], [REST, REST], [REST, REST]]))
    assert batch.truncated.all() and not batch.terminated.any()
    assert batch.won.tolist() == [True, True, False, False]  # 50 or 25 a head against 0; 0 against 0 loses
    assert torch.allclose(batch.reward, torch.tensor([1.0, 0.5, 0.0, 0.0]))


def test_the_win_rule_compares_mean_scores():
    g = game([(0, 0)] * 4)
    for scores, won in [((10, 0, 5, 4), True), ((5, 4, 9, 0), False), ((0, 0, 0, 0), False), ((3, 3, 6, 0), False)]:
        assert bool(miner.allies_won(g._replace(score=jnp.asarray(scores, jnp.int32)), 2)) == won


# ---- digging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gold", "diggers", "each", "left"), [
    (75, 2, 38, 0), (250, 2, 50, 150), (100, 3, 34, 0), (60, 1, 50, 10), (101, 2, 50, 1), (1250, 4, 50, 1050),
])
def test_diggers_on_one_cell_split_min_ceil_gold_over_c_and_50(gold, diggers, each, left):
    assert each == min(math.ceil(gold / diggers), 50)
    actions = [DIG] * diggers + [REST] * (4 - diggers)
    g = step(game([(2, 2)] * 4, gold={(2, 2): gold, (9, 8): 500}), actions)
    assert ints(g.score) == [each] * diggers + [0] * (4 - diggers)
    assert int(g.gold[2, 2]) == left


def test_the_reward_is_a_hundredth_of_the_allies_gold(env):
    set_games(env, game([(2, 2), (7, 7), (2, 2), (2, 2)], gold={(2, 2): 130, (7, 7): 40, (15, 0): 900}))
    batch = env.step(torch.full((B, 2), DIG))
    # the two bots on (2, 2) dig too (forced: they stand on their target): 3 diggers, 44 each;
    # ally 1 takes the 40 of (7, 7)
    assert ints(env._states[0].game.score[0]) == [44, 40, 44, 44]
    assert torch.allclose(batch.reward, torch.full((B,), 0.84))
    assert not (batch.terminated.any() or batch.truncated.any() or batch.won.any())
    batch = env.step(torch.full((B, 2), RIGHT))  # allies off the emptied cells: no gold, no reward
    assert (batch.reward == 0).all()


# ---- reset ---------------------------------------------------------------------------------------


def test_gold_is_redrawn_from_the_budget_at_reset():
    keys = jax.random.split(jax.random.key(3), 64)
    games = jax.jit(jax.vmap(lambda k: miner.new_game(k, 4)))(keys)
    gold = np.asarray(games.gold).reshape(64, -1)
    assert (gold % 50 == 0).all() and gold.max() <= 1250
    ids = [next(i for i in range(12) if np.array_equal(np.asarray(games.terrain[b]), miner.MAP_TERRAIN[i])
                and np.array_equal(np.asarray(games.cost[b]), miner.MAP_COST[i])) for b in range(64)]
    assert len(set(ids)) > 6  # maps drawn at random
    over_budget = 0
    for b in range(64):
        cells = miner.MAP_GOLD_CELLS[ids[b]].reshape(-1)
        assert ((gold[b] >= 50) == cells).all()  # every gold cell, and only those, holds gold
        drawn = gold[b][cells]  # in row-major order
        spent = np.concatenate([[0], np.cumsum(drawn)[:-1]])
        assert (drawn <= np.maximum(10_000 - spent, 50)).all()  # within what the budget had left
        assert (drawn[spent >= 10_000] == 50).all()  # once it is spent, 50 per cell
        over_budget += int(drawn.sum() > 10_000)
    assert 0 < over_budget < 64  # the reference's draw may overshoot 10000 by 50 a cell
    np.testing.assert_array_equal(np.asarray(games.pos[:, 0]), np.asarray(games.pos[:, 3]))  # one start cell
    assert len({tuple(p) for p in np.asarray(games.pos[:, 0])}) > 20
    assert (np.asarray(games.energy) == 50).all() and (np.asarray(games.t) == 0).all()


# ---- observation and state ------------------------------------------------------------------------


def test_observation_layout_and_values():
    g = game([(3, 1), (20, 8), (0, 0), (10, 4)], cells={(1, 2): "F", (2, 2): "T", (3, 2): "S"},
             gold={(5, 6): 450}, energy=(25, 50, 50, 50), t=40)
    obs = np.asarray(OBSERVE(g, 2))
    assert obs.shape == (2, 199)
    np.testing.assert_allclose(obs[0, :8], [3 / 21, 1 / 9, 20 / 21, 8 / 9, 0, 0, 10 / 21, 4 / 9], rtol=1e-6)
    np.testing.assert_allclose(obs[1, :8], [20 / 21, 8 / 9, 3 / 21, 1 / 9, 0, 0, 10 / 21, 4 / 9], rtol=1e-6)
    grid = obs[0, 8:197]
    assert grid[1 * 9 + 2] == -1 and grid[2 * 9 + 2] == -0.5 and grid[3 * 9 + 2] == pytest.approx(-1 / 3)
    assert grid[5 * 9 + 6] == pytest.approx(0.45) and (np.count_nonzero(grid) == 4)
    np.testing.assert_allclose(obs[:, 197:], [[0.5, 0.4], [1.0, 0.4]])
    # the map is live: the sprung trap reads land, the gold its new amount
    g = g._replace(pos=jnp.asarray([[2, 1], [5, 6], [0, 0], [10, 4]], jnp.int32))
    after = STEP(g, jnp.asarray([DOWN, DIG, REST, REST]), jnp.full(4, 5))
    grid = np.asarray(OBSERVE(after, 2))[0, 8:197]
    assert grid[2 * 9 + 2] == 0 and grid[5 * 9 + 6] == pytest.approx(0.4)

def test_the_state_is_the_stacked_observations(env):
    first = env.reset()
    assert first.obs.shape == (B, 2, 199) and first.state.shape == (B, 398)
    assert torch.equal(first.state, first.obs.reshape(B, 398))
    assert (first.obs[:, :, :8] == first.obs[:, :1, :2].repeat(1, 2, 4)).all()  # everyone on one cell
    assert (first.obs[:, :, -2:] == torch.tensor([1.0, 0.0])).all()


# ---- the action mask --------------------------------------------------------------------------------


def own_cell(obs: torch.Tensor) -> torch.Tensor:
    """The index of each ally's own cell in its observed map (x-major), [B, N, 1]."""
    x, y = (obs[..., 0] * WIDTH).round().long(), (obs[..., 1] * HEIGHT).round().long()
    return (x * HEIGHT + y).unsqueeze(-1)


def mask(g: Game, player: int = 0, goal=None) -> list[int]:
    golds = miner.reachable_golds(g, g.pos[player]) if goal is None else jnp.asarray(goal)
    return ints(AVAIL(g, player, golds))


def test_the_mask_digs_only_on_gold_and_is_forced_on_rich_gold():
    far = [(10, 4), (10, 5), (10, 6)]
    assert mask(game([(4, 4)] + far, gold={(4, 4): 500, (0, 0): 500}, energy=30)) == [0, 0, 0, 0, 0, 1]
    assert mask(game([(4, 4)] + far, gold={(4, 4): 500, (0, 0): 500}, energy=5)) == [0, 0, 0, 0, 1, 0]  # too weak
    # gold under the player, but shared by 2 and holding less than 50 each: dig not forced
    shared = game([(4, 4), (4, 4), (10, 5), (10, 6)], gold={(4, 4): 90, (0, 0): 500, (20, 8): 500}, energy=30)
    assert mask(shared) == [1, 1, 1, 1, 1, 1]
    land = game([(4, 4)] + far, gold={(0, 0): 500, (20, 8): 500}, energy=30)
    assert mask(land)[DIG] == 0 and mask(land)[:5] == [1, 1, 1, 1, 1]


def test_the_mask_blocks_rest_from_38_and_moves_that_could_drain_or_leave():
    far = [(10, 4), (10, 5), (10, 6)]
    golds = {(0, 0): 500, (20, 8): 500}
    assert mask(game([(4, 4)] + far, gold=golds, energy=38))[REST] == 0
    assert mask(game([(4, 4)] + far, gold=golds, energy=37))[REST] == 1
    assert mask(game([(0, 4)] + far, gold=golds, energy=30))[LEFT] == 0  # off the map
    forest = game([(4, 4)] + far, cells={(5, 4): "F", (3, 4): "S"}, gold=golds, energy=20)
    assert mask(forest)[:4] == [1, 0, 1, 1]  # forest at its worst (20) would leave 0
    forest = forest._replace(cost=forest.cost.at[4, 3].set(20))  # a swamp entered before
    assert mask(forest)[:4] == [0, 0, 1, 1]


def test_the_mask_keeps_moves_inside_the_live_golds_box_and_forces_a_rich_neighbour():
    far = [(10, 0), (10, 1), (10, 2)]
    boxed = game([(4, 4)] + far, gold={(4, 2): 500, (8, 2): 500, (6, 6): 500}, energy=30)
    assert mask(boxed)[:4] == [0, 1, 1, 1]  # x − 1 < 4 = min x
    emptied = boxed._replace(gold=boxed.gold.at[6, 6].set(0))  # the box shrinks with the gold (max y = 2)
    assert mask(emptied)[:4] == [0, 1, 1, 0]
    rich = game([(4, 4)] + far, gold={(5, 4): 200, (0, 0): 500, (20, 8): 500}, energy=30)
    assert mask(rich) == [0, 1, 0, 0, 1, 0]  # only the move onto (5, 4), rest still allowed
    poor = game([(4, 4)] + far, gold={(5, 4): 50, (0, 0): 500, (20, 8): 500}, energy=30)
    assert mask(poor)[:4] == [0, 1, 0, 0]  # 50 · 1 player at distance 1 ≤ 50: still forced
    poorer = game([(4, 4)] + far, gold={(5, 4): 40, (0, 0): 500, (20, 8): 500}, energy=30)
    assert mask(poorer)[:4] == [1, 1, 1, 1]  # under 50: never
    crowded = game([(4, 4), (5, 3), (10, 1), (10, 2)], gold={(5, 4): 50, (0, 0): 500, (20, 8): 500}, energy=30)
    assert mask(crowded)[:4] == [1, 1, 1, 1]
    late = game([(4, 4)] + far, gold={(4, 2): 500, (7, 2): 500, (16, 8): 500}, energy=30, t=94)
    assert mask(late)[:4] == [0, 1, 1, 0]  # (16, 8) lies 16 away with 6 steps left: out of the box


def test_the_mask_is_never_empty_and_offers_dig_only_on_gold(env):
    batch = env.reset()
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        assert batch.avail_actions.any(-1).all()
        on_gold = batch.obs[:, :, 8:197].gather(-1, own_cell(batch.obs)) > 0
        assert not (batch.avail_actions[..., DIG] & ~on_gold.squeeze(-1)).any()
        batch = env.step(torch.randint(0, 6, (B, 2), generator=generator))  # any action, masks or not
    tiny = game([(4, 4)] + [(10, 4)] * 3, cells={(3, 4): "F", (5, 4): "F", (4, 3): "F", (4, 5): "F"},
                gold={(0, 0): 500}, energy=2)
    assert ints(ALLY_AVAIL(tiny, 2)[0]) == [0, 0, 0, 0, 1, 0]  # no move affordable (forest counted at 20)


# ---- GreedyBot ---------------------------------------------------------------------------------------


def GREEDY(g: Game, player: int, target, key):
    """GreedyBot's (action, target) with ``target`` its remembered target cell."""
    memory = jax.tree.map(lambda x: x[0], miner.BotMemory.fresh(1))._replace(target=jnp.int32(target))
    action, memory = _GREEDY(g, player, memory, key)
    return action, memory.target


def test_greedy_walks_to_its_gold_and_digs_it():
    g = game([(10, 0), (10, 1), (0, 0), (20, 8)], gold={(5, 0): 300})
    player, target, key = 2, jnp.int32(-1), jax.random.key(0)
    path = []
    for _ in range(11):
        key, k = jax.random.split(key)
        action, target = GREEDY(g, player, target, k)
        path.append(int(action))
        g = step(g, [REST, REST, int(action), REST])
    assert path == [RIGHT] * 5 + [DIG] * 6  # the only way the mask leaves towards (5, 0), then dig
    assert int(target) == 5 and int(g.score[2]) == 300 and int(g.energy[2]) == 50 - 4 * 1 - 4 - 6 * 5


def test_greedy_picks_one_of_the_two_nearest_golds_at_random():
    g = game([(10, 0), (10, 1), (0, 4), (20, 8)], gold={(2, 4): 500, (0, 7): 500, (0, 0): 500, (20, 0): 500})
    targets = {int(GREEDY(g, 2, jnp.int32(-1), jax.random.key(k))[1]) for k in range(40)}
    assert targets == {4 * 21 + 2, 7 * 21 + 0}  # distances 2 and 3; (0, 0) is 4 away
    kept = {int(GREEDY(g, 2, jnp.int32(0), jax.random.key(k))[1]) for k in range(10)}
    assert kept == {0}  # a target holding more than 50 is kept
    small = g._replace(gold=g.gold.at[0, 0].set(50))
    assert {int(GREEDY(small, 2, jnp.int32(0), jax.random.key(k))[1]) for k in range(40)} == {86, 147}


def test_greedy_digs_any_gold_it_stands_on_and_otherwise_follows_its_mask():
    g = game([(10, 0), (10, 1), (3, 3), (20, 8)], gold={(3, 3): 100, (0, 0): 500})
    for k in range(5):
        assert int(GREEDY(g, 2, jnp.int32(0), jax.random.key(k))[0]) == DIG  # target elsewhere, still digs
    g = game([(10, 0), (10, 1), (3, 3), (20, 8)], gold={(6, 6): 500}, energy=30)
    actions = {int(GREEDY(g, 2, jnp.int32(-1), jax.random.key(k))[0]) for k in range(40)}
    assert actions == {RIGHT, DOWN, REST}  # towards (6, 6), or rest below 38


# ---- the backend: step limit, auto-reset, batching ------------------------------------------------


def test_episodes_are_truncated_at_100_steps_and_restart(env):
    env.reset()
    rest = torch.full((B, 2), REST)
    for t in range(1, 101):
        batch = env.step(rest)
        assert not batch.terminated.any(), t  # resting allies and mask-following bots never drop
        assert bool(batch.truncated.all()) == (t == 100), t
        assert torch.allclose(batch.obs[:, :, -1], torch.full((B, 2), t / 100))
        assert (batch.reward == 0).all()  # only the allies' gold pays
    restarted = env.step(rest)
    assert (restarted.obs[:, :, -1] == 0).all() and (restarted.obs[:, :, -2] == 1).all()
    assert not (restarted.truncated.any() or restarted.terminated.any() or restarted.won.any())


def test_an_elimination_ends_the_episode_which_restarts_on_the_next_step(env):
    env.reset()
    ended = env.step(torch.tensor([[7, REST], [REST, REST], [REST, 9], [REST, LEFT]]))  # invalid actions
    assert ended.terminated.tolist()[:3] == [True, False, True] and not ended.truncated.any()
    assert not ended.won.any()  # 0 against 0 at best
    assert (ended.obs[0, 0, -1] == 0.01) and ended.obs[0, 0, -2] == 1  # the final observation
    after = env.step(torch.full((B, 2), REST))
    assert not after.terminated.any() and (after.reward == 0).all()
    assert after.obs[0, 0, -1] == 0 and after.obs[1, 0, -1] == 0.02 and after.obs[2, 0, -1] == 0
    # a player stepping off the map ends its episode too
    set_games(env, game([(0, 4), (3, 3), (20, 8), (20, 8)]))
    ended = env.step(torch.tensor([[LEFT, REST]] * B))
    assert ended.terminated.all() and not ended.truncated.any()


def test_the_batched_step_equals_the_one_game_step(env):
    states, key, _ = env._reset_fn(jax.random.key(7))
    step_batch = env._step_fn
    one_step = jax.jit(functools.partial(miner.step_one, n_agents=2, kinds=env.bots))
    actions = jnp.asarray(np.random.default_rng(0).integers(0, 6, (8, B, 2)), jnp.int32)
    compared = 0
    for t in range(8):
        before, ended_before = states
        step_keys = jax.random.split(jax.random.split(key, 3)[1], B)  # as the batch splits its key
        states, key, packed = step_batch(states, key, actions[t])
        for b in np.flatnonzero(~np.asarray(ended_before)):  # those restarting are not stepped
            single, reward, terminated, truncated, won = one_step(
                jax.tree.map(lambda x, b=b: x[b], before), step_keys[b], actions[t, b])
            got = jax.tree.map(lambda x, b=b: x[b], states[0])
            for field in Game._fields:
                np.testing.assert_array_equal(getattr(got.game, field), getattr(single.game, field), err_msg=field)
            for field in miner.BotMemory._fields:
                np.testing.assert_array_equal(getattr(got.memory, field), getattr(single.memory, field), err_msg=field)
            obs, avail = OBSERVE(single.game, 2), ALLY_AVAIL(single.game, 2)  # compiled once for the file
            np.testing.assert_allclose(packed[b, :398], obs.reshape(-1), rtol=1e-6)
            np.testing.assert_array_equal(packed[b, 796:808], avail.reshape(-1).astype(jnp.float32))
            flags = [float(reward), float(terminated), float(truncated), float(won)]
            np.testing.assert_allclose(np.asarray(packed[b, -4:]), flags, rtol=1e-6)
            compared += 1
    assert compared > 20


# ---- the JAX rules against a plain-Python step --------------------------------------------------


def python_step(g: dict, actions: list[int], forest: list[int]) -> dict:
    """The rules written again in plain Python, one player after the other as the reference's
    server applies them, with the map's changes deferred to the end of the step."""
    g = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in g.items()}
    changes: dict[tuple[int, int], tuple[int, int]] = {}  # (x, y) -> (terrain, cost)
    diggers = []
    for p, action in enumerate(actions):
        if g["status"][p] != miner.PLAYING:
            continue
        if action not in range(6):
            g["status"][p] = miner.INVALID_ACTION
            continue
        if action < 4:
            g["rests"][p] = 0
            x, y = g["pos"][p][0] + [-1, 1, 0, 0][action], g["pos"][p][1] + [0, 0, -1, 1][action]
            if not (0 <= x < WIDTH and 0 <= y < HEIGHT):
                g["status"][p] = miner.LEFT_MAP
                continue
            g["pos"][p] = (x, y)
            kind, cost = g["terrain"][y, x], g["cost"][y, x]
            if g["gold"][y, x] > 0:
                g["energy"][p] -= 4
            elif kind == FOREST:
                g["energy"][p] -= forest[p]
            else:
                g["energy"][p] -= cost
                if kind == TRAP:
                    changes.setdefault((x, y), (LAND, 1))
                elif kind == SWAMP:
                    changes.setdefault((x, y), (SWAMP, {5: 20, 20: 40, 40: 100, 100: 100}[int(cost)]))
            if g["energy"][p] <= 0:
                g["status"][p] = miner.OUT_OF_ENERGY
        elif action == REST:
            g["rests"][p] += 1
            gain = {1: 12, 2: 16, 3: 25}.get(int(g["rests"][p]), 50)
            g["energy"][p] = min(g["energy"][p] + gain, 50)
        else:
            g["rests"][p] = 0
            x, y = g["pos"][p]
            g["energy"][p] -= 5 if g["gold"][y, x] > 0 else 10
            if g["energy"][p] <= 0:
                g["status"][p] = miner.OUT_OF_ENERGY
            elif g["gold"][y, x] > 0:
                diggers.append(p)
    cells: dict[tuple[int, int], int] = {}
    for p in diggers:
        cells[tuple(g["pos"][p])] = cells.get(tuple(g["pos"][p]), 0) + 1
    takes = {(x, y): min(math.ceil(g["gold"][y, x] / c), 50) for (x, y), c in cells.items()}
    for p in diggers:
        g["score"][p] += takes[tuple(g["pos"][p])]
    for (x, y), c in cells.items():
        g["gold"][y, x] = max(g["gold"][y, x] - takes[(x, y)] * c, 0)
    for (x, y), (kind, cost) in changes.items():
        g["terrain"][y, x], g["cost"][y, x] = kind, cost
    g["t"] += 1
    return g


def test_the_jax_rules_agree_with_a_plain_python_step_over_random_episodes():
    rng = np.random.default_rng(0)
    games = jax.jit(jax.vmap(lambda k: miner.new_game(k, 4)))(jax.random.split(jax.random.key(11), 6))
    checked = eliminated = dug = 0
    for e in range(6):
        jg = jax.tree.map(lambda x, e=e: x[e], games)
        pg = {f: np.array(getattr(jg, f)) for f in Game._fields}
        pg["pos"] = [tuple(int(v) for v in xy) for xy in pg["pos"]]
        for _ in range(60):
            avail = np.asarray(ALLY_AVAIL(jg, 4))
            actions = [int(rng.choice(np.flatnonzero(a))) if rng.random() < 0.9 else int(rng.integers(-1, 7))
                       for a in avail]
            forest = [int(v) for v in rng.integers(5, 21, 4)]
            jg = STEP(jg, jnp.asarray(actions, jnp.int32), jnp.asarray(forest, jnp.int32))
            pg = python_step(pg, actions, forest)
            for field in Game._fields:
                expected = np.asarray(pg[field]) if field != "pos" else np.asarray(pg["pos"])
                np.testing.assert_array_equal(np.asarray(getattr(jg, field)), expected, err_msg=field)
            checked += 1
            dug += int((np.asarray(jg.score) > 0).any())
            if (np.asarray(jg.status) != miner.PLAYING).all():
                break
        eliminated += int((np.asarray(jg.status) != miner.PLAYING).any())
    assert checked > 150 and eliminated >= 3 and dug > 0


def test_the_fused_rollout_collects_the_stepwise_runners_episodes(env):
    """The games run in the fused JAX rollout (one call per batch of episodes): greedy episodes
    equal the stepwise runner's, step for step, from the same key."""
    from episode_batches import greedy_rollouts_from_one_key

    (fused, fused_stats), (stepwise, step_stats) = greedy_rollouts_from_one_key(env)
    assert torch.equal(fused_stats.lengths, step_stats.lengths) and (fused_stats.lengths > 1).all()
    assert torch.equal(fused_stats.returns, step_stats.returns)
    for name in ("obs", "state", "avail_actions", "actions", "reward", "terminated", "filled"):
        assert torch.equal(fused[name], stepwise[name]), name
