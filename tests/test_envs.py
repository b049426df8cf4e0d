"""Interface and fidelity tests for the batched environment backends (matrix, MPE, SMAX)."""

from __future__ import annotations

import importlib
import itertools

import jax
import pytest
import torch

from marlrepro import env_catalog
from marlrepro.config import AgentConfig
from marlrepro.controller import AgentController
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import EnvBatch, EnvSpec, make, validate_env
from marlrepro.envs.registry import BACKEND_MODULES
from marlrepro.errors import ConfigError
from marlrepro.runner import EpisodeRunner

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _jax_has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


# SMAX on CUDA needs JAX to see the GPU too (tests/conftest.py pins JAX to the CPU by default).
SMAX_DEVICES = DEVICES if _jax_has_gpu() else ["cpu"]


def check_batch(batch: EnvBatch, spec: EnvSpec, num_envs: int, device: torch.device) -> None:
    """Shapes, dtypes and devices of one step against the spec."""
    b, n = num_envs, spec.n_agents
    expected = {
        "obs": ((b, n, spec.obs_dim), torch.float32),
        "state": ((b, spec.state_dim), torch.float32),
        "avail_actions": ((b, n, spec.n_actions), torch.bool),
        "reward": ((b,), torch.float32),
        "terminated": ((b,), torch.bool),
        "truncated": ((b,), torch.bool),
        "won": ((b,), torch.bool),
    }
    for field, (shape, dtype) in expected.items():
        value = getattr(batch, field)
        assert tuple(value.shape) == shape, field
        assert value.dtype == dtype, field
        assert value.device.type == device.type, field
    assert batch.avail_actions.any(-1).all(), "every agent needs an available action"
    assert not (batch.terminated & batch.truncated).any()
    assert not (batch.won & ~batch.terminated).any(), "won only on terminal steps"


def random_actions(avail: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random available actions [B, N]."""
    scores = torch.rand(avail.shape, generator=generator).to(avail.device)
    return scores.masked_fill(~avail, -1.0).argmax(-1)


class EpisodeClock:
    """Per-environment step counters checking the episode-limit semantics and the auto-reset on
    the step after an episode ends (that step restarts the env: no flags, no reward)."""

    def __init__(self, num_envs: int, limit: int) -> None:
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.limit = limit
        self.lengths: list[int] = []
        self.ended = torch.zeros(num_envs, dtype=torch.bool)

    def tick(self, batch: EnvBatch) -> torch.Tensor:
        """Advance one step; return the mask of environments that restarted on this step (their
        observation is a new episode's first)."""
        restarted = self.ended
        ended = (batch.terminated | batch.truncated).cpu()
        assert not ended[restarted].any() and not batch.reward.cpu()[restarted].any(), "a restart step is empty"
        self.t = torch.where(restarted, 0, self.t + 1)
        assert (self.t <= self.limit).all(), "episode ran past its limit"
        assert torch.equal(batch.truncated.cpu(), ~batch.terminated.cpu() & (self.t == self.limit))
        assert ended[self.t == self.limit].all(), "episode not ended at its limit"
        self.lengths += self.t[ended].tolist()
        self.ended = ended
        return restarted


# ---------------------------------------------------------------------------------------------
# matrix games

ME_IGM_TABLE_1 = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scenario", ["me_igm", "monotonic"])
def test_matrix_pays_every_joint_action(scenario: str, device: str) -> None:
    joint = torch.tensor(list(itertools.product(range(3), repeat=2)), device=device)
    env = make(f"matrix:{scenario}", num_envs=len(joint), seed=0, device=device)
    payoff = env.payoff.cpu()
    if scenario == "me_igm":
        assert payoff.tolist() == ME_IGM_TABLE_1
    else:  # additive, hence monotonic: the interaction term vanishes; unique optimum off (0, 0)
        interaction = payoff - payoff[:, :1] - payoff[:1, :] + payoff[0, 0]
        assert torch.equal(interaction, torch.zeros(3, 3))
        assert (payoff == payoff.max()).sum() == 1 and payoff[0, 0] < payoff.max()
    first = env.reset()
    check_batch(first, env.spec, len(joint), torch.device(device))
    assert env.spec.episode_limit == 1 and first.obs.eq(1).all() and first.state.eq(1).all()
    assert first.avail_actions.all() and not first.reward.any()
    batch = env.step(joint)
    check_batch(batch, env.spec, len(joint), torch.device(device))
    expected = payoff[joint[:, 0].cpu(), joint[:, 1].cpu()]
    assert torch.equal(batch.reward.cpu(), expected)
    assert torch.equal(batch.won.cpu(), expected == payoff.max())
    assert batch.terminated.all() and not batch.truncated.any()


def test_matrix_custom_payoff_any_agents_and_shapes() -> None:
    three = [[[1, 2], [3, 4]], [[5, 6], [7, 80]]]
    env = make("matrix:me_igm", num_envs=8, seed=0, payoff=three)
    assert (env.spec.n_agents, env.spec.n_actions) == (3, 2)
    joint = torch.tensor(list(itertools.product(range(2), repeat=3)))
    batch = env.step(joint)
    assert batch.reward.tolist() == [1, 2, 3, 4, 5, 6, 7, 80]
    assert batch.won.tolist() == [False] * 7 + [True]

    uneven = make("matrix:monotonic", num_envs=1, seed=0, payoff=[[1, 2, 3], [4, 5, 6]])
    assert uneven.reset().avail_actions[0].tolist() == [[True, True, False], [True, True, True]]
    assert uneven.step(torch.tensor([[1, 2]])).reward.tolist() == [6.0]


@pytest.mark.parametrize(
    ("payoff", "message"),
    [([[1, 2], [3]], "rectangular"), ([1, 2, 3], "at least 2 agents"), ([[1, "x"]], "rectangular")],
)
def test_matrix_bad_payoff(payoff: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        validate_env("matrix:me_igm", {"payoff": payoff})
    assert "env.options.payoff" in str(err.value)


# ---------------------------------------------------------------------------------------------
# MPE

MPE_SCENARIOS = ["simple_spread", "simple_reference", "simple_speaker_listener"]
# agents whose observation starts with their own velocity (zero on an episode's first step)
MOVABLE = {"simple_spread": [0, 1, 2], "simple_reference": [0, 1], "simple_speaker_listener": [1]}


@pytest.mark.parametrize("scenario", MPE_SCENARIOS)
def test_mpe_interface_and_next_step_auto_reset(scenario: str) -> None:
    env = make(f"mpe:{scenario}", num_envs=3, seed=1, max_cycles=4)
    gen = torch.Generator().manual_seed(0)
    batch = env.reset()
    check_batch(batch, env.spec, 3, env.device)
    clock = EpisodeClock(3, env.spec.episode_limit)
    moved_at_the_end = False
    for _ in range(10):
        batch = env.step(random_actions(batch.avail_actions, gen))
        check_batch(batch, env.spec, 3, env.device)
        restarted = clock.tick(batch)
        velocity = batch.obs[:, MOVABLE[scenario], :2]
        assert not velocity[restarted].any(), "the step after an episode's end returns a first-step obs"
        moved_at_the_end |= bool(velocity[batch.truncated].any())  # the final obs, not a reset one
        assert not batch.terminated.any() and not batch.won.any()
    assert moved_at_the_end and clock.lengths == [4] * 6
    env.close()


def test_a_truncated_episode_is_stored_unterminated_with_its_final_observation() -> None:
    """pymarl's runner: an episode cut by the time limit is not terminal, and the observation after
    its last step is the final one (the learners' TD(λ) targets bootstrap from it), not the next
    episode's first (whose velocities are zero)."""
    env = make("mpe:simple_spread", num_envs=3, seed=2, max_cycles=6)
    holder = torch.nn.Module()
    holder.controller = AgentController(env.spec, AgentConfig(), "obs")
    runner = EpisodeRunner([env], StackedModules([holder]), "controller", "stepwise")
    episodes, stats = runner.run([1.0], [True], [torch.Generator().manual_seed(0)])
    assert stats.lengths.eq(6).all() and episodes.filled.sum() == 18
    assert not episodes.terminated.any()
    final = episodes.obs[0, :, 6, :, :2]  # every agent's own velocity after the last step
    assert final.abs().sum(dim=(1, 2)).gt(0).all()
    env.close()


def test_mpe_seeding() -> None:
    a, b, c = (make("mpe:simple_spread", num_envs=4, seed=s).reset().state for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(row.tolist()) for row in a}) == 4, "sub-environments must be seeded distinctly"


def test_mpe_speaker_listener_padding() -> None:
    env = make("mpe:simple_speaker_listener", num_envs=2, seed=0)
    assert (env.spec.obs_dim, env.spec.state_dim, env.spec.n_actions) == (11, 14, 5)
    batch = env.step(torch.tensor([[2, 4], [0, 1]]))
    assert batch.avail_actions.tolist() == [[[True] * 3 + [False] * 2, [True] * 5]] * 2
    assert torch.equal(batch.obs[:, 0, :3], batch.state[:, :3]) and not batch.obs[:, 0, 3:].any()
    assert torch.equal(batch.obs[:, 1], batch.state[:, 3:])
    with pytest.raises(AssertionError):  # a padded (unavailable) action is rejected by mpe2
        env.step(torch.tensor([[4, 0], [0, 0]]))


def _goal_distance(obs: torch.Tensor, landmarks_at: int, goal_color: torch.Tensor) -> torch.Tensor:
    """Distance from the observer to the landmark whose (3-landmark) colour is ``goal_color``'s argmax."""
    goal = goal_color.argmax(-1)
    rel = obs[..., landmarks_at : landmarks_at + 6].unflatten(-1, (3, 2))
    return rel[torch.arange(len(goal)), goal].norm(dim=-1)


def _expected_team_reward(scenario: str, obs: torch.Tensor, shared: bool) -> torch.Tensor:
    """The documented team reward, recomputed from the post-step observations [B, N, obs]."""
    if scenario == "simple_spread":  # obs: vel 2, pos 2, landmarks 6, other agents 4, comm 4
        landmarks = obs[..., 4:10].unflatten(-1, (3, 2)).norm(dim=-1)  # [B, agent, landmark]
        global_reward = -landmarks.min(dim=1).values.sum(-1)
        collisions = (obs[..., 10:14].unflatten(-1, (2, 2)).norm(dim=-1) < 0.3).sum((1, 2))
        return global_reward if shared else 1.5 * global_reward - 0.5 * collisions
    if scenario == "simple_reference":  # agent i's reward: -|other agent - i's goal landmark|
        # obs: vel 2, landmarks 6, goal colour 3 (landmark colours are one-hot-ish), comm 10
        per_agent = torch.stack(
            [-_goal_distance(obs[:, 1 - i], 2, obs[:, i, 8:11]) for i in range(2)], dim=1
        )
        return per_agent.mean(1) if shared else per_agent.sum(1)  # local_ratio 0.5: sum of both
    # speaker_listener: both get -|listener - goal|^2; speaker obs = goal colour (+0.45)
    reward = -_goal_distance(obs[:, 1], 2, obs[:, 0, :3]) ** 2
    return reward if shared else 2 * reward


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("scenario", MPE_SCENARIOS)
def test_mpe_team_reward(scenario: str, shared: bool) -> None:
    env = make(f"mpe:{scenario}", num_envs=4, seed=3, shared_reward=shared)
    gen = torch.Generator().manual_seed(1)
    batch = env.reset()
    for _ in range(12):  # within max_cycles=25, so obs are post-step obs of the same episode
        batch = env.step(random_actions(batch.avail_actions, gen))
        expected = _expected_team_reward(scenario, batch.obs, shared)
        torch.testing.assert_close(batch.reward, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# SMAX

SMAX_LIMIT = 18
SMAX_SCALE = 2.0
SMAX_ENVS = 16


def _focus_fire(avail: torch.Tensor) -> torch.Tensor:
    """Attack the lowest-indexed enemy in range, else move east (action 1) or stop (4)."""
    attack = avail[..., 5:]
    moving = torch.where(avail[..., 1], 1, 4)
    return torch.where(attack.any(-1), 5 + attack.int().argmax(-1), moving)


@pytest.fixture(scope="module", params=SMAX_DEVICES)
def smax_run(request: pytest.FixtureRequest) -> tuple[EnvSpec, list[EnvBatch]]:
    """80 steps of smax_stock:3m; half the battles focus fire (they win), half act randomly."""
    env = make(
        "smax_stock:3m", num_envs=SMAX_ENVS, seed=0, device=request.param,
        episode_limit=SMAX_LIMIT, reward_scale=SMAX_SCALE,
    )
    gen = torch.Generator().manual_seed(0)
    focus = (torch.arange(SMAX_ENVS) < SMAX_ENVS // 2)[:, None].to(env.device)
    batches = [env.reset()]
    for _ in range(80):
        avail = batches[-1].avail_actions
        batches.append(env.step(torch.where(focus, _focus_fire(avail), random_actions(avail, gen))))
    env.close()
    return env.spec, batches


def test_smax_interface_and_episode_limit(smax_run: tuple[EnvSpec, list[EnvBatch]]) -> None:
    spec, batches = smax_run
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions) == (3, 75, 72, 8)
    assert spec.episode_limit == SMAX_LIMIT
    first = batches[0]
    assert not first.reward.any() and not (first.terminated | first.truncated | first.won).any()
    clock = EpisodeClock(SMAX_ENVS, SMAX_LIMIT)
    for batch in batches[1:]:
        check_batch(batch, spec, SMAX_ENVS, first.obs.device)
        clock.tick(batch)
    ended = torch.stack([b.terminated | b.truncated for b in batches[1:]]).cpu()
    truncated = torch.stack([b.truncated for b in batches[1:]]).cpu()
    assert truncated.any() and (ended & ~truncated).any()
    assert max(clock.lengths) == SMAX_LIMIT


def test_smax_ends_on_its_final_state_and_restarts_on_the_next_step(smax_run: tuple[EnvSpec, list[EnvBatch]]) -> None:
    _, batches = smax_run
    n_units = 6  # 3 allies + 3 enemies; world state: 10 features per unit, health first
    clock = EpisodeClock(SMAX_ENVS, SMAX_LIMIT)
    ended_at_full_health = True
    for batch in batches[1:]:
        health = batch.state[:, : 10 * n_units : 10].cpu()
        restarted = clock.tick(batch)
        assert health[restarted].eq(1).all(), "a new episode starts at full health"
        terminated = batch.terminated.cpu()
        ended_at_full_health &= bool(health[terminated].eq(1).all())  # the final state: a side is dead
    assert not ended_at_full_health, "the step that ends a battle returns its final state"
    assert (torch.stack([b.state[:, : 10 * n_units : 10] for b in batches]) < 1).any()


def test_smax_dead_agents_can_only_stop(smax_run: tuple[EnvSpec, list[EnvBatch]]) -> None:
    spec, batches = smax_run
    stop_only = torch.nn.functional.one_hot(torch.tensor(4), spec.n_actions).bool()
    dead_seen = 0
    for batch in batches:
        dead = (batch.state[:, : 10 * spec.n_agents : 10] == 0).cpu()  # ally health
        avail = batch.avail_actions.cpu()
        assert (avail[dead] == stop_only).all()
        assert avail[~dead][:, :5].all(), "living agents can move and stop"
        dead_seen += int(dead.sum())
    assert dead_seen > 0


def test_smax_win_rule_and_reward(smax_run: tuple[EnvSpec, list[EnvBatch]]) -> None:
    _, batches = smax_run
    won = torch.stack([b.won for b in batches]).cpu()
    terminated = torch.stack([b.terminated for b in batches]).cpu()
    reward = torch.stack([b.reward for b in batches]).cpu()
    assert won.any() and (terminated & ~won).any(), "need both wins and losses to test the rule"
    assert not (won & ~terminated).any()
    # per step the health part of the reward is at most 1; a win adds the bonus of 1 on top
    assert (reward[won] > SMAX_SCALE).all() and (reward[won] <= 2 * SMAX_SCALE).all()
    assert (reward[~won] <= SMAX_SCALE).all() and (reward >= 0).all()
    assert (reward[~won] > 0).any()


# ---------------------------------------------------------------------------------------------
# configuration errors


@pytest.mark.parametrize(
    ("name", "options", "must_mention"),
    [
        ("starcraft:3m", {}, ["env.name", "jaxmpe, matrix, miner, mpe, overcooked, sc2, smacv2, smax, smax_stock"]),
        ("3m", {}, ["env.name", "backend:scenario"]),
        ("smax:4m", {}, ["env.name", "3m", "5m_vs_6m", "3s5z", "MMM2", "8m_vs_9m"]),
        ("smacv2:protoss_5_vs_6", {}, ["env.name", "protoss_5_vs_5", "zerg_20_vs_23"]),
        ("mpe:simple_tag", {}, ["simple_reference", "simple_speaker_listener", "simple_spread"]),
        ("matrix:climbing", {}, ["me_igm, monotonic"]),
        ("smax_stock:3m", {"sight_range": 3}, ["env.options.sight_range", "attack_mode, episode_limit"]),
        ("smax:3m", {"sight_range": "far"}, ["env.options.sight_range", "expected float"]),
        ("smax:3m", {"reward": "dense"}, ["reward", "smac, smax"]),
        ("mpe:simple_spread", {"local_ratio": 0.5}, ["env.options.local_ratio", "max_cycles, shared_reward"]),
        ("smax:3m", {"episode_limit": "100"}, ["env.options.episode_limit", "expected int"]),
        ("smax:3m", {"reward_scale": True}, ["env.options.reward_scale", "expected float"]),
        ("mpe:simple_spread", {"shared_reward": 1}, ["env.options.shared_reward", "expected bool"]),
        ("smax:3m", {"attack_mode": "nearest"}, ["env.options.attack_mode", "closest, random"]),
        ("smax:3m", {"episode_limit": 0}, ["env.options.episode_limit", "positive"]),
        ("mpe:simple_spread", {"max_cycles": 0}, ["env.options.max_cycles", "positive"]),
        ("matrix:me_igm", {"payoff": "8,-12"}, ["env.options.payoff", "expected list"]),
    ],
)
def test_config_errors(name: str, options: dict, must_mention: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        validate_env(name, options)
    for text in must_mention:
        assert text in str(err.value)


def test_validate_env_resolves_defaults() -> None:
    spec, options = validate_env("smax_stock:5m_vs_6m")
    assert options == {
        "episode_limit": 100, "reward_scale": 1.0, "see_enemy_actions": True,
        "walls_cause_death": True, "attack_mode": "closest",
    }
    assert (spec.n_agents, spec.n_actions, spec.episode_limit) == (5, 11, 100)
    spec, options = validate_env("smax:5m_vs_6m")
    assert options["episode_limit"] is None and options["sight_range"] is None and options["reward"] == "smac"
    assert (spec.n_agents, spec.n_actions, spec.episode_limit) == (5, 11, 70)  # SMAC's limit
    assert validate_env("mpe:simple_spread")[1] == {"max_cycles": 25, "shared_reward": False}
    assert validate_env("matrix:me_igm")[0].n_agents == 2


@pytest.mark.parametrize("backend", sorted(BACKEND_MODULES))
def test_env_catalog_mirrors_the_backend(backend: str) -> None:
    """The workflow checks planned runs against marlrepro.env_catalog (no torch/JAX at parse time):
    its scenarios (which the backends take from their simulators) and fused backends must be the
    backends' own. (The backends take their options from the catalog.)"""
    module = importlib.import_module(BACKEND_MODULES[backend])
    assert env_catalog.SCENARIOS[backend] == module.SCENARIOS
    assert (backend in env_catalog.FUSED_BACKENDS) == hasattr(module.Env, "fused_rollout")
    assert set(env_catalog.SCENARIOS) == set(BACKEND_MODULES)


@pytest.mark.parametrize("name", ["matrix:me_igm", "mpe:simple_spread", "smax_stock:3m", "overcooked:cramped_room"])
def test_rng_state_lets_a_new_env_continue_the_random_stream(name: str) -> None:
    """What a resumed run relies on: a fresh env given a saved rng_state resets exactly as the
    saving env's next reset does (and, where the env is random, unlike its own seed's reset)."""
    saving = make(name, num_envs=2, seed=1)
    saving.reset()
    saved = saving.rng_state()
    expected = saving.reset()
    fresh = make(name, num_envs=2, seed=2)
    own = fresh.reset()
    fresh.set_rng_state(saved)
    continued = fresh.reset()
    assert torch.equal(continued.state, expected.state) and torch.equal(continued.obs, expected.obs)
    assert torch.equal(own.state, expected.state) == name.startswith("matrix:")  # deterministic game
