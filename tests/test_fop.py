"""FOP (Zhang et al. 2021; PKU-RL/FOP-DMAC-MACPF), ME-IGM's maximum-entropy actor-critic baseline:
its mixer and losses against loop implementations of the reference code, its rollout policy in
both runners, its temperature schedule and separate optimisers, packs, and learning on the
matrix game."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import torch

from marlrepro.buffer import Episodes
from marlrepro.config import AgentConfig, MixerConfig, load_config
from marlrepro.controller import SoftmaxPolicyController
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.envs.jax_rollout import epsilon_mix, softmax_sample
from marlrepro.errors import ConfigError
from marlrepro.learners.fop import FOPLearner
from marlrepro.nets.fop_mixer import FOPMixer
from marlrepro.train import PackMember, Trainer, train_pack

SPEC = EnvSpec(name="t", n_agents=3, n_actions=4, obs_dim=5, state_dim=11, episode_limit=6, unit_dim=2)


def _config(*extra: str):
    return load_config(["config/algos/fop.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=4", "learner.batch_size=8", "run.t_max=160",
        "run.eval_interval=80", "run.eval_episodes=4", "run.device=cpu", "run.progress=false", "tracking.uri=",
        *extra])


def _mixer(unit_dim: int = 2) -> FOPMixer:
    torch.manual_seed(0)
    mixer = FOPMixer(SPEC.n_agents, SPEC.n_actions, SPEC.state_dim, unit_dim, MixerConfig(embed_dim=8, hypernet_embed=16),
                     n_head=3, attend_reg_coef=0.01)
    for p in mixer.parameters():
        p.data.normal_(0, 0.5)
    return mixer


def _reference_mixer(mixer: FOPMixer, q: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                     v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PKU-RL's ``FOPMixer.forward`` written out head by head and agent by agent, on our stacked
    weights (head ``h``'s layers are rows ``h`` of each stacked layer)."""
    n, a, h_n, e = SPEC.n_agents, SPEC.n_actions, mixer.n_head, mixer.embed_dim
    hid = mixer.selector_hidden.out_features // h_n
    onehot = torch.nn.functional.one_hot(actions, a).float().flatten(-2)
    q_tot, logits_all = [], []
    for s, qs, vs, u in zip(states, q, v, onehot, strict=True):
        weights, lambdas = torch.zeros(n), torch.zeros(n)
        for h in range(h_n):
            w1 = mixer.selector_hidden.weight[h * hid:(h + 1) * hid]
            b1 = mixer.selector_hidden.bias[h * hid:(h + 1) * hid]
            selector = torch.relu(w1 @ s + b1) @ mixer.selector_out[h]
            key_w = mixer.key.weight[h * e:(h + 1) * e]
            logits = torch.stack([selector @ (key_w @ s[i * mixer.unit_dim:(i + 1) * mixer.unit_dim])
                                  for i in range(n)])
            logits_all.append(logits)
            weights += torch.softmax(logits / math.sqrt(e), dim=0)
            kappa = (mixer.lambda_key.weight[h] @ s + mixer.lambda_key.bias[h]).abs() + 1e-10
            for i in range(n):
                agent = torch.sigmoid(mixer.lambda_agents.weight[h * n + i] @ s + mixer.lambda_agents.bias[h * n + i])
                action = torch.sigmoid(mixer.lambda_action.weight[h * n + i] @ torch.cat([s, u])
                                       + mixer.lambda_action.bias[h * n + i])
                lambdas[i] += kappa * agent * action
        weights = weights + 1e-10
        value = mixer.value(s)
        total = sum(weights[i] * qs[i] + value / n for i in range(n))
        total = total + sum((lambdas[i] - 1) * (weights[i] * (qs[i] - vs[i])) for i in range(n))
        q_tot.append(total)
    logits_all = torch.stack(logits_all).view(len(states), h_n, n)
    regulariser = mixer.attend_reg_coef * sum(logits_all[:, h].pow(2).mean() for h in range(h_n))
    return torch.stack(q_tot).view(-1, 1), regulariser


def test_the_mixer_equals_the_reference_written_head_by_head():
    mixer = _mixer()
    torch.manual_seed(1)
    q, v, states = torch.randn(7, 3), torch.randn(7, 3), torch.randn(7, SPEC.state_dim)
    actions = torch.randint(0, SPEC.n_actions, (7, 3))
    ours, reg = mixer(q, states, actions, v)
    expected, expected_reg = _reference_mixer(mixer, q, states, actions, v)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(reg, expected_reg, atol=1e-5, rtol=1e-5)


def test_the_attention_weights_are_positive_sum_to_the_heads_and_read_each_allys_block():
    mixer = _mixer()
    states = torch.randn(50, SPEC.state_dim)
    weights, _ = mixer.attention(states)
    assert bool((weights > 0).all())
    torch.testing.assert_close(weights.sum(dim=-1), torch.full((50,), 3.0))
    moved = states.clone()
    moved[:, 2:4] += 1.0  # ally 1's block only
    assert not torch.allclose(mixer.attention(moved)[0], weights)
    beyond = states.clone()
    beyond[:, SPEC.n_agents * 2:] += 1.0  # past the ally blocks: the keys do not read it (the queries do)
    assert torch.equal(mixer.units(beyond), mixer.units(states))


def test_without_ally_blocks_the_keys_are_the_agents_ids():
    mixer = _mixer(unit_dim=0)
    units = mixer.units(torch.randn(4, 5, SPEC.state_dim))
    assert torch.equal(units, torch.eye(3).expand(4, 5, 3, 3))


def test_q_tot_grows_with_each_agents_value_through_its_attention_weight_only():
    """The advantage term is stopped: ∂Q_tot/∂Q_i = w_i(s) > 0 (FOP's IGO-consistent mixing)."""
    mixer = _mixer()
    q = torch.randn(9, 3, requires_grad=True)
    states, v = torch.randn(9, SPEC.state_dim), torch.randn(9, 3)
    actions = torch.randint(0, SPEC.n_actions, (9, 3))
    q_tot, _ = mixer(q, states, actions, v)
    (grad,) = torch.autograd.grad(q_tot.sum(), q)
    torch.testing.assert_close(grad, mixer.attention(states)[0] + 1e-10)


@pytest.mark.parametrize(("t_env", "alpha"), [(0, 0.5), (40_000, 0.3), (90_000, 0.05), (1_000_000, 0.05)])
def test_the_temperature_follows_the_codes_schedule(t_env, alpha):
    learner = FOPLearner(SPEC, _config(), torch.device("cpu"))
    assert float(learner.temperature(torch.tensor(float(t_env)))) == pytest.approx(alpha)


def _batch(episodes: int = 5) -> Episodes:
    torch.manual_seed(3)
    batch = Episodes.empty(episodes, SPEC, torch.device("cpu"))
    batch.obs.normal_()
    batch.state.normal_()
    batch.avail_actions.copy_(torch.rand(batch.avail_actions.shape) < 0.7)
    batch.avail_actions[..., 0] = True
    batch.actions.copy_(torch.distributions.Categorical(batch.avail_actions[:, :-1].float()).sample())
    batch.reward.normal_()
    lengths = [6, 4, 3, 6, 1]
    for b, length in enumerate(lengths):
        batch.filled[b, :length] = 1.0
        if length < 6 or b == 0:
            batch.terminated[b, length - 1] = 1.0  # episode 3 is cut by the limit, the rest end
    return batch


def _reference_losses(learner: FOPLearner, batch: Episodes, t_env: float, gen_seed: int):
    """PKU-RL's ``train_actor`` and ``train_critic`` as written (a time loop for TD(λ), a loop per
    critic), on the same sampled next actions; returns (actor loss, critic 1 loss, critic 2 loss)."""
    cfg = learner.config
    alpha = max(0.05, 0.5 - t_env / 200000)
    avail = batch.avail_actions
    mask = batch.filled.unsqueeze(-1)
    logits = learner.actor.sequence(batch.obs, batch.actions, avail)
    pi = torch.softmax(logits, dim=-1).masked_fill(~avail, 1e-10)  # as the code: a floor, renormalised
    pi = (pi / pi.sum(-1, keepdim=True)).masked_fill(~avail, 1e-10)
    q = [c.local_values(batch) for c in (learner.critic_1, learner.critic_2)]
    tq = [c.local_values(batch) for c in (learner.target_critic_1, learner.target_critic_2)]
    log_pi = torch.log(pi[:, :-1])
    target = (pi[:, :-1] * (alpha * log_pi - torch.minimum(*q)[:, :-1].detach())).sum(-1)
    actor = (target * mask).sum() / (mask.sum() * SPEC.n_agents)
    torch.manual_seed(gen_seed)
    log_all = torch.log_softmax(logits.masked_fill(~avail, -1e9), dim=-1)
    gumbel = -torch.log(-torch.log(torch.rand_like(log_all).clamp(min=1e-20)))
    nxt = (log_all + gumbel).argmax(-1)
    target_tot = []
    for critic, values in zip((learner.target_critic_1, learner.target_critic_2), tq, strict=True):
        v = alpha * torch.logsumexp(values / alpha, dim=-1)
        chosen = values.gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
        target_tot.append(critic.mixer(chosen, batch.state, nxt, v)[0])
    target_tot = torch.minimum(*target_tot)
    b, t = batch.reward.shape
    returns = torch.zeros(b, t, 1)
    for e in range(b):  # pymarl's build_td_lambda_targets, step by step
        g = target_tot[e, t] * (1 - batch.terminated[e].sum())
        for s in reversed(range(t)):
            g = cfg.td_lambda * cfg.gamma * g + mask[e, s] * (
                batch.reward[e, s] + (1 - cfg.td_lambda) * cfg.gamma * target_tot[e, s + 1] * (1 - batch.terminated[e, s]))
            returns[e, s] = g
    pi_taken = pi.gather(-1, nxt.unsqueeze(-1)).squeeze(-1)[:, 1:]
    pi_taken = torch.where(mask.expand_as(pi_taken) == 0, torch.ones_like(pi_taken), pi_taken)
    targets = returns - alpha * torch.log(pi_taken).mean(dim=-1, keepdim=True)
    critics = []
    for critic, values in zip((learner.critic_1, learner.critic_2), q, strict=True):
        v = alpha * torch.logsumexp(values / alpha, dim=-1)
        taken = values[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        q_tot, reg = critic.mixer(taken, batch.state[:, :-1], batch.actions, v[:, :-1])
        critics.append(((q_tot - targets) * mask).pow(2).sum() / mask.sum() + reg)
    return actor, *critics


def test_the_loss_and_its_gradients_equal_the_reference_losses_written_as_loops():
    """One backward of our summed loss gives the actor the gradient of the code's actor loss and
    each critic that of its own TD loss (the terms stop each other's gradients)."""
    learner = FOPLearner(SPEC, _config(), torch.device("cpu"))
    for net in (learner.target_critic_1, learner.target_critic_2):
        for p in net.parameters():
            p.data.add_(torch.randn_like(p) * 0.1)  # targets differ from the online critics
    batch, t_env = _batch(), 30_000.0
    torch.manual_seed(11)
    ours = learner(batch, torch.tensor(t_env)).loss
    grads = torch.autograd.grad(ours, [p for p in learner.parameters() if p.requires_grad])
    actor, critic_1, critic_2 = _reference_losses(learner, batch, t_env, gen_seed=11)
    torch.testing.assert_close(ours, actor + critic_1 + critic_2, atol=1e-4, rtol=1e-5)
    named = dict(zip([n for n, p in learner.named_parameters() if p.requires_grad], grads, strict=True))
    for prefix, loss in (("actor.", actor), ("critic_1.", critic_1), ("critic_2.", critic_2)):
        params = {n: p for n, p in learner.named_parameters() if n.startswith(prefix) and p.requires_grad}
        expected = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (name, _), grad in zip(params.items(), expected, strict=True):
            want = torch.zeros_like(named[name]) if grad is None else grad
            torch.testing.assert_close(named[name], want, atol=1e-4, rtol=1e-4, msg=name)


def test_the_q_gap_of_figure_2_equals_the_mixer_at_both_greedy_joint_actions_step_by_step():
    """ME-IGM Figure 2's measure on a batch: critic 1's Q_tot at each agent's greedy action on its
    own values, minus at its greedy action on its policy, over the filled steps only; computed
    here one step at a time with explicit argmaxes over the available actions."""
    learner = FOPLearner(SPEC, _config(), torch.device("cpu"))
    batch, t_env = _batch(), 30_000.0
    terms = learner(batch, torch.tensor(t_env))
    alpha = torch.tensor(max(0.05, 0.5 - t_env / 200_000))
    with torch.no_grad():
        q = learner.critic_1.local_values(batch)[:, :-1]
        logits = learner.actor.sequence(learner.actor.observe(batch), batch.actions, batch.avail_actions)[:, :-1]
        gaps = []
        for b, t in zip(*torch.nonzero(batch.filled).T.tolist(), strict=True):
            avail, values, v = batch.avail_actions[b, t], q[b, t], alpha * torch.logsumexp(q[b, t] / alpha, dim=-1)
            best = torch.tensor([max((a for a in range(SPEC.n_actions) if avail[i, a]), key=lambda a: values[i, a])
                                 for i in range(SPEC.n_agents)])
            chosen = torch.tensor([max((a for a in range(SPEC.n_actions) if avail[i, a]), key=lambda a: logits[b, t, i, a])
                                   for i in range(SPEC.n_agents)])
            value = [learner.critic_1.mixer(values.gather(-1, u[:, None]).squeeze(-1)[None], batch.state[b, t][None],
                                            u[None], v[None])[0] for u in (best, chosen)]
            gaps.append(float(value[0] - value[1]))
    assert learner.update_scalars == ("q_gap",) and set(terms.logged) == {"q_gap"}
    assert float(terms.logged["q_gap"]) == pytest.approx(np.mean(gaps), abs=1e-5)
    assert any(abs(g) > 1e-3 for g in gaps)  # the untrained actor and critic disagree somewhere


def test_the_actor_and_each_critic_have_their_own_learning_rate_and_clipping(tmp_path):
    trainer = Trainer([PackMember(_config("fop.critic_lr=0.002"), tmp_path / "run")])
    names = [name for name, p in trainer.learners.params.items() if p.requires_grad]
    lrs = dict(zip(names, (float(lr) for lr in trainer.optimizer.lrs), strict=True))
    assert sorted({lrs[n] for n in names if n.startswith("actor.")}) == [pytest.approx(0.0005)]
    assert sorted({lrs[n] for n in names if n.startswith("critic_")}) == [pytest.approx(0.002)]
    by_id = {id(p): name for name, p in trainer.learners.params.items()}
    sets = [{by_id[id(p)].split(".")[0] for p in params} for params in trainer._clip_sets]
    assert sorted(map(sorted, sets)) == [["actor"], ["critic_1"], ["critic_2"]]
    assert "actor.log_alpha" not in names  # the actor's temperature is fixed at 1


def _fop_actor(spec: EnvSpec) -> SoftmaxPolicyController:
    return SoftmaxPolicyController(spec, AgentConfig(), transform=None, alpha_init=1.0, learn_temperature=False)


def test_the_rollout_policy_mixes_the_actors_softmax_with_uniform_available_actions_in_both_runners():
    """``(1 − ε) π + ε · uniform(available)`` (FOP's multinomial selector), in the torch sampler
    and its JAX twin alike; evaluation is greedy on π."""
    actor, epsilon = _fop_actor(SPEC), 0.3
    torch.manual_seed(2)
    logits = torch.randn(3, SPEC.n_agents, SPEC.n_actions) * 2
    avail = torch.rand(3, SPEC.n_agents, SPEC.n_actions) < 0.6
    avail[..., 1] = True
    pi = torch.softmax(logits.masked_fill(~avail, -1e9), dim=-1)
    expected = (1 - epsilon) * pi + epsilon * avail.float() / avail.sum(-1, keepdim=True)
    zeros = torch.zeros(3, dtype=torch.bool)
    step = EnvBatch(torch.zeros(3, SPEC.n_agents, SPEC.obs_dim), torch.zeros(3, SPEC.state_dim), avail,
                    torch.zeros(3), zeros, zeros, zeros, None)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([actor.choose_actions(logits, step, epsilon, generator) for _ in range(6000)])
    counts = torch.nn.functional.one_hot(draws, SPEC.n_actions).float().mean(dim=0)
    torch.testing.assert_close(counts, expected, atol=0.03, rtol=0)

    keys = jax.random.split(jax.random.key(0), 6000)
    jl, ja = jnp.asarray(logits.numpy()), jnp.asarray(avail.numpy())

    def draw(key):
        sample_key, mix_key = jax.random.split(key)
        return epsilon_mix(mix_key, softmax_sample(sample_key, jl, ja, jnp.float32(1.0)), ja, jnp.float32(epsilon))

    jax_draws = torch.tensor(np.asarray(jax.vmap(draw)(keys)))
    jax_counts = torch.nn.functional.one_hot(jax_draws.long(), SPEC.n_actions).float().mean(dim=0)
    torch.testing.assert_close(jax_counts, expected, atol=0.03, rtol=0)
    greedy = actor.choose_actions(logits, step, epsilon, generator, explore=False)
    assert torch.equal(greedy, logits.masked_fill(~avail, float("-inf")).argmax(-1))


@pytest.mark.parametrize(("override", "message"), [
    ("max_entropy.mode=opt", "max_entropy.mode"),
    ("fop.alpha_finish=0.9", "fop.alpha_finish"),
    ("fop.n_head=0", "fop.n_head"),
])
def test_bad_fop_settings_fail_before_any_compute(override, message):
    with pytest.raises(ConfigError, match=message):
        _config(override)


def test_a_fop_pack_resumed_after_a_crash_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """The actor, both critics and their targets, three optimisers' state, the temperature's
    schedule (each run's own t_env) and the sampled bootstrap actions resume exactly."""
    from run_outputs import assert_crashed_pack_resumes_exactly

    def pack(name: str) -> list[PackMember]:
        return [PackMember(_config("run.t_max=240", "run.checkpoint_interval=5", "learner.target_update_interval=16",
                                   f"run.seed={seed}"), tmp_path / name / f"seed{seed}") for seed in (0, 1)]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path)


def test_fops_q_tot_fits_the_non_monotonic_payoff(tmp_path):
    """ME-IGM Table 1's FOP row: its mixer (QPLEX-like, not monotone) learns the game's payoff,
    every joint action within 1.5 (the payoffs span 20), in every seed. Uniform exploration
    (ε = 1) and a 10× learning rate make it a CPU test of 1,000 updates; the policies are not
    asserted (the paper's misalignment is a claim for the table, config/published/me_igm.yaml)."""
    members = [PackMember(load_config(["config/algos/fop.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=16", "run.t_max=16000", "run.eval_interval=16000",
        "run.eval_episodes=8", "run.device=cpu", "run.progress=false", "tracking.uri=", "learner.lr=0.005",
        "fop.critic_lr=0.005", "exploration.epsilon_finish=1.0", f"run.seed={seed}"]), tmp_path / f"seed{seed}")
        for seed in (0, 1)]
    for member, final in zip(members, train_pack(members), strict=True):
        metrics = pd.read_parquet(member.run_dir / "metrics.parquet")  # the scheduled temperature, logged
        np.testing.assert_allclose(metrics["temperature"], np.maximum(0.05, 0.5 - metrics["t_env"] / 200_000), rtol=1e-6)
        # Figure 2's gap: the mean over the updates since the last evaluation (none before the first)
        assert math.isnan(metrics["q_gap"].iloc[0]) and np.isfinite(metrics["q_gap"].iloc[-1])
        q, payoff = np.asarray(final["joint_q"]), np.asarray(final["payoff"])
        assert np.abs(q - payoff).max() <= 1.5, (final["seed"], q.round(2).tolist())
        assert final["updates"] >= 999  # one per rollout of 16 episodes, from the second (batch 32)
