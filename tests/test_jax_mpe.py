"""The batched JAX MPE (``jaxmpe:``, issue 15) against mpe2, its reference, step by step.

Cross-checks start the JAX worlds from mpe2's own reset (positions, velocities, goals copied into
the JAX state) and step both with the same random actions for a whole 25-step episode.

Tolerances. The backend computes in float32, mpe2 in float64 (its observations cast to float32
at the end). Positions and observations are O(1) numbers whose float32 rounding is ~6e-8 per
operation; over 25 steps of ~10 operations each (and the soft contact force, whose
``1 / contact_margin`` = 1000 slope amplifies a rounding of the distance) the measured gap is
at most ~2e-6, so float32 is checked at ``atol = 2e-5`` (about 10× the worst gap seen); team
rewards, sums of up to 36 distances reaching ~40, also at ``rtol = 1e-5`` (~1.3e-6 seen). The same
pure functions traced under ``jax.enable_x64`` must match mpe2 to ``1e-12`` in the world state
and the rewards (they agree to ~1 ulp: the same operations in the same order), and to float32
rounding (``2e-7``) in the observations, which mpe2 itself rounds to float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from mpe2 import simple_reference_v3, simple_speaker_listener_v4, simple_spread_v3
from scipy import stats

from marlrepro import env_catalog
from marlrepro.config import load_config
from marlrepro.envs import jax_mpe, make
from marlrepro.envs import jax_mpe_world as world
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError

ATOL_F32 = 2e-5
RTOL_REWARD = 1e-5  # team rewards are sums of up to 36 distances (6 agents): up to ~40 in size
ATOL_F64 = 1e-12
B = 6  # mpe2 episodes per cross-check, one per JAX environment of the batch
LIMIT = 25

# jaxmpe task -> (mpe2 module, its kwargs, per-agent (size, accel, max_speed) to set on mpe2's
# agents, or None: mpe2's own, whether to crowd the agents at the start (many contacts))
CASES = {
    "simple_spread": (simple_spread_v3, {}, None, False),
    "simple_spread_crowded": (simple_spread_v3, {}, None, True),
    "simple_spread_6": (simple_spread_v3, {"N": 6}, None, True),
    "simple_spread_hetero": (simple_spread_v3, {}, "hetero", True),
    "simple_reference": (simple_reference_v3, {}, None, False),
    "simple_speaker_listener": (simple_speaker_listener_v4, {}, None, False),
}


def task_of(case: str) -> str:
    return case.removesuffix("_crowded")


_ENVS: dict[str, object] = {}


def batch_env(task: str, num_envs: int = B):
    """One backend per task for the whole module (its jitted reset and step compile once; a test
    that uses it resets it or sets its states first)."""
    if (task, num_envs) not in _ENVS:
        _ENVS[task, num_envs] = make(f"jaxmpe:{task}", num_envs=num_envs, seed=0)
    return _ENVS[task, num_envs]


def mpe2_env(case: str, seed: int, local_ratio: float | None = None):
    """An mpe2 parallel env of ``case``, reset with ``seed`` (agents made heterogeneous or
    crowded as the case says)."""
    module, kwargs, agents, crowded = CASES[case]
    if local_ratio is not None:
        kwargs = {**kwargs, "local_ratio": local_ratio}
    env = module.parallel_env(max_cycles=LIMIT, continuous_actions=False, **kwargs)
    env.reset(seed=seed)
    w = env.unwrapped.world
    if agents == "hetero":
        sc = jax_mpe.TASKS[task_of(case)]
        for i, agent in enumerate(w.agents):
            agent.size, agent.accel = sc.size[i], sc.accel[i]
            agent.max_speed = None if math.isinf(sc.max_speed[i]) else sc.max_speed[i]
    if crowded:  # every agent within 0.2 of the centre: contact forces from the first step
        rng = np.random.default_rng(seed)
        for agent in w.agents:
            agent.state.p_pos = rng.uniform(-0.2, 0.2, 2)
    return env


def copied_state(env, sc: world.Scenario, dtype=jnp.float32) -> world.WorldState:
    """mpe2's world as a JAX :class:`~marlrepro.envs.jax_mpe_world.WorldState`."""
    w = env.unwrapped.world
    goal = np.zeros(sc.n_agents, np.int32)
    if sc.kind == world.REFERENCE:  # mpe2: agent i's goal_b is the landmark the OTHER agent must reach
        known = [w.landmarks.index(agent.goal_b) for agent in w.agents]
        goal = np.array(known[::-1], np.int32)
    elif sc.kind == world.SPEAKER_LISTENER:
        goal[:] = w.landmarks.index(w.agents[0].goal_b)
    return world.WorldState(
        pos=jnp.asarray(np.array([a.state.p_pos for a in w.agents]), dtype),
        vel=jnp.asarray(np.array([a.state.p_vel for a in w.agents]), dtype),
        landmarks=jnp.asarray(np.array([lm.state.p_pos for lm in w.landmarks]), dtype),
        comm=jnp.asarray(np.array([a.state.c for a in w.agents]), dtype),
        goal=jnp.asarray(goal), t=jnp.int32(0),
    )


def mpe2_world(env) -> tuple[np.ndarray, np.ndarray]:
    w = env.unwrapped.world
    return np.array([a.state.p_pos for a in w.agents]), np.array([a.state.p_vel for a in w.agents])


def mpe2_step(env, actions: list[int]) -> tuple[np.ndarray, float, float, bool]:
    """Step mpe2: (state = observations concatenated, team reward (sum), the global reward
    (mpe.py's shared reward; speaker–listener: the shared reward), truncated)."""
    obs, rewards, _, truncations, _ = env.step(dict(zip(env.possible_agents, actions)))
    u = env.unwrapped
    shared = u.scenario.global_reward(u.world) if u.local_ratio is not None else rewards[env.possible_agents[0]]
    return (np.concatenate([obs[a] for a in env.possible_agents]), sum(rewards.values()), float(shared),
            all(truncations.values()))


def random_actions(rng: np.random.Generator, sc: world.Scenario, b: int) -> np.ndarray:
    return np.stack([rng.integers(0, sc.action_counts(), size=sc.n_agents) for _ in range(b)])


# ---- registration ---------------------------------------------------------------------------


def test_registration_specs_and_config_errors():
    assert env_catalog.SCENARIOS["jaxmpe"] == jax_mpe.SCENARIOS and "jaxmpe" in env_catalog.FUSED_BACKENDS
    # the learners see the mpe backend's spec for the scenarios both serve
    for scenario in ("simple_spread", "simple_reference", "simple_speaker_listener"):
        ours, theirs = validate_env(f"jaxmpe:{scenario}")[0], validate_env(f"mpe:{scenario}")[0]
        assert ours.name == f"jaxmpe:{scenario}" and ours == theirs.__class__(**{**vars(theirs), "name": ours.name})
    dims = {s: validate_env(f"jaxmpe:{s}")[0] for s in jax_mpe.SCENARIOS}
    assert (dims["simple_spread_6"].obs_dim, dims["simple_spread_6"].state_dim) == (36, 216)
    assert dims["simple_spread_hetero"] == dims["simple_spread"].__class__(
        **{**vars(dims["simple_spread"]), "name": "jaxmpe:simple_spread_hetero"})
    three = dims["simple_reference_3a5l"]
    assert (three.n_agents, three.obs_dim, three.state_dim, three.n_actions) == (3, 38, 114, 50)
    assert validate_env("jaxmpe:simple_spread")[1] == {"max_cycles": 25, "shared_reward": False,
                                                       "collision_penalty": False}
    assert load_config(overrides=["env.name=jaxmpe:simple_spread_6"]).env.name == "jaxmpe:simple_spread_6"
    with pytest.raises(ConfigError, match="unknown jaxmpe scenario 'simple_tag'; valid choices are: simple_reference, "
                                          "simple_reference_3a5l, simple_speaker_listener, simple_spread, "):
        validate_env("jaxmpe:simple_tag")
    with pytest.raises(ConfigError, match=r"env.options.local_ratio.*collision_penalty, max_cycles, shared_reward"):
        validate_env("jaxmpe:simple_spread", {"local_ratio": 0.5})
    with pytest.raises(ConfigError, match="env.options.max_cycles: expected a positive int"):
        validate_env("jaxmpe:simple_spread", {"max_cycles": 0})
    with pytest.raises(ConfigError, match="env.options.shared_reward: expected bool"):
        validate_env("jaxmpe:simple_reference", {"shared_reward": 1})
    for scenario, shared in (("simple_reference", True), ("simple_spread", False)):
        with pytest.raises(ConfigError, match="collision_penalty: only with shared_reward=true on a spread scenario "
                                              r"\(simple_spread, simple_spread_6, simple_spread_hetero, "):
            validate_env(f"jaxmpe:{scenario}", {"shared_reward": shared, "collision_penalty": True})
    assert validate_env("jaxmpe:simple_spread_6", {"shared_reward": True, "collision_penalty": True})[1]["collision_penalty"]


# ---- step by step against mpe2 --------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_the_batch_agrees_with_mpe2_for_a_whole_episode(case):
    """B mpe2 episodes side by side with one batch of B JAX worlds, from mpe2's starts and the
    same random actions: observations (padded as the mpe backend pads them), state, team reward
    (mpe2's local_ratio 0.5 mix summed; and the shared reward: mpe2's global reward), positions
    and velocities at every step; truncation at step 25 and only there; then the auto-reset."""
    task = task_of(case)
    sc = jax_mpe.TASKS[task]
    env = batch_env(task)
    first = env.reset()
    refs = [mpe2_env(case, seed) for seed in range(B)]
    states = jax.tree.map(lambda *xs: jnp.stack(xs), *(copied_state(r, sc) for r in refs))
    env._states = jax.device_put((states, jnp.zeros(B, bool)), env._jax_device)
    shared = jax.jit(jax.vmap(lambda s: world.agent_rewards(s, sc, 0.0 if sc.local_ratio is not None else None)[0]))
    pad = env.spec.obs_dim
    rng = np.random.default_rng(7)
    contacts = 0
    for t in range(1, LIMIT + 1):
        actions = random_actions(rng, sc, B)
        batch = env.step(torch.as_tensor(actions))
        steps = [mpe2_step(r, row.tolist()) for r, row in zip(refs, actions)]
        want_state = np.stack([s[0] for s in steps])
        np.testing.assert_allclose(batch.state.numpy(), want_state, atol=ATOL_F32, rtol=0)
        split = np.split(want_state, np.cumsum(sc.obs_dims())[:-1], axis=1)
        want_obs = np.stack([np.pad(o, ((0, 0), (0, pad - o.shape[1]))) for o in split], axis=1)
        np.testing.assert_allclose(batch.obs.numpy(), want_obs, atol=ATOL_F32, rtol=0)
        np.testing.assert_allclose(batch.reward.numpy(), [s[1] for s in steps], atol=ATOL_F32, rtol=RTOL_REWARD)
        np.testing.assert_allclose(np.asarray(shared(env._states[0])), [s[2] for s in steps], atol=ATOL_F32,
                                   rtol=RTOL_REWARD)
        pos, vel = zip(*(mpe2_world(r) for r in refs))
        np.testing.assert_allclose(np.asarray(env._states[0].pos), np.stack(pos), atol=ATOL_F32, rtol=0)
        np.testing.assert_allclose(np.asarray(env._states[0].vel), np.stack(vel), atol=ATOL_F32, rtol=0)
        assert batch.truncated.tolist() == [s[3] for s in steps] == [t == LIMIT] * B
        assert not batch.terminated.any() and not batch.won.any()
        contacts += int(np.asarray(jax.vmap(world.collisions, in_axes=(0, None))(env._states[0], sc)).sum())
    if CASES[case][3]:
        assert contacts > 0, "the crowded start must exercise the contact forces"
    restarted = env.step(torch.as_tensor(random_actions(rng, sc, B)))
    assert (restarted.reward == 0).all() and not restarted.truncated.any()
    assert (np.asarray(env._states[0].t) == 0).all()
    assert torch.equal(restarted.avail_actions, first.avail_actions)


@pytest.mark.parametrize("case", ["simple_spread_crowded", "simple_reference", "simple_speaker_listener"])
def test_in_float64_the_pure_step_is_mpe2_to_the_last_bits(case):
    """The same functions traced in float64 reproduce mpe2's arithmetic: world state and rewards
    to 1e-12 over a whole episode (observations to mpe2's own float32 rounding)."""
    sc = jax_mpe.TASKS[task_of(case)]
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        step = jax.jit(lambda s, a: jax_mpe.step_one(s, a, sc, shared_reward=False, max_cycles=LIMIT))
        flat = jax.jit(lambda s: jax_mpe.padded_outputs(s, sc)[1])
        for seed in range(2):
            ref = mpe2_env(case, seed)
            state = copied_state(ref, sc, jnp.float64)
            assert state.pos.dtype == jnp.float64
            for _ in range(LIMIT):
                actions = random_actions(rng, sc, 1)[0]
                want_state, want_reward, _, _ = mpe2_step(ref, actions.tolist())
                state, reward, _ = step(state, jnp.asarray(actions))
                pos, vel = mpe2_world(ref)
                np.testing.assert_allclose(np.asarray(state.pos), pos, atol=ATOL_F64, rtol=0)
                np.testing.assert_allclose(np.asarray(state.vel), vel, atol=ATOL_F64, rtol=0)
                assert abs(float(reward) - want_reward) < ATOL_F64
                np.testing.assert_allclose(np.asarray(flat(state)), want_state, atol=2e-7, rtol=0)


# ---- batching, masks, padding, truncation ---------------------------------------------------


def test_the_batch_equals_each_world_stepped_alone_and_masks_pad_the_speaker():
    """The jitted, vmapped backend equals the one-world functions (jitted, not vmapped) env by
    env; speaker–listener's padding: the speaker's obs zero past its 3 features, its actions 3
    and 4 unavailable; an episode is truncated at its 25th step."""
    sc = jax_mpe.TASKS["simple_speaker_listener"]
    env = batch_env("simple_speaker_listener")
    batch = env.reset()
    assert batch.avail_actions.tolist() == [[[True] * 3 + [False] * 2, [True] * 5]] * B
    assert (batch.obs[:, 0, 3:] == 0).all() and (batch.obs[:, 1, 8:] == 0).all()  # nothing said yet
    one_step = jax.jit(lambda s, a: jax_mpe.step_one(s, a, sc, shared_reward=False, max_cycles=LIMIT))
    one_out = jax.jit(lambda s: jax_mpe.padded_outputs(s, sc))
    alone = [jax.tree.map(lambda x, b=b: x[b], env._states[0]) for b in range(B)]
    rng = np.random.default_rng(0)
    for t in range(1, LIMIT + 1):
        actions = random_actions(rng, sc, B)
        batch = env.step(torch.as_tensor(actions))
        for b in range(B):
            alone[b], reward, truncated = one_step(alone[b], jnp.asarray(actions[b]))
            obs, flat, avail = one_out(alone[b])
            assert np.array_equal(batch.obs[b].numpy(), np.asarray(obs))
            assert np.array_equal(batch.state[b].numpy(), np.asarray(flat))
            assert np.array_equal(batch.avail_actions[b].numpy(), np.asarray(avail))
            assert batch.reward[b].item() == float(reward) and batch.truncated[b].item() == bool(truncated) == (t == LIMIT)
        spoken = batch.obs[:, 1, 8:11]
        assert torch.equal(spoken, torch.nn.functional.one_hot(torch.as_tensor(actions[:, 0]), 3).float())
        assert (batch.obs[:, 0, 3:] == 0).all()


def test_reset_draws_mpe2s_start_distribution():
    """Positions uniform on [−1, 1]² (agents and landmarks), zero velocity and communication,
    goals uniform over the landmarks: the JAX draws against mpe2's own resets (two-sample KS
    test on every coordinate, χ² on the goals), and within mpe2's ranges."""
    sc = jax_mpe.TASKS["simple_reference"]
    starts = jax.jit(jax.vmap(lambda k: world.reset_world(k, sc)))(jax.random.split(jax.random.key(0), 3000))
    pos, lms, goal = (np.asarray(x) for x in (starts.pos, starts.landmarks, starts.goal))
    assert np.abs(pos).max() <= 1 and np.abs(lms).max() <= 1
    assert not np.asarray(starts.vel).any() and not np.asarray(starts.comm).any() and not np.asarray(starts.t).any()
    env = simple_reference_v3.parallel_env(max_cycles=LIMIT, continuous_actions=False)
    ref_pos, ref_lms = [], []
    for seed in range(400):
        env.reset(seed=seed)
        p, _ = mpe2_world(env)
        ref_pos.append(p)
        ref_lms.append([lm.state.p_pos for lm in env.unwrapped.world.landmarks])
    ref_pos, ref_lms = np.array(ref_pos), np.array(ref_lms)
    for ours, theirs in ((pos, ref_pos), (lms, ref_lms)):
        for index in np.ndindex(ours.shape[1:]):
            assert stats.ks_2samp(ours[(slice(None), *index)], theirs[(slice(None), *index)]).pvalue > 1e-3
    for a in range(2):
        assert stats.chisquare(np.bincount(goal[:, a], minlength=3)).pvalue > 1e-3
    listener = jax.jit(jax.vmap(lambda k: world.reset_world(k, jax_mpe.SPEAKER_LISTENER)))(jax.random.split(jax.random.key(1), 64))
    assert np.array_equal(np.asarray(listener.goal[:, 0]), np.asarray(listener.goal[:, 1]))  # one goal


# ---- the scenarios mpe2 does not have -------------------------------------------------------


def test_reference_with_three_agents_and_five_landmarks():
    """Each agent sees the other agents' goal colours and words, never its own goal; agent i's
    local reward is minus the mean of the others' goal distances, the global one minus the mean
    goal distance; a word said at one step is heard at the next."""
    sc = jax_mpe.TASKS["simple_reference_3a5l"]
    state = world.WorldState(
        pos=jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), vel=jnp.zeros((3, 2)),
        landmarks=jnp.array([[0.0, 0.5], [0.3, 0.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]),
        comm=jnp.zeros((3, 10)), goal=jnp.array([4, 1, 3], jnp.int32), t=jnp.int32(0))
    observe = jax.jit(lambda s: world.observe(s, sc))
    obs = observe(state)
    colours = np.array(jax_mpe.REFERENCE_COLOURS)
    np.testing.assert_allclose(obs[0][2:12], (np.asarray(state.landmarks) - [0.0, 0.0]).reshape(-1))
    np.testing.assert_allclose(obs[0][12:18], np.concatenate([colours[1], colours[3]]))
    np.testing.assert_allclose(obs[1][12:18], np.concatenate([colours[4], colours[3]]))
    np.testing.assert_allclose(obs[2][12:18], np.concatenate([colours[4], colours[1]]))
    gaps = np.array([math.sqrt(2), 0.7, 2.0])  # each agent's distance to its goal
    global_reward, local = jax.jit(lambda s: world.global_and_local_rewards(s, sc))(state)
    np.testing.assert_allclose(np.asarray(local), [-(gaps[1] + gaps[2]) / 2, -(gaps[0] + gaps[2]) / 2,
                                                   -(gaps[0] + gaps[1]) / 2], rtol=1e-6)
    assert float(global_reward) == pytest.approx(-gaps.mean(), rel=1e-6)
    moved = jax.jit(lambda s, a: world.step_world(s, a, sc))(state, jnp.array([0 + 5 * 7, 2 + 5 * 0, 4 + 5 * 9]))
    heard = np.asarray(observe(moved)[1][18:])  # moves 0, 2, 4 and words 7, 0, 9 above
    assert heard[7] == 1 and heard[10 + 9] == 1 and heard.sum() == 2
    np.testing.assert_allclose(np.asarray(moved.vel), [[0, 0], [0.5, 0], [0, 0.5]], atol=1e-7)


def test_the_collision_penalty_takes_one_per_overlapping_pair_from_the_shared_reward():
    """CESMA's shared spread reward: mpe2's global reward less 1 per colliding pair; agents 0 and 1
    overlap (0.2 apart, radii 0.15), agent 2 is alone."""
    sc = jax_mpe.TASKS["simple_spread"]
    state = world.WorldState(pos=jnp.array([[0.0, 0.0], [0.2, 0.0], [2.0, 2.0]]), vel=jnp.zeros((3, 2)),
                             landmarks=jnp.array([[0.0, 1.0], [1.0, 1.0], [2.0, 2.0]]), comm=jnp.zeros((3, 2)),
                             goal=jnp.zeros(3, jnp.int32), t=jnp.int32(0))

    @jax.jit
    def rewards(s):
        plain = jax_mpe.step_one(s, jnp.zeros(3, jnp.int32), sc, shared_reward=True, max_cycles=LIMIT)[1]
        penalised = jax_mpe.step_one(s, jnp.zeros(3, jnp.int32), sc, shared_reward=True, max_cycles=LIMIT,
                                     collision_penalty=True)
        return plain, penalised[1], world.global_and_local_rewards(penalised[0], sc)[0]

    plain, penalised, global_reward = rewards(state)
    assert float(plain) == float(global_reward) and float(penalised) == pytest.approx(float(global_reward) - 1, abs=1e-6)


def test_nonhomogeneous_agents_reach_their_own_top_speeds():
    """Big and slow, medium, small and fast: pushed right for 25 steps, far apart, their speeds
    settle at the caps 1.0 and 1.3 and at the uncapped terminal speed accel · dt / damping = 2."""
    sc = jax_mpe.TASKS["simple_spread_hetero"]
    state = world.WorldState(pos=jnp.array([[-5.0, -5.0], [0.0, 0.0], [5.0, 5.0]]), vel=jnp.zeros((3, 2)),
                             landmarks=jnp.zeros((3, 2)), comm=jnp.zeros((3, 2)), goal=jnp.zeros(3, jnp.int32),
                             t=jnp.int32(0))
    step = jax.jit(lambda s: world.step_world(s, jnp.full(3, 2), sc))
    for _ in range(LIMIT):
        state = step(state)
    np.testing.assert_allclose(np.asarray(state.vel[:, 0]), [1.0, 1.3, 2.0], atol=2e-3)
    assert sc.size == (0.2, 0.15, 0.1) and jax_mpe.TASKS["simple_spread_hetero_6"].size == (0.2, 0.2, 0.15, 0.15, 0.1, 0.1)


# ---- the trainer ----------------------------------------------------------------------------


def test_vdn_trains_on_jaxmpe_spread_through_the_fused_rollout(tmp_path):
    """The backend plugs into the trainer, the fused JAX rollout included: a few hundred steps of
    VDN on simple_spread with the shared reward, losses finite, weights updated."""
    from training_checks import run_and_check_training

    from marlrepro.train import Trainer

    config = load_config(overrides=[
        "algo=vdn", "env.name=jaxmpe:simple_spread", "env.options.shared_reward=true", "env.num_envs=4",
        "run.device=cpu", "run.progress=false", "run.rollout=fused", "run.t_max=400", "run.eval_interval=200",
        "run.eval_episodes=4", "learner.batch_size=8", "learner.gamma=0.9",
    ])
    trainer = Trainer.solo(config, tmp_path)
    assert trainer.runner.fused
    finals = run_and_check_training(trainer)
    returns = [row["test_return_mean"] for row in trainer.runs[0].progress.rows if "test_return_mean" in row]
    assert finals[0]["updates"] > 0 and returns and all(np.isfinite(returns)) and all(r < 0 for r in returns)


def test_the_fused_rollout_collects_the_stepwise_runners_episodes():
    """speaker–listener (padded agents) in the fused JAX rollout: greedy episodes equal the
    stepwise runner's, step for step, from the same key (the same actions; observations and
    rewards to float32 rounding)."""
    from episode_batches import greedy_rollouts_from_one_key

    env = batch_env("simple_speaker_listener")
    (fused, fused_stats), (stepwise, step_stats) = greedy_rollouts_from_one_key(env)
    assert (fused_stats.lengths == LIMIT).all() and torch.equal(fused_stats.lengths, step_stats.lengths)
    for name in ("avail_actions", "actions", "terminated", "filled"):
        assert torch.equal(fused[name], stepwise[name]), name
    # the physics in floats: the loop's program and the step's are compiled apart, and at the
    # tests' XLA optimisation level 0 (conftest) they may round differently (~1 ulp seen)
    for name in ("obs", "state", "reward"):
        torch.testing.assert_close(fused[name], stepwise[name], atol=ATOL_F32, rtol=RTOL_REWARD)
    torch.testing.assert_close(fused_stats.returns, step_stats.returns, atol=ATOL_F32, rtol=RTOL_REWARD)
