"""Return targets for TD learning over padded episode batches."""

from __future__ import annotations

import torch


def td_lambda_targets(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    target_qs: torch.Tensor,
    gamma: float,
    td_lambda: float,
) -> torch.Tensor:
    """TD(lambda) returns, computed backwards (pymarl2 ``build_td_lambda_targets``).

    ``G_T = Q_T · (1 − Σ_t d_t)`` and, for ``t < T``,
    ``G_t = λγ G_{t+1} + m_t [ r_t + (1 − λ) γ Q_{t+1} (1 − d_t) ]``.

    ``rewards``, ``terminated``, ``mask`` are [B, T, 1]; ``target_qs`` is [B, T+1, K] (K = 1
    for a mixed Q_tot, K = N for independent learners). Returns [B, T, K]. With ``λ = 0`` this is
    the one-step target ``r_t + γ Q_{t+1} (1 − d_t)``.
    """
    returns = torch.zeros_like(target_qs)
    returns[:, -1] = target_qs[:, -1] * (1 - terminated.sum(dim=1))
    for t in range(rewards.shape[1] - 1, -1, -1):
        bootstrap = (1 - td_lambda) * gamma * target_qs[:, t + 1] * (1 - terminated[:, t])
        returns[:, t] = td_lambda * gamma * returns[:, t + 1] + mask[:, t] * (rewards[:, t] + bootstrap)
    return returns[:, :-1]
