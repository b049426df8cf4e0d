"""Gold Miner's ported enemy bots, DeepMindBot (the C++ planner) and BlackPantherBot, on hand-made
games whose expected decisions follow from the reference's rules (``miner/bots.py``,
``miner/heuristic/src/boardgame.cpp``), and the medium and hard teams in the batched env."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
from miner_games import game

from marlrepro.envs import make, miner, miner_bots
from marlrepro.envs.miner import DIG, DOWN, LEFT, REST, RIGHT
from marlrepro.envs.miner_maps import SWAMP, TRAP

PLAN = jax.jit(miner_bots.deepmind_plan)
PANTHER = jax.jit(miner_bots.black_panther_action)
TARGET = jax.jit(miner_bots.panther_target)
CRAFT = jax.jit(miner_bots.craft)
FREE_TIME = jax.jit(miner_bots.count_free_time)
FAR = [(20, 8), (20, 7), (20, 6)]  # players out of the way


def plan(g, player=0, free_turn=0) -> tuple[int, int]:
    action, left = PLAN(g, player, jnp.int32(free_turn))
    return int(action), int(left)


def panther(g, player=0, last_energy=-1, rests_seen=0) -> tuple[int, miner.BotMemory]:
    memory = miner.BotMemory(target=jnp.int32(-1), free_turn=jnp.int32(0), last_energy=jnp.int32(last_energy),
                             rests_seen=jnp.int32(rests_seen))
    action, memory = PANTHER(g, player, memory, jax.random.key(0))
    return int(action), memory


# ---- DeepMindBot --------------------------------------------------------------------------------


def test_deepmind_rests_out_its_planned_rests_first():
    g = game([(4, 4)] + FAR, gold={(4, 4): 500})
    assert plan(g, free_turn=2) == (REST, 1)
    assert plan(g, free_turn=0) == (DIG, 0)  # on gold, share 500 ≥ 50, energy > 5


def test_deepmind_takes_the_least_weight_shortest_path():
    # to (2, 2): right first enters forests (weight 3 each); down, down, right, right weighs 1+1+1+4
    g = game([(0, 0)] + FAR, cells={(1, 0): "F", (2, 0): "F", (1, 1): "S", (2, 1): "F"}, gold={(2, 2): 500})
    assert plan(g) == (DOWN, 0)
    # a trap weighs 2, land 1: through (1, 0) land rather than (0, 1) trap
    g = game([(0, 0)] + FAR, cells={(0, 1): "T"}, gold={(1, 1): 500})
    assert plan(g) == (RIGHT, 0)


def test_deepmind_picks_the_gold_of_most_promised_gold_per_distance():
    # (2, 0): 100 at 2 steps; (0, 3): 1000 at 3 steps, promised min(50 · (T − 3), 1000) = 1000
    g = game([(0, 0)] + FAR, gold={(2, 0): 100, (0, 3): 1000})
    assert plan(g) == (DOWN, 0)
    # two players already on (0, 3): it is promised (1000 − 3·2·50) // 3 = 233, 233/3 < 100/2? no: still (0, 3)
    crowded = game([(0, 0), (0, 3), (0, 3), (20, 8)], gold={(2, 0): 100, (0, 3): 1000})
    assert plan(crowded) == (DOWN, 0)
    # with 500 at (2, 0) instead: 500/2 > 233/3, so right
    crowded = game([(0, 0), (0, 3), (0, 3), (20, 8)], gold={(2, 0): 500, (0, 3): 1000})
    assert plan(crowded) == (RIGHT, 0)


def test_deepmind_leaves_a_thin_share_for_a_richer_gold():
    g = game([(4, 4)] + FAR, gold={(4, 4): 40, (6, 4): 500})
    assert plan(g) == (RIGHT, 0)  # 40 < 50 here; (6, 4) promises 500 in 2 turns
    g = game([(4, 4)] + FAR, gold={(4, 4): 60, (6, 4): 500})
    assert plan(g) == (DIG, 0)


def test_deepmind_plans_rests_when_too_weak():
    # on gold with energy 5: rest, and plan 2 more (E + 12 and E + 29 both leave room to refill)
    g = game([(4, 4)] + FAR, gold={(4, 4): 500}, energy=(5, 50, 50, 50))
    assert plan(g) == (REST, 2)
    # with 2 turns left, E + 12 could not be used: rest once only
    assert plan(g._replace(t=jnp.int32(97))) == (REST, 0)
    # an energetic neighbour and a share that E + 12 would dig out: rest once
    g = game([(4, 4), (5, 4), (20, 8), (20, 7)], gold={(4, 4): 100, (0, 0): 500}, energy=(5, 50, 50, 50))
    assert plan(g) == (REST, 0)
    # too weak to enter the next cell (forest, weight 3, with energy 3): rest, planning by what the
    # path and the gold need (3 · 3 + 4 weight, 10 digs: 3 + 12 < 23, 3 + 29 ≥ 23 → one more)
    g = game([(0, 0)] + FAR, cells={(1, 0): "F", (2, 0): "F", (3, 0): "F"}, gold={(4, 0): 500}, energy=(3, 50, 50, 50))
    g = g._replace(terrain=g.terrain.at[1, :5].set(miner.FOREST))  # no cheaper way round
    assert plan(g) == (REST, 1)


def test_deepmind_rests_when_no_gold_can_be_reached_in_time():
    g = game([(0, 0)] + FAR, gold={(3, 0): 500}, t=96)  # T = 3: the gold is not closer than 3
    assert plan(g) == (REST, 0)
    assert plan(g._replace(t=jnp.int32(95))) == (RIGHT, 0)


def test_deepmind_falls_back_to_a_random_allowed_action_when_the_mask_forbids():
    # planned rest at full energy: the mask forbids rest from 38, so a random available action
    g = game([(4, 4)] + FAR, gold={(0, 4): 500, (8, 4): 500})
    memory = miner.BotMemory(*(jnp.int32(v) for v in (-1, 1, -1, 0)))
    act = jax.jit(miner_bots.deepmind_action)
    actions = {int(act(g, 0, memory, jax.random.key(k))[0]) for k in range(30)}
    assert actions == {LEFT, RIGHT}  # the golds box keeps it on row 4
    assert int(act(g, 0, memory, jax.random.key(0))[1].free_turn) == 0


# ---- BlackPantherBot ------------------------------------------------------------------------------


def test_panther_digs_its_gold_and_heads_for_gold():
    assert panther(game([(4, 4)] + FAR, gold={(4, 4): 500}))[0] == DIG
    assert panther(game([(0, 0)] + FAR, gold={(3, 0): 500}))[0] == RIGHT
    action, memory = panther(game([(0, 0)] + FAR, gold={(0, 5): 500}))
    assert action == DOWN and int(memory.last_energy) == 50 and int(memory.rests_seen) == 0


def test_panther_never_enters_a_swamp_of_50_or_more_and_prefers_energy_at_equal_turns():
    g = game([(0, 4)] + FAR, cells={(1, 3): "F"}, gold={(2, 4): 500})
    g = g._replace(terrain=g.terrain.at[4, 1].set(SWAMP), cost=g.cost.at[4, 1].set(100))
    assert panther(g)[0] == DOWN  # round by (1, 5) land, not (1, 3) forest: more energy left
    g = g._replace(cost=g.cost.at[4, 1].set(40))
    assert panther(g)[0] == RIGHT  # a 40-swamp is entered


def test_panther_rests_before_a_move_it_cannot_afford():
    assert panther(game([(0, 0)] + FAR, gold={(3, 0): 500}, energy=(1, 50, 50, 50)))[0] == REST
    g = game([(0, 0)] + FAR, cells={(1, 0): "T", (0, 1): "T"}, gold={(3, 3): 500}, energy=(10, 50, 50, 50))
    assert panther(g)[0] == REST  # a trap needs more than 10
    # its rests are inferred from its energy rising since its last decision
    _, memory = panther(g, last_energy=5, rests_seen=1)
    assert int(memory.rests_seen) == 2
    _, memory = panther(g, last_energy=10, rests_seen=1)
    assert int(memory.rests_seen) == 0


def test_panther_expects_each_player_at_the_richest_of_its_nearest_golds():
    g = game([(0, 0), (5, 5)] + FAR[:2], gold={(5, 6): 100, (6, 5): 300, (5, 0): 1000})
    view = miner_bots.panther_view(g)
    steps, cell = TARGET(view, jnp.asarray([5, 5]), jnp.int32(50), jnp.int32(100))
    assert int(steps) == 2 and cell.tolist() == [6, 5]
    steps, cell = TARGET(view, jnp.asarray([5, 5]), jnp.int32(50), jnp.int32(1))
    assert int(steps) == -1  # its last level is never searched for gold


def test_panther_counts_rests_and_digs_as_the_reference_does():
    assert [int(v) for v in CRAFT(jnp.int32(100), jnp.int32(50), jnp.int32(50))] == [100, 42, 2]
    assert [int(v) for v in CRAFT(jnp.int32(120), jnp.int32(50), jnp.int32(50))] == [180, 38, 3]  # its + (50 − 20)
    assert [int(v) for v in CRAFT(jnp.int32(500), jnp.int32(20), jnp.int32(50))] == [500, 30, 10]  # rests uncounted
    assert int(FREE_TIME(jnp.int32(10), jnp.int32(50), jnp.int32(0), jnp.int32(20))) == 2
    assert int(FREE_TIME(jnp.int32(30), jnp.int32(50), jnp.int32(0), jnp.int32(5))) == 0
    assert int(FREE_TIME(jnp.int32(30), jnp.int32(50), jnp.int32(1), jnp.int32(5))) == 1  # wants its refill
    assert int(FREE_TIME(jnp.int32(45), jnp.int32(50), jnp.int32(1), jnp.int32(5))) == -1


# ---- the teams ----------------------------------------------------------------------------------


def test_the_medium_and_hard_teams_are_shuffled_over_the_enemy_slots():
    for scenario, bots in [("medium_2_vs_2", {miner.GREEDY, miner.DEEPMIND}),
                           ("hard_2_vs_2", {miner.BLACK_PANTHER, miner.DEEPMIND})]:
        env = make(f"miner:{scenario}", num_envs=16, seed=0)
        env.reset()
        kinds = np.asarray(env._states[0].kinds).tolist()
        assert all(set(row) == bots for row in kinds) and len({tuple(row) for row in kinds}) == 2


def test_the_medium_team_plays_in_the_batched_env():
    """Each slot runs its own bot: the DeepMindBot slot plans its rests, the GreedyBot slot its target."""
    env = make("miner:medium_2_vs_2", num_envs=8, seed=0)
    env.reset()
    for _ in range(12):
        batch = env.step(torch.full((8, 2), REST))
    assert batch.avail_actions.any(-1).all() and not batch.terminated.any()
    state = env._states[0]
    greedy = np.asarray(state.kinds) == miner.GREEDY
    assert (np.asarray(state.memory.target)[greedy] >= 0).all()  # every GreedyBot has a target
    assert (np.asarray(state.memory.target)[~greedy] == -1).all()  # DeepMindBot keeps none
    assert (np.asarray(state.game.score)[:, 2:] > 0).any()  # the bots dig


def test_traps_are_land_to_the_bots_once_sprung():
    g = game([(0, 0)] + FAR, cells={(1, 0): "T"}, gold={(2, 0): 500})
    sprung = g._replace(terrain=g.terrain.at[0, 1].set(miner.LAND), cost=g.cost.at[0, 1].set(1))
    assert int(miner_bots.panther_view(g)[0, 1]) == -10 and int(miner_bots.panther_view(sprung)[0, 1]) == 0
    assert int(miner_bots.planner_damage(g)[0, 1]) == 2 and int(miner_bots.planner_damage(sprung)[0, 1]) == 1
    assert int(g.terrain[0, 1]) == TRAP


def test_a_bot_match_plays_a_whole_game_of_bots():
    keys = jax.random.split(jax.random.key(0), 4)
    scores, steps = jax.jit(jax.vmap(lambda k: miner.bot_match(k, (miner.GREEDY,) * 2, (miner.GREEDY,) * 2)))(keys)
    scores, steps = np.asarray(scores), np.asarray(steps)
    assert scores.shape == (4, 4) and (steps <= 100).all() and (steps > 1).all()
    assert (scores.sum(1) > 0).all() and (scores % 1 == 0).all()


def test_each_slot_runs_its_own_bot_with_its_own_key_and_memory():
    """``miner.bot_actions`` evaluates each kind of bot only on the slots that run it: its actions
    and memories equal each slot's own bot called alone, on that slot's key and memory, on the
    hard team (two kinds) in both slot orders, with memories carried from earlier steps."""
    policies = {miner.DEEPMIND: jax.jit(miner_bots.deepmind_action), miner.BLACK_PANTHER: PANTHER}
    env = make("miner:hard_2_vs_2", num_envs=4, seed=3)
    env.reset()
    for _ in range(6):
        env.step(torch.randint(0, 5, (4, 2), generator=torch.Generator().manual_seed(0)))
    states = env._states[0]
    key = jax.random.key(11)
    actions, memory = jax.jit(jax.vmap(lambda s: miner.enemy_actions(s, key, 2, env.bots)))(states)
    assert len({tuple(row) for row in np.asarray(states.kinds).tolist()}) == 2  # both slot orders
    keys = jax.random.split(key, 2)
    for b in range(4):
        for slot in range(2):
            kind = int(states.kinds[b, slot])
            own = jax.tree.map(lambda field, b=b, slot=slot: field[b, slot], states.memory)
            game = jax.tree.map(lambda field, b=b: field[b], states.game)
            action, after = policies[kind](game, 2 + slot, own, keys[slot])
            assert int(actions[b, slot]) == int(action), (b, slot, kind)
            for field in miner.BotMemory._fields:
                assert int(getattr(memory, field)[b, slot]) == int(getattr(after, field)), (b, slot, field)
