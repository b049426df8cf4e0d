"""Action selection respects availability masks; the schedule is linear then flat."""

from __future__ import annotations

import pytest
import torch

from marlrepro.exploration import LinearEpsilon, epsilon_greedy, masked_greedy


def test_schedule():
    eps = LinearEpsilon(1.0, 0.05, 100)
    assert eps(0) == 1.0
    assert eps(50) == pytest.approx(0.525)
    assert eps(100) == eps(10**6) == pytest.approx(0.05)


def test_unavailable_actions_are_never_chosen():
    torch.manual_seed(0)
    q = torch.randn(2000, 3, 6)
    q[..., 0] = 100.0  # the best action is unavailable
    avail = torch.rand(2000, 3, 6) > 0.5
    avail[..., 0] = False
    avail[..., 5] = True  # at least one action available
    for eps in (0.0, 0.3, 1.0):
        actions = epsilon_greedy(q, avail, eps)
        assert avail.gather(-1, actions.unsqueeze(-1)).all()


def test_greedy_picks_best_available_and_random_covers_all():
    q = torch.tensor([[5.0, 1.0, 3.0]])
    avail = torch.tensor([[False, True, True]])
    assert masked_greedy(q, avail).item() == 2
    picks = epsilon_greedy(q.expand(5000, 3), avail.expand(5000, 3), 1.0)
    counts = torch.bincount(picks, minlength=3)
    assert counts[0] == 0 and counts[1] > 2000 and counts[2] > 2000
