"""ME-IGM's pieces (paper §4–5, appendix A; notes/me_igm.md): the order-preserving transformation,
the soft TD(λ) target against a plain loop, the masked softmax policy and the temperature."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from marlrepro.config import MixerConfig
from marlrepro.learners.max_entropy import (
    away_from_policy_weights,
    masked_log_policy,
    opt_loss,
    policy_entropy,
    temperature_loss,
)
from marlrepro.learners.targets import soft_td_lambda_targets, td_lambda_targets
from marlrepro.nets.opt import OrderPreservingTransform

N_AGENTS, N_ACTIONS, STATE_DIM = 4, 7, 9


def _scramble(module: torch.nn.Module, std: float) -> None:
    """Far-from-init weights, like a trained network's."""
    for p in module.parameters():
        p.data.normal_(0, std)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("std", [None, 0.5, 2.0])
def test_opt_preserves_the_order_of_every_agents_q_values_exactly(seed, std, layers):
    """Over random states, every agent's transformed Q-vector sorts exactly as its Q-vector:
    the same actions rank first, ties stay ties, and the map is strictly increasing in q (with
    hypernetworks of two layers, the code's, or one, the paper's SMACv2 runs)."""
    torch.manual_seed(seed)
    opt = OrderPreservingTransform(N_AGENTS, STATE_DIM, MixerConfig(), layers=layers).double()
    if std is not None:
        _scramble(opt, std)
    states = torch.randn(64, 5, STATE_DIM, dtype=torch.float64) * 3
    q = torch.randn(64, 5, N_AGENTS, N_ACTIONS, dtype=torch.float64) * 5
    q[..., 3] = q[..., 1]  # a tie in every Q-vector
    with torch.no_grad():
        out = opt(q, states)
    order_in, order_out = q.argsort(dim=-1, stable=True), out.argsort(dim=-1, stable=True)
    assert torch.equal(order_in, order_out)
    assert torch.equal(out[..., 3], out[..., 1])
    assert torch.equal(q.argmax(dim=-1), out.argmax(dim=-1))  # the greedy action is the raw Q's
    # strictly increasing: the inner map's slope is at least 1, the outer one's is |w5| > 0
    step = opt.inner(q + 1e-3, states) - opt.inner(q, states)
    assert (step >= 1e-3 * (1 - 1e-9)).all()
    assert ((opt(q + 1e-3, states) - out) > 0).all()


def test_without_non_negative_weights_the_order_breaks():
    """The check above can fail: the same layers with signed weights (the "ME-QMIX (MLP)"
    ablation) reorder some agents' Q-values and change their greedy actions."""
    torch.manual_seed(0)
    mlp = OrderPreservingTransform(N_AGENTS, STATE_DIM, MixerConfig(), non_negative=False).double()
    _scramble(mlp, 1.0)
    q = torch.randn(64, N_AGENTS, N_ACTIONS, dtype=torch.float64) * 5
    with torch.no_grad():
        out = mlp(q, torch.randn(64, STATE_DIM, dtype=torch.float64) * 3)
    assert (q.argmax(dim=-1) != out.argmax(dim=-1)).any()


def _soft_loop(rewards, terminated, mask, q, entropy, alpha, gamma, lam):
    """ME-IGM appendix A's soft TD(λ) recursion written step by step (notes/me_igm.md), with the
    λ-branch's entropy masked after the episode's end: the reference."""
    b, t = rewards.shape[:2]
    returns = torch.zeros(b, t + 1, 1, dtype=q.dtype)
    returns[:, t] = q[:, t] * (1 - terminated.sum(dim=1))
    for i in range(t - 1, -1, -1):
        alive = mask[:, i] * (1 - terminated[:, i])
        lam_branch = lam * gamma * (returns[:, i + 1] + alpha * alive * entropy[:, i + 1])
        one_step = (1 - lam) * gamma * (q[:, i + 1] + alpha * entropy[:, i + 1]) * (1 - terminated[:, i])
        returns[:, i] = lam_branch + mask[:, i] * (rewards[:, i] + one_step)
    return returns[:, :t]


def _padded_batch(b: int, t: int, seed: int):
    """Episodes of random lengths padded to ``t``: most end by termination, some are cut by the
    batch's end (no termination)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    steps = torch.arange(t)
    mask = (steps[None] < lengths[:, None]).double().unsqueeze(-1)
    ends = torch.rand(b, generator=g) < 0.7
    terminated = ((steps[None] == lengths[:, None] - 1) & ends[:, None]).double().unsqueeze(-1)
    rewards = torch.randn(b, t, 1, generator=g, dtype=torch.float64) * mask
    q = torch.randn(b, t + 1, 1, generator=g, dtype=torch.float64)
    entropy = torch.rand(b, t + 1, 1, generator=g, dtype=torch.float64) * 3
    return rewards, terminated, mask, q, entropy


@pytest.mark.parametrize(("gamma", "lam", "alpha"), [(0.99, 0.4, 0.3), (0.99, 0.6, 0.03), (0.9, 0.0, 1.0),
                                                     (0.9, 1.0, 0.5)])
def test_soft_td_lambda_target_equals_the_loop_on_padded_batches(gamma, lam, alpha):
    rewards, terminated, mask, q, entropy = _padded_batch(16, 40, seed=1)
    fast = soft_td_lambda_targets(rewards, terminated, mask, q, entropy, alpha, gamma, lam)
    slow = _soft_loop(rewards, terminated, mask, q, entropy, alpha, gamma, lam)
    torch.testing.assert_close(fast, slow, atol=1e-10, rtol=0)


def test_soft_target_is_the_soft_one_step_target_at_lambda_zero_and_the_plain_one_at_alpha_zero():
    rewards, terminated, mask, q, entropy = _padded_batch(8, 12, seed=2)
    one_step = rewards + 0.9 * (1 - terminated) * (q[:, 1:] + 0.2 * entropy[:, 1:])
    torch.testing.assert_close(soft_td_lambda_targets(rewards, terminated, mask, q, entropy, 0.2, 0.9, 0.0),
                               one_step * mask, atol=1e-12, rtol=0)
    torch.testing.assert_close(soft_td_lambda_targets(rewards, terminated, mask, q, entropy, 0.0, 0.99, 0.6),
                               td_lambda_targets(rewards, terminated, mask, q, 0.99, 0.6), atol=1e-12, rtol=0)


def test_entropy_after_an_episodes_end_never_reaches_its_targets():
    """Entropy at padded steps (after termination) changes no target of a real step. The
    authors' unmasked λ-branch would let it in: the loop without the mask differs."""
    rewards, terminated, mask, q, entropy = _padded_batch(16, 30, seed=3)
    after = torch.ones_like(entropy)
    after[:, 1:] = 1 - mask  # steps 1.. that are past the episode's end (padding)
    noisy = entropy + 100.0 * after
    real = mask.bool()
    base = soft_td_lambda_targets(rewards, terminated, mask, q, entropy, 0.3, 0.99, 0.6)
    moved = soft_td_lambda_targets(rewards, terminated, mask, q, noisy, 0.3, 0.99, 0.6)
    ended = terminated.sum(dim=1).bool().squeeze(-1)  # the cut episodes bootstrap from the batch end
    assert torch.equal(base[ended][real[ended]], moved[ended][real[ended]])
    unmasked = _soft_loop(rewards, terminated, torch.ones_like(mask), q, noisy, 0.3, 0.99, 0.6) * mask
    assert not torch.allclose(unmasked[ended][real[ended]], base[ended][real[ended]])


def test_masked_policy_gives_unavailable_actions_no_probability_and_sharpens_as_alpha_falls():
    torch.manual_seed(0)
    logits = torch.randn(50, N_AGENTS, N_ACTIONS) * 3
    avail = torch.rand(50, N_AGENTS, N_ACTIONS) < 0.6
    avail[..., 0] = True
    entropies = []
    for alpha in (10.0, 1.0, 0.1, 0.01):
        log_probs = masked_log_policy(logits, avail, alpha)
        probs = log_probs.exp()
        assert torch.equal(probs[~avail], torch.zeros_like(probs[~avail]))
        torch.testing.assert_close(probs.sum(-1), torch.ones(50, N_AGENTS))
        assert torch.equal(probs.argmax(-1), logits.masked_fill(~avail, -math.inf).argmax(-1))
        entropy = policy_entropy(log_probs)
        assert torch.isfinite(entropy).all()
        assert (entropy <= avail.sum(-1).log() + 1e-5).all()  # at most uniform over the available
        entropies.append(entropy.mean())
    assert all(a > b for a, b in itertools.pairwise(entropies))


@pytest.mark.parametrize(("target", "start"), [(1.0, 2.0), (1.0, -3.0), (0.3, 0.0)])
def test_the_temperature_moves_the_policy_entropy_to_the_target(target, start):
    """Gradient steps on the temperature's objective alone (the policy's logits fixed) bring
    the softmax policy's entropy to the target entropy, from above and from below."""
    torch.manual_seed(0)
    logits = torch.randn(32, 5) * 2
    avail = torch.ones(32, 5, dtype=torch.bool)
    log_alpha = torch.tensor(start, requires_grad=True)
    optimiser = torch.optim.Adam([log_alpha], lr=0.05)

    def entropy():
        return policy_entropy(masked_log_policy(logits, avail, log_alpha.exp())).mean()

    first = float(entropy().detach())
    for _ in range(600):
        optimiser.zero_grad()
        temperature_loss(log_alpha, entropy(), target).backward()
        optimiser.step()
    assert abs(float(entropy().detach()) - target) < 0.02
    assert abs(first - target) > 0.1  # it did move


def test_opt_loss_regresses_the_summed_logits_to_q_tot_only():
    q_tot = torch.randn(4, 6, 1, requires_grad=True)
    taken = torch.randn(4, 6, 3, requires_grad=True)
    mask = torch.ones(4, 6, 1)
    mask[:, 4:] = 0
    loss = opt_loss(q_tot, taken, mask)
    expected = 0.5 * ((q_tot - taken.sum(-1, keepdim=True)).pow(2)[:, :4]).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert q_tot.grad is None or torch.equal(q_tot.grad, torch.zeros_like(q_tot))  # sg[Q_tot]
    assert torch.equal(taken.grad[:, 4:], torch.zeros_like(taken.grad[:, 4:]))  # masked steps


def test_the_temperature_stops_at_its_floor_and_recovers_from_it():
    """Policies that cannot reach the target from above (ties between equally good actions) push
    log α down without end; it stops near ``ALPHA_FLOOR`` instead of underflowing, and rises as
    soon as the entropy falls below the target (Adam at ME-IGM's temperature lr 0.3)."""
    from marlrepro.learners.max_entropy import ALPHA_FLOOR, temperature

    log_alpha = torch.nn.Parameter(torch.tensor(math.log(0.03)))
    optimizer = torch.optim.Adam([log_alpha], lr=0.3)
    for entropy in [2.0] * 500 + [0.1] * 40:  # far above the target of 0.5 nats, then below it
        optimizer.zero_grad()
        temperature_loss(log_alpha, torch.tensor([entropy]), 0.5).backward()
        optimizer.step()
        if entropy == 2.0:
            assert log_alpha.item() > math.log(ALPHA_FLOOR) - 5.0  # Adam's momentum overshoots by ~10 steps at most
            assert temperature(log_alpha).item() >= torch.tensor(ALPHA_FLOOR).item()  # in float32
    assert temperature(log_alpha).item() > 10 * ALPHA_FLOOR  # it came back up


def test_td_errors_that_pull_q_tot_away_from_the_summed_logits_get_the_away_weight():
    """The released code's weighted TD loss, element by element: a TD step moves ``Q_tot`` by
    ``−td_error``; it moves away from the policies' summed logits ``Q_tot − opt_error`` when the
    two errors' signs say so (zeros included as the code has them: ``opt_error > 0``, ``td < 0``)."""
    torch.manual_seed(0)
    td = torch.randn(4, 6, 1).round()  # some exact zeros
    opt = torch.randn(4, 6, 1).round()
    weights = away_from_policy_weights(td, opt, 0.25)
    for w, t, o in zip(weights.flatten().tolist(), td.flatten().tolist(), opt.flatten().tolist(), strict=True):
        q_tot_above_logits = o > 0
        td_raises_q_tot = t < 0
        away = q_tot_above_logits == td_raises_q_tot
        assert w == (0.25 if away else 1.0)
    assert away_from_policy_weights(td, opt, 1.0).eq(1).all()
