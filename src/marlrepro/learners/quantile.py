"""The quantile Huber loss of distributional TD learning (IQN: Dabney et al. 2018, §3)."""

from __future__ import annotations

import torch
from torch import nn


def quantile_huber_loss(
    pred: torch.Tensor,
    taus: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    kappa: float = 1.0,
) -> torch.Tensor:
    """Masked quantile Huber loss of predicted quantiles against samples of the target return.

    With predictions ``θ_i = Z(τ_i)``, ``i = 1..N``, target samples ``T_j = sg[r + γ Z'(τ'_j)]``,
    ``j = 1..N'``, and pairwise errors ``u_ij = T_j − θ_i``, each step's loss is

        ``ℓ = Σ_i (1/N') Σ_j |τ_i − 1{u_ij < 0}| · L_κ(u_ij) / κ``,

    where ``L_κ`` is the Huber loss (quadratic within ``κ``, linear beyond). The weight pushes
    ``θ_i`` up with weight ``τ_i`` when targets lie above it and down with ``1 − τ_i`` when below,
    so its minimiser is the ``τ_i``-quantile of the target distribution (up to ``O(κ)``; with
    ``κ`` large against the spread it tends to the ``τ_i``-expectile). The result is the mean of
    ``ℓ`` over real steps: ``Σ_bt m_bt ℓ_bt / Σ_bt m_bt``.

    ``pred`` [B, T, N], ``taus`` [B, T, N] (the fractions of ``pred``), ``target`` [B, T, N']
    (treated as a constant), ``mask`` [B, T] (1 for real steps, 0 for padding; padded entries
    must be finite). Any leading shape shared by all four works in place of [B, T].
    """
    u = target.detach().unsqueeze(-2) - pred.unsqueeze(-1)  # [B, T, N, N']
    huber = nn.functional.huber_loss(u, torch.zeros_like(u), reduction="none", delta=kappa) / kappa
    weight = (taus.detach().unsqueeze(-1) - (u.detach() < 0).to(u.dtype)).abs()
    per_step = (weight * huber).mean(dim=-1).sum(dim=-1)  # mean over N', sum over N
    return (per_step * mask).sum() / mask.sum()
