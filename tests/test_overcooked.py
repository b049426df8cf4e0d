"""The Overcooked backend (``overcooked:<layout>``, JaxMARL's v1): shapes, a scripted soup
delivered for 20, the shaped reward and its annealing, auto-reset and truncation at 400 steps."""

from __future__ import annotations

import pytest
import torch

from marlrepro.envs import make
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError

UP, DOWN, RIGHT, LEFT, STAY, INTERACT = range(6)
# cramped_room (x, y): onion piles (0, 1) and (4, 1), pot (2, 0), plates (1, 3), delivery (3, 3);
# agent 0 starts at (1, 1), agent 1 at (3, 1). A move into a blocked cell only turns the agent.
ONION_TO_POT = [LEFT, INTERACT, RIGHT, UP, INTERACT, LEFT]  # ends back at (1, 1)
COOK = 20  # steps from the third onion to a ready soup
SCRIPT = (
    ONION_TO_POT * 3  # the third onion starts the pot
    + [DOWN, DOWN, INTERACT]  # to (1, 2), face the plate pile, take a plate
    + [STAY] * COOK
    + [UP, RIGHT, UP, INTERACT]  # to (1, 1), to (2, 1), face the pot, take the soup
    + [DOWN, RIGHT, DOWN, INTERACT]  # to (2, 2), to (3, 2), face the delivery, deliver
)


def _play(env, script: list[int]) -> list[float]:
    """Agent 0 follows ``script`` in every kitchen, agent 1 stays; the rewards of kitchen 0."""
    env.reset()
    rewards = []
    for action in script:
        actions = torch.tensor([[action, STAY]] * env.num_envs)
        rewards.append(float(env.step(actions).reward[0]))
    return rewards


@pytest.mark.parametrize(("layout", "grid"), [("cramped_room", (4, 5)), ("asymmetric_advantages", (5, 9))])
def test_spec_and_first_step(layout, grid):
    spec, options = validate_env(f"overcooked:{layout}")
    size = grid[0] * grid[1] * 26
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.episode_limit) == (2, size, size, 6, 400)
    assert options == {"episode_limit": 400, "shaped_reward": 0.0, "shaped_reward_horizon": 2_500_000}
    env = make(f"overcooked:{layout}", num_envs=3, seed=0)
    first = env.reset()
    assert first.obs.shape == (3, 2, size) and first.state.shape == (3, size)
    assert first.avail_actions.all() and first.avail_actions.shape == (3, 2, 6)
    assert torch.equal(first.state, first.obs[:, 0])  # the state is agent 0's full grid
    assert not (first.terminated.any() or first.truncated.any() or first.won.any())
    assert first.obs.max() > 0 and first.obs.min() >= 0


def test_a_scripted_soup_is_delivered_for_20():
    env = make("overcooked:cramped_room", num_envs=2, seed=0)
    rewards = _play(env, SCRIPT)
    assert rewards[-1] == 20.0 and sum(rewards) == 20.0  # the delivery reward only, at the delivery


def test_the_shaped_reward_pays_the_steps_and_anneals():
    """With ``shaped_reward=1`` the same script also earns 3 per onion into the pot, 3 for the plate
    and 5 for the soup; half-way through the horizon, half as much."""
    env = make("overcooked:cramped_room", num_envs=2, seed=0, shaped_reward=1.0, shaped_reward_horizon=10**6)
    rewards = _play(env, SCRIPT)
    onions = [i for i, a in enumerate(SCRIPT) if a == INTERACT][1:6:2]  # the three placements
    assert [rewards[i] for i in onions] == pytest.approx([3.0, 3.0, 3.0], abs=0.01)  # annealed by a few steps
    assert sum(rewards) == pytest.approx(20 + 3 * 3 + 3 + 5, abs=0.01)
    env.env_steps = 5 * 10**5
    assert env.shaping_coefficient() == 0.5
    assert sum(_play(env, SCRIPT)) == pytest.approx(20 + 0.5 * (3 * 3 + 3 + 5), abs=0.01)


def test_episodes_end_by_truncation_at_400_steps_and_restart():
    env = make("overcooked:cramped_room", num_envs=2, seed=1)
    first = env.reset()
    for t in range(1, 401):
        step = env.step(torch.tensor([[DOWN, STAY], [STAY, STAY]]))
        assert not step.terminated.any() and not step.won.any()
        assert bool(step.truncated.all()) == (t == 400), t
    def own_position(batch):
        return batch.obs[0, 0].view(4, 5, 26)[..., 0]

    # the last step shows the final kitchen (a truncated episode bootstraps from it): agent 0 has
    # moved down, away from its start cell
    assert not torch.equal(own_position(step), own_position(first))
    # the next step restarts the kitchen, whatever the actions: agent 0 is back at its start cell
    restart = env.step(torch.tensor([[DOWN, STAY], [STAY, STAY]]))
    assert torch.equal(own_position(restart), own_position(first))
    assert not (restart.truncated | restart.terminated).any() and not restart.reward.any()
    step = env.step(torch.tensor([[DOWN, STAY], [STAY, STAY]]))
    assert not step.truncated.any(), "the new episode counts its steps from the restart"


def test_a_saved_rng_state_replays_the_same_kitchens():
    env = make("overcooked:cramped_room", num_envs=4, seed=3)
    saved = env.rng_state()
    a = env.reset().obs
    env.set_rng_state(saved)
    assert torch.equal(env.reset().obs, a)


def test_bad_options_are_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="overcooked scenario.*asymmetric_advantages, cramped_room"):
        validate_env("overcooked:asymm_advantages")
    with pytest.raises(ConfigError, match="env.options.shaped_reward: expected a coefficient >= 0"):
        validate_env("overcooked:cramped_room", {"shaped_reward": -1.0})
    with pytest.raises(ConfigError, match="env.options.episode_limt"):
        validate_env("overcooked:cramped_room", {"episode_limt": 10})


def test_a_uint8_replay_buffer_stores_overcooked_episodes_exactly(tmp_path):
    """The grids are small integers, so ``learner.buffer_dtype: uint8`` keeps them exactly at a
    quarter of float32's size; other backends refuse it before anything is built."""
    from marlrepro.config import load_config
    from marlrepro.train import Trainer

    overrides = ["env.name=overcooked:cramped_room", "env.options.episode_limit=12", "env.num_envs=2",
                 "run.device=cpu", "run.progress=false", "tracking.uri=", "learner.buffer_size=4",
                 "learner.batch_size=2"]
    trainer = Trainer.solo(load_config(["config/algos/qmix.yaml"], [*overrides, "learner.buffer_dtype=uint8"]),
                           tmp_path / "run")
    episodes, _ = trainer.runner.run([1.0], [True], [trainer.runs[0].generator])
    trainer.buffer.insert(episodes, [0])
    stored = trainer.buffer.storage
    assert stored.obs.dtype == stored.state.dtype == torch.uint8
    assert torch.equal(stored.obs[0, :2].float(), episodes.obs[0]) and episodes.obs.max() >= 1
    assert torch.equal(stored.state[0, :2].float(), episodes.state[0])
    with pytest.raises(ConfigError, match="learner.buffer_dtype: uint8 .* overcooked.*'smax:3m'.*float32, float16"):
        load_config(["config/algos/qmix.yaml"], ["env.name=smax:3m", "learner.buffer_dtype=uint8"])


def test_the_fused_rollout_collects_the_stepwise_runners_episodes():
    """Without the shaped reward the kitchens run in the fused JAX rollout (one call per batch of
    episodes): greedy episodes equal the stepwise runner's, step for step, truncated at the limit."""
    from episode_batches import greedy_rollouts_by_mode

    collected = greedy_rollouts_by_mode(
        lambda mode: make("overcooked:cramped_room", num_envs=3, seed=5, episode_limit=12))
    (fused, fused_stats), (stepwise, step_stats) = collected["fused"], collected["stepwise"]
    assert torch.equal(fused_stats.lengths, torch.full((1, 3), 12.0))
    assert torch.equal(fused_stats.returns, step_stats.returns)
    for name in ("obs", "state", "actions", "reward", "terminated", "filled"):
        assert torch.equal(fused[name], stepwise[name]), name
    # the limit ends every episode by truncation: not terminal, so its return bootstraps
    assert not fused["terminated"].any()


def test_the_shaped_reward_keeps_the_stepwise_runner():
    from marlrepro.config import load_config

    with pytest.raises(ConfigError, match="cannot anneal Overcooked's shaped reward"):
        load_config([], ["env.name=overcooked:cramped_room", "env.options.shaped_reward=1.0", "run.rollout=fused"])
    env = make("overcooked:cramped_room", num_envs=1, seed=0, shaped_reward=1.0)
    assert not env.fusable
