"""MAPPO and IPPO: GAE, the clipped surrogate, the death mask, the on-policy schedule, learning."""

from __future__ import annotations

import pytest
import torch
from episode_batches import masked_cases_batch

from marlrepro.buffer import Episodes
from marlrepro.config import load_config
from marlrepro.core.optim import StackedAdam
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.learners.ppo import PPOLearner, clipped_surrogate, live_agents
from marlrepro.learners.targets import gae_advantages
from marlrepro.train import PackMember, Trainer, train

SPEC = EnvSpec("test", n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=5)


def _matrix_config(algo: str, *extra: str):
    return load_config([f"config/algos/{algo}.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=32", "learner.batch_size=32", "learner.buffer_size=32",
        "agent.hidden_dim=32", "run.eval_episodes=4", "run.device=cpu", "run.progress=false", "tracking.uri=",
        *extra,
    ])


def _gae_loop(rewards, terminated, mask, values, gamma, lam):
    """GAE as written in PPO's code: a backward loop over each episode's own steps."""
    b, t, k = rewards.shape[0], rewards.shape[1], values.shape[-1]
    out = torch.zeros(b, t, k, dtype=values.dtype)
    for i in range(b):
        following = torch.zeros(k, dtype=values.dtype)
        for s in reversed(range(t)):
            if mask[i, s, 0] == 0:
                following = torch.zeros(k, dtype=values.dtype)
                continue
            alive = 1 - terminated[i, s, 0]
            delta = rewards[i, s, 0] + gamma * values[i, s + 1] * alive - values[i, s]
            following = delta + gamma * lam * alive * following
            out[i, s] = following
    return out


def test_gae_equals_a_loop_over_terminated_truncated_and_padded_episodes():
    torch.manual_seed(0)
    t = 6
    lengths = [6, 6, 3, 1]  # truncated at the limit, terminated at the limit, terminated early (twice)
    ends = [False, True, True, True]
    mask = torch.zeros(4, t, 1, dtype=torch.float64)
    terminated = torch.zeros(4, t, 1, dtype=torch.float64)
    for i, (length, ended) in enumerate(zip(lengths, ends, strict=True)):
        mask[i, :length] = 1
        terminated[i, length - 1] = float(ended)
    rewards = torch.randn(4, t, 1, dtype=torch.float64) * mask
    values = torch.randn(4, t + 1, 2, dtype=torch.float64)  # one value per agent
    ours = gae_advantages(rewards, terminated, mask, values, 0.97, 0.9)
    torch.testing.assert_close(ours, _gae_loop(rewards, terminated, mask, values, 0.97, 0.9))
    # the truncated episode bootstraps from its final observation's value; the terminated do not
    assert ours[0, -1].tolist() == pytest.approx((rewards[0, -1] + 0.97 * values[0, -1] - values[0, -2]).tolist())
    assert ours[1, -1].tolist() == pytest.approx((rewards[1, -1] - values[1, -2]).tolist())
    assert (ours[2, 3:] == 0).all() and (ours[3, 1:] == 0).all()  # padding carries nothing


def test_the_surrogate_is_clipped_exactly_where_the_ratio_leaves_its_interval_on_the_advantage_side():
    torch.manual_seed(1)
    ratio = (torch.rand(2000, dtype=torch.float64) + 0.5).requires_grad_(True)  # in [0.5, 1.5)
    advantages = torch.randn(2000, dtype=torch.float64)
    clipped_surrogate(ratio, advantages, 0.2).sum().backward()
    active = ((advantages > 0) & (ratio > 1.2)) | ((advantages < 0) & (ratio < 0.8))
    assert active.any() and (~active).any()
    torch.testing.assert_close(ratio.grad, torch.where(active, 0.0, -advantages).detach())
    inside = (ratio > 0.8) & (ratio < 1.2)
    assert not active[inside].any()  # inside [1 - eps, 1 + eps] nothing is clipped


def test_an_agent_with_a_single_available_action_is_dead():
    avail = torch.tensor([[True, False, False], [False, True, False], [True, True, False], [True, True, True]])
    assert live_agents(avail).tolist() == [0.0, 0.0, 1.0, 1.0]


def _batch(seed: int) -> Episodes:
    return masked_cases_batch(SPEC, seed)


def _perturbed_learner() -> PPOLearner:
    """A MAPPO learner whose current networks differ from the behaviour copies (ratios away from 1)."""
    torch.manual_seed(3)
    learner = PPOLearner(SPEC, _matrix_config("mappo"), torch.device("cpu"))
    with torch.no_grad():
        for p in [*learner.actor.parameters(), *learner.critic.parameters()]:
            p.add_(torch.randn_like(p) * 0.3)
    return learner


def test_dead_agents_and_padded_steps_contribute_nothing_to_the_loss():
    """The actions a dead agent was credited with, and anything after an episode's end, leave the
    loss and every gradient unchanged."""
    learner = _perturbed_learner()
    batch = _batch(0)
    changed = _batch(0)
    changed.actions[:, 3:, 1] = (changed.actions[:, 3:, 1] + 1) % SPEC.n_actions  # the dead agent's
    changed.actions[2, 3:] = (changed.actions[2, 3:] + 2) % SPEC.n_actions  # after episode 2's end
    changed.reward[2, 3:] = 5.0
    grads = []
    for episodes in (batch, changed):
        learner.zero_grad()
        terms = learner(episodes, torch.tensor(0.0))
        terms.loss.backward()
        grads.append((terms.loss.detach(), [p.grad.clone() for p in learner.parameters() if p.requires_grad]))
    assert torch.equal(grads[0][0], grads[1][0])
    for first, second in zip(grads[0][1], grads[1][1], strict=True):
        assert torch.equal(first, second)


def test_the_behaviour_networks_are_the_ones_that_collected_the_rollout(tmp_path):
    """Before a rollout's updates the core copies the actor and critic into their behaviour copies,
    so the first update's ratios are exactly 1 (nothing clipped); the copies then stay fixed."""
    trainer = Trainer([PackMember(_matrix_config("mappo", "learner.updates_per_rollout=1"), tmp_path)])
    episodes, _ = trainer.runner.run([0.0], [True], [trainer.runs[0].generator])
    trainer.buffer.insert(episodes, [0])
    params = trainer.learners.params
    before = {name: p.clone() for name, p in params.items() if name.startswith("actor.agent.")}
    trainer._train_step([True])
    for name, value in before.items():
        assert torch.equal(params[f"behaviour_{name}"], value), name  # the collecting actor, kept
    assert not torch.equal(params["actor.agent.fc2.weight"], before["actor.agent.fc2.weight"])  # it learned
    assert trainer.update_sums[0, 1] == 0  # the update's clip fraction: its ratios were all 1


def test_linear_decay_scales_each_runs_learning_rate():
    learner = PPOLearner(SPEC, _matrix_config("mappo", "ppo.lr_decay=true", "run.t_max=1000"), torch.device("cpu"))
    assert learner.lr_scale(torch.tensor([0.0, 250.0, 1000.0, 1200.0])).tolist() == [1.0, 0.75, 0.0, 0.0]
    assert _matrix_config("mappo").ppo.lr_decay is False
    p = torch.zeros(2, 3, requires_grad=True)
    p.grad = torch.ones(2, 3)
    optimizer = StackedAdam([p], torch.tensor([0.1, 0.1]), eps=1e-8)
    optimizer.lr_scale.copy_(torch.tensor([0.0, 0.5]))
    optimizer.step(torch.tensor([True, True]))
    assert torch.equal(p[0], torch.zeros(3))  # scale 0: no step
    torch.testing.assert_close(p[1].detach(), torch.full((3,), -0.05))  # Adam's first step is lr · sign


@pytest.mark.parametrize(("setting", "field"), [
    ("learner.buffer_size=64", "learner.buffer_size"), ("learner.batch_size=5", "learner.batch_size"),
    ("ppo.clip=0", "ppo.clip"), ("ppo.entropy_coef=-1", "ppo.entropy_coef"),
    ("ppo.critic_input=world", "ppo.critic_input"), ("max_entropy.mode=opt", "max_entropy.mode"),
])
def test_bad_ppo_settings_are_refused_with_the_field_named(setting, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _matrix_config("mappo", setting)


@pytest.mark.parametrize("algo", ["mappo", "ippo"])
def test_ppo_coordinates_on_the_matrix_game(tmp_path, algo):
    """ME-IGM's one-step matrix game, [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]: uniformly random
    policies expect -40/9 ≈ -4.4. PPO's independent policy gradients settle on the safe block (0),
    not the optimum (8): relative overgeneralisation, what ME-IGM Table 1 shows for the other
    baselines. The learned policies must expect more than -1: less than a 1/12 chance that one
    agent plays A while the other does not."""
    final = train(_matrix_config(algo, "run.t_max=1600", "run.eval_interval=800", "run.seed=0"), tmp_path)
    policies = torch.tensor(final["policy"])
    payoff = torch.tensor(final["payoff"])
    expected = float(policies[0] @ payoff @ policies[1])
    assert expected > -1.0, (expected, final["policy"])
    assert final["greedy_payoff"] >= 0.0
    assert "joint_q" not in final  # PPO learns no action values


def test_a_mappo_pack_resumed_after_a_crash_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """The actor, the critic, their behaviour copies and both optimisers' states resume exactly:
    outputs equal, bit for bit, for a pack of two seeds with the learning rates decaying."""
    from run_outputs import assert_crashed_pack_resumes_exactly

    def pack(name: str) -> list[PackMember]:
        return [PackMember(_matrix_config("mappo", "run.t_max=640", "run.eval_interval=160", "run.checkpoint_interval=5",
                                          "ppo.lr_decay=true", f"run.seed={seed}"), tmp_path / name / f"seed{seed}")
                for seed in (0, 1)]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path, crash_after=13)
