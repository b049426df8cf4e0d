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
    ``G_t = λγ G_{t+1} + c_t`` with ``c_t = m_t [ r_t + (1 − λ) γ Q_{t+1} (1 − d_t) ]``,
    solved by :func:`_lambda_recursion`.

    ``rewards``, ``terminated``, ``mask`` are [B, T, 1]; ``target_qs`` is [B, T+1, K] (K = 1
    for a mixed Q_tot, K = N for independent learners). Returns [B, T, K]. With ``λ = 0`` this is
    the one-step target ``r_t + γ Q_{t+1} (1 − d_t)``.
    """
    bootstrap = (1 - td_lambda) * gamma * target_qs[:, 1:] * (1 - terminated)
    return _lambda_recursion(mask * (rewards + bootstrap), _last(target_qs, terminated), td_lambda * gamma)


def soft_td_lambda_targets(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    target_q_tot: torch.Tensor,
    entropy: torch.Tensor,
    alpha: torch.Tensor | float,
    gamma: float,
    td_lambda: float,
) -> torch.Tensor:
    """Maximum-entropy TD(λ) returns (ME-IGM appendix A; notes/me_igm.md).

    The soft value of a state is ``Q̄_t + α Ĥ_t``: the target ``Q_tot`` of actions ``a'_t`` drawn
    from the current policies plus the temperature times their entropy estimate
    ``Ĥ_t = −Σ_i log π_i(a'_{t,i} | ·)``. Appendix A's point is that the entropy enters at every
    bootstrap step, in the λ-branch as in the one-step branch:

    ``G_T = Q̄_T · (1 − Σ_t d_t)``,
    ``G_t = λγ (G_{t+1} + α e_{t+1} Ĥ_{t+1}) + m_t [ r_t + (1 − λ) γ (Q̄_{t+1} + α Ĥ_{t+1}) (1 − d_t) ]``,

    with ``e_{t+1} = m_t (1 − d_t)``: the entropy of a step after the episode's end (a padded or
    terminal state) counts nowhere. The authors' code adds it unmasked in the λ-branch, where it
    leaks from padding into the returns of finished episodes (docs/deviations.md). Collecting
    terms, ``G_t = λγ G_{t+1} + m_t [ r_t + γ (1 − d_t) ((1 − λ) Q̄_{t+1} + α Ĥ_{t+1}) ]``,
    solved by :func:`_lambda_recursion`.

    ``rewards``, ``terminated``, ``mask`` [B, T, 1]; ``target_q_tot`` and ``entropy`` [B, T+1, 1];
    ``alpha`` a scalar (tensor: the learned temperature, used as a constant). Returns [B, T, 1].
    With ``α = 0`` this is :func:`td_lambda_targets`.
    """
    soft_next = (1 - td_lambda) * target_q_tot[:, 1:] + alpha * entropy[:, 1:]
    c = mask * (rewards + gamma * (1 - terminated) * soft_next)
    return _lambda_recursion(c, _last(target_q_tot, terminated), td_lambda * gamma)


def gae_advantages(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, eq. 16) over padded episodes.

    ``δ_t = r_t + γ V_{t+1} (1 − d_t) − V_t`` and ``A_t = m_t [δ_t + γλ (1 − d_t) A_{t+1}]``:
    a terminated episode bootstraps nothing past its end; one cut by the time limit is not
    terminal and bootstraps from ``V`` at its final observation (step ``T``, the environments'
    "next step" auto-reset). Masked steps (``m_t = 0``, after the end) contribute nothing, so
    ``A_t = Σ_{k≥t} (γλ)^{k−t} m_k δ_k``, solved by :func:`_lambda_recursion`.

    ``rewards``, ``terminated``, ``mask`` [B, T, 1]; ``values`` [B, T+1, K] (K = N for one value
    per agent, which shares the team reward) -> [B, T, K].
    """
    deltas = mask * (rewards + gamma * values[:, 1:] * (1 - terminated) - values[:, :-1])
    return _lambda_recursion(deltas, torch.zeros_like(values[:, -1:]), gamma * gae_lambda)


def n_step_targets(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    n: int,
) -> torch.Tensor:
    """``n``-step returns over padded episodes (HARL's off-policy buffer, ``n_step``):
    ``y_t = Σ_{k<n_t} γ^k r_{t+k} + γ^{n_t} (1 − d) V_{t+n_t}`` with ``n_t = min(n, L − t)`` for an
    episode of ``L`` steps: the window stops at the episode's end, where ``d`` = 1 if it
    terminated (no bootstrap) and 0 if the time limit cut it (it bootstraps from ``V`` at its
    final observation, step ``L``). Without a loop over time: the reward sums are one product
    with the band matrix ``W[k, t] = γ^{k−t}`` for ``0 ≤ k − t < n``.

    ``rewards``, ``terminated``, ``mask`` [B, T]; ``values`` [B, T+1] (the soft value of each
    observation) -> [B, T], zero on masked steps.
    """
    steps = rewards.shape[1]
    t = torch.arange(steps, device=rewards.device)
    lag = t[:, None] - t[None, :]  # lag[k, t] = k − t
    band = torch.where((lag >= 0) & (lag < n), gamma ** lag.clamp(min=0).to(rewards.dtype), 0.0)
    sums = (rewards * mask) @ band
    length = mask.sum(dim=1, keepdim=True).long()  # [B, 1]
    end = torch.minimum(t[None, :] + n, length)  # [B, T]
    at_end = (end == length).to(rewards.dtype)
    terminal = terminated.sum(dim=1, keepdim=True).clamp(max=1.0)
    bootstrap = gamma ** (end - t[None, :]).clamp(min=0).to(rewards.dtype) * values.gather(1, end)
    return mask * (sums + (1 - at_end * terminal) * bootstrap)


def _last(target_qs: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    """``G_T = Q_T · (1 − Σ_t d_t)``: the bootstrap of an episode that did not terminate, zero for
    one that did. An episode cut by the time limit is not terminal (pymarl's runner): it spans the
    whole batch (the limit is the longest length) and step ``T`` holds its final observation
    (the environments' "next step" auto-reset, :class:`~marlrepro.envs.base.EnvBatch`). [B, 1, K]."""
    return target_qs[:, -1:] * (1 - terminated.sum(dim=1, keepdim=True))


def _lambda_recursion(c: torch.Tensor, last: torch.Tensor, a: float) -> torch.Tensor:
    """Solve ``G_t = a · G_{t+1} + c_t`` backwards from ``G_T = last``, without a loop over time.

    A linear recurrence with constant coefficient ``a`` has the closed form
    ``G_t = Σ_{k=t}^{T-1} a^{k−t} c_k + a^{T−t} G_T``, computed here as one product with the
    upper-triangular matrix ``U[t, k] = a^{k−t}`` (T ≤ a few hundred, so ``T²`` is small), which
    replaces ~8 kernel launches per time step by a handful in total. ``c`` [B, T, K], ``last``
    [B, 1, K] -> [B, T, K]."""
    steps = c.shape[1]
    t = torch.arange(steps + 1, device=c.device, dtype=c.dtype)
    lag = t[None, :-1] - t[:-1, None]  # lag[t, k] = k − t
    decay = torch.where(lag >= 0, a ** lag.clamp(min=0), 0.0)  # U, [T, T]
    tail = (a ** (steps - t[:-1]))[:, None]  # a^{T−t}, [T, 1]
    return torch.einsum("tk,bkq->btq", decay, c) + tail * last
