"""TD(lambda) targets against hand-computed returns."""

from __future__ import annotations

import torch

from marlrepro.learners.targets import td_lambda_targets


def _episode(length: int, horizon: int):
    """One episode of ``length`` steps padded to ``horizon``, terminating at its last step."""
    rewards = torch.zeros(1, horizon, 1)
    rewards[0, :length, 0] = torch.arange(1, length + 1, dtype=torch.float32)
    terminated = torch.zeros(1, horizon, 1)
    terminated[0, length - 1, 0] = 1
    mask = torch.zeros(1, horizon, 1)
    mask[0, :length, 0] = 1
    target_qs = torch.randn(1, horizon + 1, 1)
    return rewards, terminated, mask, target_qs


def test_lambda_zero_is_one_step_target():
    rewards, terminated, mask, q = _episode(4, 6)
    gamma = 0.9
    out = td_lambda_targets(rewards, terminated, mask, q, gamma, 0.0)
    expected = rewards + gamma * q[:, 1:] * (1 - terminated)
    assert torch.allclose(out[:, :4], expected[:, :4])


def test_lambda_one_is_monte_carlo_return():
    rewards, terminated, mask, q = _episode(4, 6)
    gamma = 0.9
    out = td_lambda_targets(rewards, terminated, mask, q, gamma, 1.0)
    r = rewards[0, :4, 0]
    mc = torch.tensor([sum(gamma**k * r[t + k] for k in range(4 - t)) for t in range(4)])
    assert torch.allclose(out[0, :4, 0], mc, atol=1e-5)


def test_padding_never_leaks_into_real_steps():
    rewards, terminated, mask, q = _episode(3, 5)
    out1 = td_lambda_targets(rewards, terminated, mask, q, 0.99, 0.6)
    q2 = q.clone()
    q2[:, 4:] += 1000.0  # values after the episode ended
    rewards2 = rewards.clone()
    rewards2[:, 3:] = 50.0  # rewards in padded steps are masked out
    out2 = td_lambda_targets(rewards2, terminated, mask, q2, 0.99, 0.6)
    assert torch.allclose(out1[:, :3], out2[:, :3])


def _pymarl2_recursion(rewards, terminated, mask, target_qs, gamma, td_lambda):
    """pymarl2's ``build_td_lambda_targets`` loop, as the reference."""
    returns = torch.zeros_like(target_qs)
    returns[:, -1] = target_qs[:, -1] * (1 - terminated.sum(dim=1))
    for t in range(rewards.shape[1] - 1, -1, -1):
        bootstrap = (1 - td_lambda) * gamma * target_qs[:, t + 1] * (1 - terminated[:, t])
        returns[:, t] = td_lambda * gamma * returns[:, t + 1] + mask[:, t] * (rewards[:, t] + bootstrap)
    return returns[:, :-1]


def test_closed_form_matches_the_backward_recursion_on_padded_batches():
    generator = torch.Generator().manual_seed(0)
    b, t, k = 16, 150, 3
    lengths = torch.randint(1, t + 1, (b,), generator=generator)
    steps = torch.arange(t)
    mask = (steps[None] < lengths[:, None]).float().unsqueeze(-1)
    ends_by_task = torch.rand(b, generator=generator) < 0.7
    terminated = ((steps[None] == lengths[:, None] - 1) & ends_by_task[:, None]).float().unsqueeze(-1)
    rewards = torch.randn(b, t, 1, generator=generator, dtype=torch.float64) * mask
    q = torch.randn(b, t + 1, k, generator=generator, dtype=torch.float64)
    for gamma, td_lambda in ((0.99, 0.6), (0.99, 0.0), (0.9, 1.0)):
        fast = td_lambda_targets(rewards, terminated.double(), mask.double(), q, gamma, td_lambda)
        slow = _pymarl2_recursion(rewards, terminated.double(), mask.double(), q, gamma, td_lambda)
        assert torch.allclose(fast, slow, atol=1e-10), (gamma, td_lambda)
