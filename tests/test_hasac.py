"""HASAC: the n-step soft target, the sequential agent update, masks, the JAX actor, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from episode_batches import masked_cases_batch, trainer_with_one_rollout

from marlrepro.buffer import Episodes
from marlrepro.config import load_config
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.learners.hasac import HASACLearner, discrete_target_entropy
from marlrepro.learners.targets import n_step_targets
from marlrepro.train import PackMember, Trainer, train

SPEC = EnvSpec("test", n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=5)


def _matrix_config(*extra: str):
    return load_config(["config/algos/hasac.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=32", "learner.batch_size=32", "learner.buffer_size=256",
        "agent.hidden_dim=32", "exploration.warmup_steps=0", "run.eval_episodes=4", "run.device=cpu",
        "run.progress=false", "tracking.uri=", *extra,
    ])


def _n_step_loop(rewards, terminated, mask, values, gamma, n):
    """HARL's n-step transition, one step at a time: sum up to n rewards until the episode ends,
    then bootstrap from the value of the observation reached unless the episode terminated."""
    b, t = rewards.shape
    out = torch.zeros(b, t, dtype=values.dtype)
    for i in range(b):
        length = int(mask[i].sum())
        for s in range(length):
            total, k = 0.0, 0
            while k < n and s + k < length:
                total += gamma ** k * rewards[i, s + k]
                k += 1
            ended = s + k == length and terminated[i, length - 1] == 1
            out[i, s] = total + (0.0 if ended else gamma ** k * values[i, s + k])
    return out


def test_n_step_targets_equal_a_loop_over_terminated_truncated_and_padded_episodes():
    torch.manual_seed(0)
    t = 9
    lengths, ends = [9, 9, 4, 1, 6], [False, True, True, True, False]
    mask = torch.zeros(5, t, dtype=torch.float64)
    terminated = torch.zeros(5, t, dtype=torch.float64)
    for i, (length, ended) in enumerate(zip(lengths, ends, strict=True)):
        mask[i, :length] = 1
        terminated[i, length - 1] = float(ended)
    rewards = torch.randn(5, t, dtype=torch.float64) * mask
    values = torch.randn(5, t + 1, dtype=torch.float64)
    for n in (1, 3, 20):
        ours = n_step_targets(rewards, terminated, mask, values, 0.97, n)
        torch.testing.assert_close(ours, _n_step_loop(rewards, terminated, mask, values, 0.97, n))
    # one step: r + γ V(s') but at a terminal step
    one = n_step_targets(rewards, terminated, mask, values, 0.97, 1)
    assert one[0, 0].item() == pytest.approx((rewards[0, 0] + 0.97 * values[0, 1]).item())
    assert one[1, -1].item() == pytest.approx(rewards[1, -1].item())


def test_the_target_entropy_is_a_fraction_of_the_uniform_policys_over_the_available_actions():
    """0.98 log|A| nats with every action available, not the reference code's 0 (the Discrete
    space's empty shape); where actions are masked, 0.98 log of the available ones, and 0 for a
    dead agent."""
    n = torch.tensor([3, 14, 2, 1])
    torch.testing.assert_close(discrete_target_entropy(n, 0.98), 0.98 * torch.log(n.float()))
    assert discrete_target_entropy(torch.tensor(1), 0.98).item() == 0.0


@pytest.mark.parametrize("available", [2, 3])
def test_a_uniform_policy_moves_the_temperature_towards_the_reachable_target(available):
    """A uniform policy over the available actions has their whole entropy, log |A(s)|: the
    temperature's gradient is its excess over the target, log |A(s)| − 0.98 log |A(s)| > 0, which
    lowers α, also where only 2 of 3 actions are available (a target of 0.98 log 3 > log 2 would
    raise α without end). Phase 1: agent 0, alive at every step."""
    learner = HASACLearner(SPEC, _matrix_config(), torch.device("cpu"))
    with torch.no_grad():
        for p in learner.actor.parameters():  # a uniform policy: zero logits
            p.zero_()
    batch = _batch(0)
    batch.avail_actions[..., 0, available:] = False
    learner.zero_grad()
    learner(batch, torch.tensor(0.0), torch.tensor(1), 1).loss.backward()
    assert learner.log_alphas.grad[0].item() == pytest.approx(0.02 * math.log(available), rel=1e-4)
    assert learner.log_alphas.grad[1].item() == 0.0  # agent 1's temperature trains in its own phase


def _recorded_update(tmp_path):
    """One HASAC update (1 + N gradient steps) on a collected rollout; per phase: the phase id, the
    critic's and each agent's actor slices that moved."""
    trainer = trainer_with_one_rollout(_matrix_config("learner.updates_per_rollout=1", "run.seed=3"), tmp_path)
    params = trainer.learners.params
    actor = [name for name in params if name.startswith("actor.agent.")]
    critic = [name for name in params if name.startswith("critic.")]
    step, moves = trainer._step, []

    def recorded(inputs, mask, stage):
        before = {name: params[name].clone() for name in actor + critic}
        terms = step(inputs, mask, stage)
        agents = [any(not torch.equal(params[name][0, i], before[name][0, i]) for name in actor)
                  for i in range(trainer.spec.n_agents)]
        critic_moved = any(not torch.equal(params[name], before[name]) for name in critic)
        moves.append((int(inputs["phase"][0]), critic_moved, agents, stage))
        return terms

    trainer._step = recorded
    trainer._train_step([True])
    return trainer, moves


def test_an_update_trains_the_critic_then_every_agent_once_in_a_random_order(tmp_path):
    trainer, moves = _recorded_update(tmp_path)
    n = trainer.spec.n_agents
    assert moves[0][0] == 0 and moves[0][3] == 0  # the critic's phase, in the critic's stage
    assert sorted(phase for phase, *_ in moves[1:]) == list(range(1, n + 1))
    assert moves[0][1] and not any(moves[0][2])  # phase 0: the critic alone
    for phase, critic_moved, agents, stage in moves[1:]:
        assert stage == 1 and not critic_moved
        assert agents == [i == phase - 1 for i in range(n)]  # agent phase − 1 alone
    # each set of weights counted one step of its own optimiser: Adam's bias correction as HARL's
    for state, name in zip(trainer.optimizer.state, [k for k, p in trainer.learners.params.items() if p.requires_grad],
                           strict=True):
        assert state["step"].flatten().tolist() == [1.0] * state["step"].numel(), name
    # the orders of successive updates are drawn afresh from the run's generator
    orders = {tuple(trainer.learners.template.update_order(trainer.runs[0].generator).tolist()) for _ in range(40)}
    assert orders == {(0, 1, 2), (0, 2, 1)}


def test_the_target_critic_follows_by_polyak_averaging(tmp_path):
    trainer = trainer_with_one_rollout(_matrix_config("learner.updates_per_rollout=1"), tmp_path)
    params = trainer.learners.params
    target_before = {name: p.clone() for name, p in params.items() if name.startswith("target_critic.")}
    trainer._train_step([True])
    for name, before in target_before.items():
        online = params[name.removeprefix("target_")]
        torch.testing.assert_close(params[name], before + 0.005 * (online - before))


def _batch(seed: int) -> Episodes:
    return masked_cases_batch(SPEC, seed)


def _loss_and_grads(learner: HASACLearner, batch: Episodes, phase: int):
    learner.zero_grad()
    torch.manual_seed(0)  # the same Gumbel draws for both batches
    loss = learner(batch, torch.tensor(0.0), torch.tensor(phase), min(phase, 1)).loss
    loss.backward()
    return loss.detach(), [p.grad for p in learner.parameters() if p.grad is not None]


@pytest.mark.parametrize("phase", [0, 1, 2])
def test_padded_steps_and_a_dead_agents_steps_contribute_nothing(phase):
    """After an episode's end nothing counts, in any phase; and agent 1's losses (phase 2) ignore
    the steps where it is dead (a changed state there moves the critic's value of them), while
    agent 0's (phase 1), alive there, do not."""
    learner = HASACLearner(SPEC, _matrix_config(), torch.device("cpu"))
    batch, padded, dead = _batch(0), _batch(0), _batch(0)
    padded.obs[2, 4:] += 1.0  # episode 2 ends after step 2: observation 3 is its last
    padded.state[2, 4:] -= 1.0
    padded.actions[2, 3:] = (padded.actions[2, 3:] + 1) % SPEC.n_actions
    padded.reward[2, 3:] = 5.0
    dead.state[:, 3:5] += 2.0  # the states where agent 1 is dead (not the final bootstrap one)
    reference = _loss_and_grads(learner, batch, phase)
    for changed, ignored in ((padded, True), (dead, phase == 2)):
        loss, grads = _loss_and_grads(learner, changed, phase)
        same = torch.equal(loss, reference[0]) and all(
            torch.equal(a, b) for a, b in zip(grads, reference[1], strict=True))
        assert same == ignored


def test_the_jax_actor_equals_the_torch_actor():
    import jax.numpy as jnp

    from marlrepro.envs.jax_rollout import per_agent_policy_step

    learner = HASACLearner(SPEC, _matrix_config(), torch.device("cpu"))
    with torch.no_grad():  # away from the initial near-uniform head
        for p in learner.actor.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    inputs = torch.randn(6, SPEC.n_agents, SPEC.obs_dim)
    hidden = learner.actor.initial_hidden(6)
    expected, _ = learner.actor.agent.step(inputs.reshape(-1, SPEC.obs_dim), hidden)
    params = {name: jnp.asarray(p.detach().numpy()) for name, p in learner.actor.agent.named_parameters()}
    ours = per_agent_policy_step(params, jnp.asarray(inputs.numpy()))
    np.testing.assert_allclose(np.asarray(ours).reshape(-1, SPEC.n_actions), expected.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_hasac_beats_random_policies_on_the_matrix_game(tmp_path):
    """ME-IGM's one-step matrix game, [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]: uniformly random
    policies expect -40/9 ≈ -4.4. HASAC's policies, trained against a joint-action critic, must
    expect more than -1 (less than a 1/12 chance that one agent plays A while the other does not);
    with faster learning rates than SMACv2's so that 1600 steps suffice (seeds 0-3 reach -0.05
    or better)."""
    final = train(_matrix_config("run.t_max=1600", "run.eval_interval=800",  # 0.125 × 32 steps: 4 updates a rollout
                                 "learner.lr=0.003", "hasac.critic_lr=0.003", "hasac.alpha_lr=0.01",
                                 "hasac.alpha_init=0.1", "run.seed=0"), tmp_path)
    policies = torch.tensor(final["policy"])
    expected = float(policies[0] @ torch.tensor(final["payoff"]) @ policies[1])
    assert expected > -1.0, (expected, final["policy"])
    assert len(final["joint_q"]) == 3  # the critic's value of every joint action


def test_hasac_trains_on_smax_through_the_fused_rollout(tmp_path):
    """A pack of two seeds on SMAX 3m, acting in the fused JAX rollout: every network and
    temperature trains, the losses stay finite, the evaluation is greedy."""
    from training_checks import run_and_check_training

    members = [PackMember(load_config(["config/algos/hasac.yaml"], [
        "env.name=smax:3m", "env.num_envs=4", "env.options.episode_limit=30", "learner.batch_size=4",
        "learner.updates_per_env_step=null", "learner.updates_per_rollout=2", "agent.hidden_dim=32", "exploration.warmup_steps=100", "run.t_max=300",
        "run.eval_interval=150", "run.eval_episodes=4", "run.device=cpu", "run.progress=false", "tracking.uri=",
        f"run.seed={seed}"]), tmp_path / f"seed{seed}") for seed in (0, 1)]
    trainer = Trainer(members)
    assert trainer.runner._fused is not None
    for final in run_and_check_training(trainer):
        assert 0.0 <= final["test_won_mean"] <= 1.0


def test_a_hasac_pack_resumed_after_a_crash_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """The actors, the critic and its Polyak target, the temperatures and every phase's optimiser
    state resume exactly, bit for bit, for a pack of two seeds."""
    from run_outputs import assert_crashed_pack_resumes_exactly

    def pack(name: str) -> list[PackMember]:
        return [PackMember(_matrix_config("run.t_max=384", "run.eval_interval=96", "run.checkpoint_interval=3",
                                          "learner.updates_per_rollout=1", f"run.seed={seed}"),
                           tmp_path / name / f"seed{seed}") for seed in (0, 1)]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path, crash_after=7)


@pytest.mark.parametrize(("setting", "field"), [
    ("hasac.polyak=0", "hasac.polyak"), ("hasac.polyak=1.5", "hasac.polyak"), ("hasac.n_step=0", "hasac.n_step"),
    ("hasac.alpha_init=0", "hasac.alpha_init"), ("hasac.target_entropy_scale=2", "hasac.target_entropy_scale"),
    ("imitation.mode=dagger", "imitation.mode"),
])
def test_bad_hasac_settings_are_refused_with_the_field_named(setting, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _matrix_config(setting)
