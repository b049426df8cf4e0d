"""MAPPO and IPPO: GAE, the clipped surrogate, the death mask, the on-policy schedule, ValueNorm, the
Huber value loss, the agent-specific state, learning."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from episode_batches import masked_cases_batch, trainer_with_one_rollout

from marlrepro.buffer import Episodes
from marlrepro.config import load_config
from marlrepro.core.optim import StackedAdam
from marlrepro.env_catalog import ALLY_STATE_BACKENDS
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError
from marlrepro.learners.ppo import (
    PPOLearner,
    agent_state_index,
    clipped_surrogate,
    clipped_value_error,
    live_agents,
)
from marlrepro.learners.targets import gae_advantages
from marlrepro.learners.value_norm import ValueNorm
from marlrepro.train import PackMember, Trainer, _run_rows, train, train_pack

SPEC = EnvSpec("test", n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=5)


def _matrix_config(algo: str, *extra: str):
    """The recipe of ``algo`` on ME-IGM's matrix game, whose state has no per-ally blocks: MAPPO's
    critic sees the state (and the observation) instead of the agent-specific state."""
    return load_config([f"config/algos/{algo}.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=32", "learner.batch_size=32", "learner.buffer_size=32",
        "agent.hidden_dim=32", "run.eval_episodes=4", "run.device=cpu", "run.progress=false", "tracking.uri=",
        *(["ppo.critic_input=state"] if algo == "mappo" else []), *extra,
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
    assert live_agents(avail, SPEC).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_where_no_agent_dies_a_forced_single_action_is_a_live_agents():
    """Gold Miner's convention (``one_action_means_dead=False``): its mask may force one action
    (a dig on rich gold, a rest), and an elimination ends the episode, so every agent is live."""
    avail = torch.tensor([[True, False, False], [False, True, False], [True, True, False]])
    no_deaths = dataclasses.replace(SPEC, one_action_means_dead=False)
    assert live_agents(avail, no_deaths).tolist() == [1.0, 1.0, 1.0]
    assert not validate_env("miner:easy_2_vs_2", {})[0].one_action_means_dead
    assert validate_env("smax:3m", {})[0].one_action_means_dead


def test_mappo_counts_a_forced_step_of_an_env_without_deaths_in_its_actor_average():
    """The same batch (agent 1 with a single available action from step 3) under the two death
    conventions: PPO's actor loss averages its clipped surrogate over the live agent-steps, so
    the forced steps count in its denominators only where they are not deaths. With the same
    weights, the logged entropy is the mean over the counted agent-steps, and a forced step's
    policy has zero entropy, so counting the forced steps scales it by (all − forced) / all."""
    config = _matrix_config("mappo")
    dies, lives = SPEC, dataclasses.replace(SPEC, one_action_means_dead=False)
    batch = masked_cases_batch(SPEC, 0)
    forced = (batch.filled.unsqueeze(-1) * (batch.avail_actions[:, :-1].sum(-1) == 1)).sum()
    live = {}
    for spec in (dies, lives):
        torch.manual_seed(0)
        learner = PPOLearner(spec, config, torch.device("cpu"))
        live[spec.one_action_means_dead] = float(learner(batch, torch.tensor(0.0)).logged["entropy"])
    assert forced > 0
    counted = batch.filled.sum() * SPEC.n_agents
    assert live[False] == pytest.approx(live[True] * float(counted - forced) / float(counted), rel=1e-5)


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
    trainer = trainer_with_one_rollout(_matrix_config("mappo", "learner.updates_per_rollout=1"), tmp_path)
    params = trainer.learners.params
    before = {name: p.clone() for name, p in params.items() if name.startswith("actor.agent.")}
    trainer._train_step([True])
    for name, value in before.items():
        assert torch.equal(params[f"behaviour_{name}"], value), name  # the collecting actor, kept
    assert not torch.equal(params["actor.agent.fc2.weight"], before["actor.agent.fc2.weight"])  # it learned
    assert trainer.update_sums[0, 1] == 0  # the update's clip fraction: its ratios were all 1
    # ValueNorm (the recipe's): the update moved the critic's statistics once; the behaviour copy
    # keeps those the rollout was collected under (none yet)
    buffers = trainer.learners.buffers
    assert buffers["critic.value_norm.debiasing_term"].tolist() == pytest.approx([1 - 0.99999])
    assert buffers["behaviour_critic.value_norm.debiasing_term"].tolist() == [0.0]


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
    ("ppo.huber_delta=0", "ppo.huber_delta"), ("ppo.huber_delta=-10", "ppo.huber_delta"),
    ("ppo.huber_delta=big", "ppo.huber_delta"), ("ppo.value_norm=3", "ppo.value_norm"),
])
def test_bad_ppo_settings_are_refused_with_the_field_named(setting, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _matrix_config("mappo", setting)


@pytest.mark.parametrize("env", ["matrix:me_igm", "smax_stock:3m", "mpe:simple_spread"])
def test_the_agent_specific_state_is_refused_where_the_state_has_no_ally_blocks(env):
    with pytest.raises(ConfigError) as error:
        load_config(["config/algos/mappo.yaml"], [f"env.name={env}"])
    message = str(error.value)
    assert message.startswith("ppo.critic_input: 'agent_state'") and repr(env) in message
    assert message.endswith("valid choices here: state, obs")


@pytest.mark.parametrize("env", ["smax:3m", "smacv2:protoss_5_vs_5", "smax_stock:3m", "matrix:me_igm",
                                 "mpe:simple_spread", "overcooked:cramped_room"])
def test_the_backends_with_ally_blocks_are_those_whose_spec_has_a_unit_dim(env):
    """:data:`ALLY_STATE_BACKENDS` (checked before anything is built) agrees with the backends'
    specs (sc2 reads its unit_dim from the game, get_ally_num_attributes)."""
    spec, _ = validate_env(env)
    assert (spec.unit_dim > 0) == (env.split(":")[0] in ALLY_STATE_BACKENDS)


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
    """The actor, the critic, their behaviour copies, the value normaliser's statistics (the
    critic's and the behaviour copy's) and both optimisers' states resume exactly: outputs equal,
    bit for bit, for a pack of two seeds with the learning rates decaying and the Huber loss."""
    from run_outputs import assert_crashed_pack_resumes_exactly

    def pack(name: str) -> list[PackMember]:
        return [PackMember(_matrix_config("mappo", "run.t_max=640", "run.eval_interval=160", "run.checkpoint_interval=5",
                                          "ppo.lr_decay=true", "ppo.value_norm=true", "ppo.huber_delta=1",
                                          f"run.seed={seed}"), tmp_path / name / f"seed{seed}")
                for seed in (0, 1)]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path, crash_after=13)


# ------------------------------------------------------------------------- value normalisation
def _value_norm_loop(batches: list[list[float]]) -> list[tuple[tuple[float, float, float], list[float]]]:
    """on-policy's ValueNorm (β 0.99999, ε 1e-5, variance floor 1e-2) in plain Python: each batch
    moves the averages, then is normalised with the moved statistics; per update, the averages
    ``(m, m₂, d)`` and the normalised batch."""
    beta, eps = 0.99999, 1e-5
    m = m2 = d = 0.0
    out = []
    for xs in batches:
        m = beta * m + (1 - beta) * sum(xs) / len(xs)
        m2 = beta * m2 + (1 - beta) * sum(x * x for x in xs) / len(xs)
        d = beta * d + (1 - beta)
        mean = m / max(d, eps)
        std = math.sqrt(max(m2 / max(d, eps) - mean * mean, 1e-2))
        out.append(((m, m2, d), [(x - mean) / std for x in xs]))
    return out


def test_value_norm_follows_the_reference_update_rule_over_several_updates():
    moments = ValueNorm().moments
    mean, std = moments.scale()
    assert mean.item() == 0 and std.item() == pytest.approx(0.1)  # no update yet: the variance floor
    g = torch.Generator().manual_seed(0)
    returns = [torch.randn(4, 6, 3, generator=g) * 5 + 3 * k for k in range(6)]  # drifting returns
    masks = [(torch.rand(4, 6, 1, generator=g) > 0.3).float().expand(4, 6, 3) for _ in returns]  # filled steps
    expected = _value_norm_loop([x[w.bool()].tolist() for x, w in zip(returns, masks, strict=True)])
    for x, w, (averages, normalised) in zip(returns, masks, expected, strict=True):
        moments = moments.updated(x, w)
        torch.testing.assert_close(torch.stack(list(moments)), torch.tensor(averages), rtol=1e-5, atol=0.0)
        torch.testing.assert_close(moments.normalise(x)[w.bool()], torch.tensor(normalised), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(moments.denormalise(moments.normalise(x)), x, rtol=1e-5, atol=1e-5)


def _value_loss_loop(values, old_values, targets, clip: float, delta: float | None) -> list[float]:
    """on-policy's ``cal_value_loss`` per sample: the larger of the losses of the raw and the
    clipped value, each ``e²/2`` (mse_loss) or Huber's (huber_loss)."""

    def loss(e: float) -> float:
        if delta is None or abs(e) <= delta:
            return e * e / 2
        return delta * (abs(e) - delta / 2)

    out = []
    for v, o, r in zip(values, old_values, targets, strict=True):
        clipped = o + min(max(v - o, -clip), clip)
        out.append(max(loss(r - v), loss(r - clipped)))
    return out


@pytest.mark.parametrize("delta", [None, 10.0, 1.0])
def test_the_clipped_value_loss_equals_a_loop_and_huber_bounds_its_gradient(delta):
    g = torch.Generator().manual_seed(2)
    values = (torch.randn(3000, generator=g, dtype=torch.float64) * 8).requires_grad_(True)
    old_values = values.detach() + torch.randn(3000, generator=g, dtype=torch.float64) * 0.5
    targets = torch.randn(3000, generator=g, dtype=torch.float64) * 20
    loss = clipped_value_error(values, old_values, targets, 0.2, delta)
    expected = _value_loss_loop(values.tolist(), old_values.tolist(), targets.tolist(), 0.2, delta)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    loss.sum().backward()
    largest = values.grad.abs().max().item()
    if delta is None:
        assert largest > 20  # a squared error's gradient grows with the error
    else:
        assert largest == pytest.approx(delta)  # reached where |R - V| > delta, never exceeded
        assert (values.grad.abs() <= delta).all()


# ------------------------------------------------------------------------- agent-specific state
def test_agent_state_index_moves_each_agents_block_first():
    assert agent_state_index(3, 2, 8).tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [2, 3, 0, 1, 4, 5, 6, 7],
        [4, 5, 0, 1, 2, 3, 6, 7],
    ]


def test_the_agent_specific_state_of_a_real_rollout_equals_a_loop(tmp_path):
    """On SMAX 3s5z (eight allies of two types; the state: ally blocks, enemy blocks, last
    actions), each agent's critic input is its own ally block, the other allies' blocks in order,
    the rest of the state, then its one-hot id; the state part is zero wherever the agent is dead
    (a single available action, or after its episode's end) and the id stays."""
    from marlrepro.envs.smax import build_env

    config = load_config(["config/algos/mappo.yaml"], [
        "env.name=smax:3s5z", "env.num_envs=8", "learner.batch_size=8", "learner.buffer_size=8", "agent.hidden_dim=8",
        "run.device=cpu", "run.progress=false", "tracking.uri="])
    trainer = Trainer([PackMember(config, tmp_path)])
    episodes, _ = trainer.runner.run([0.0], [True], [trainer.runs[0].generator])
    batch = _run_rows(episodes, 0)
    inputs = trainer.learners.module_for(0).critic.inputs(batch)
    n, u = trainer.spec.n_agents, trainer.spec.unit_dim
    # the layout the reordering assumes: the state starts with one block of u features per ally
    names = build_env("3s5z", **validate_env("smax:3s5z")[1]).state_feature_names
    for i in range(n):
        assert all(re.fullmatch(rf"ally_[a-z_]+_{i}(_bit_\d+)?", name) for name in names[i * u:(i + 1) * u])
    dead = 0
    for b in range(batch.state.shape[0]):
        for t in range(batch.state.shape[1]):
            state = batch.state[b, t]
            for i in range(n):
                alive = int(batch.avail_actions[b, t, i].sum()) > 1
                dead += not alive and t < int(batch.filled[b].sum())
                blocks = [i] + [j for j in range(n) if j != i]
                view = torch.cat([state[j * u:(j + 1) * u] for j in blocks] + [state[n * u:]])
                expected = torch.cat([view if alive else torch.zeros_like(view), torch.eye(n)[i]])
                assert torch.equal(inputs[b, t, i], expected), (b, t, i)
    assert dead > 0  # some agents died within their episodes


def test_a_mappo_pack_with_value_norm_equals_its_runs_alone(tmp_path):
    """Two seeds of the recipe (ValueNorm, the agent-specific state) on SMAX 3m packed in one
    process equal, run by run, the runs alone: metrics and final summary exactly, weights and the
    value normaliser's statistics to float rounding (CPU). MAPPO's weight gradients are reduced
    in another order under the pack's vmap than alone, and differ in their last bits (so before
    ValueNorm too: docs/deviations.md, packed = alone)."""
    from run_outputs import assert_packed_run_equals_alone

    def member(seed: int, where: str) -> PackMember:
        return PackMember(load_config(["config/algos/mappo.yaml"], [
            "env.name=smax:3m", "env.num_envs=4", "learner.batch_size=4", "learner.buffer_size=4", "agent.hidden_dim=16",
            "learner.updates_per_rollout=2", "run.t_max=400", "run.eval_interval=200", "run.eval_episodes=4",
            "run.device=cpu", "run.progress=false", "tracking.uri=", f"run.seed={seed}"]), tmp_path / where / f"seed{seed}")

    train_pack([member(seed, "pack") for seed in (0, 1)])
    for seed in (0, 1):
        train_pack([member(seed, "alone")])
        weights = assert_packed_run_equals_alone(tmp_path / "pack" / f"seed{seed}", tmp_path / "alone" / f"seed{seed}",
                                                 exact_weights=False)
        assert weights["critic.value_norm.debiasing_term"] > 0
