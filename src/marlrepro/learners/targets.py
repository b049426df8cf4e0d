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
    """TD(lambda) returns (pymarl2 ``build_td_lambda_targets``), without a loop over time.

    pymarl2's backward recursion is ``G_T = Q_T · (1 − Σ_t d_t)`` and, for ``t < T``,
    ``G_t = λγ G_{t+1} + c_t`` with ``c_t = m_t [ r_t + (1 − λ) γ Q_{t+1} (1 − d_t) ]``.
    A linear recurrence with constant coefficient ``a = λγ`` has the closed form
    ``G_t = Σ_{k=t}^{T-1} a^{k−t} c_k + a^{T−t} G_T``, computed here as one product with the
    upper-triangular matrix ``U[t, k] = a^{k−t}`` (T ≤ a few hundred, so ``T²`` is small), which
    replaces ~8 kernel launches per time step by a handful in total.

    ``rewards``, ``terminated``, ``mask`` are [B, T, 1]; ``target_qs`` is [B, T+1, K] (K = 1
    for a mixed Q_tot, K = N for independent learners). Returns [B, T, K]. With ``λ = 0`` this is
    the one-step target ``r_t + γ Q_{t+1} (1 − d_t)``.
    """
    steps = rewards.shape[1]
    bootstrap = (1 - td_lambda) * gamma * target_qs[:, 1:] * (1 - terminated)
    c = mask * (rewards + bootstrap)  # [B, T, K]
    last = target_qs[:, -1:] * (1 - terminated.sum(dim=1, keepdim=True))  # G_T, [B, 1, K]
    a = td_lambda * gamma
    t = torch.arange(steps + 1, device=target_qs.device, dtype=target_qs.dtype)
    lag = t[None, :-1] - t[:-1, None]  # lag[t, k] = k − t
    decay = torch.where(lag >= 0, a ** lag.clamp(min=0), 0.0)  # U, [T, T]
    tail = (a ** (steps - t[:-1]))[:, None]  # a^{T−t}, [T, 1]
    return torch.einsum("tk,bkq->btq", decay, c) + tail * last
