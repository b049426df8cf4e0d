"""The pieces of maximum-entropy value decomposition that are not networks (ME-IGM §5, FOP):
softmax policies over masked actions, their entropy, the temperature's objective and the OPT
loss. The soft TD(λ) target is :func:`marlrepro.learners.targets.soft_td_lambda_targets`."""

from __future__ import annotations

import math

import torch

# the logit given to unavailable actions: finite, so that 0 · log π stays 0 in the entropy and no
# gradient of a log-sum-exp over them is NaN (the soft values of learners/soft_q.py)
MASKED_LOGIT = -1e9
# the smallest temperature the policies use. Where the policies cannot reach the target entropy
# from above (two equally good actions keep log 2 nats: the matrix game's B and C), the
# temperature's objective lowers log α without end, and exp(log α) underflows to 0.
ALPHA_FLOOR = 1e-4


def temperature(log_alpha: torch.Tensor) -> torch.Tensor:
    """``α = max(exp(log α), ALPHA_FLOOR)``: the temperature the policies use."""
    return log_alpha.exp().clamp(min=ALPHA_FLOOR)


def masked_log_policy(logits: torch.Tensor, avail: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """``log π(a) = log softmax_a(logits / α)`` over the available actions (ME-IGM eq. 10: the
    logits are the OPT's transformed local values): ``logits`` [..., A], ``avail`` [..., A]
    (bool) -> [..., A]; unavailable actions get probability 0 (log-probability ``-1e9``)."""
    return torch.log_softmax((logits / alpha).masked_fill(~avail, MASKED_LOGIT), dim=-1)


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise ``g = −log(−log u)``, ``u ~ U(0, 1)``, shaped like ``like``: the
    argmax of ``log π + g`` is a sample of ``π`` (the Gumbel-max trick), with no host
    synchronisation. The draws come from ``generator``, else from torch's global generator (the
    one a pack's vmapped loss draws from, per run)."""
    u = torch.rand_like(like) if generator is None else torch.rand(like.shape, device=like.device, generator=generator)
    return -torch.log(-torch.log(u.clamp(min=1e-20)))


def policy_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """``H(π) = −Σ_a π(a) log π(a)`` over the last axis (masked actions add exactly 0)."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def temperature_loss(log_alpha: torch.Tensor, entropy: torch.Tensor, target_entropy: torch.Tensor | float,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """The temperature's objective (ME-IGM eq. 11, after Haarnoja et al. 2018's automatic
    entropy adjustment): ``J(α) = E[α (H(π) − H̄)]``, here on ``log α`` as in SAC's code,
    ``log α · sg[H − H̄]``. Its gradient lowers ``α`` when the policies' entropy is above the
    target ``H̄`` and raises it when below; at :data:`ALPHA_FLOOR` it only raises it.
    ``entropy`` [...] (a joint policy's: the sum over agents) -> the mean loss over the entries
    where ``mask`` (same shape; default all) is 1."""
    weights = torch.ones_like(entropy) if mask is None else mask
    excess = (entropy - target_entropy).detach()
    # at the floor (ALPHA_FLOOR), only a push upwards counts: log α stays where it can recover
    excess = torch.where(log_alpha <= math.log(ALPHA_FLOOR), excess.clamp(max=0), excess)
    return (log_alpha * excess * weights).sum() / weights.sum().clamp(min=1)


def opt_loss(q_tot: torch.Tensor, transformed_taken: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The OPT loss (ME-IGM eq. 9; notes/me_igm.md): ``½ E[(sg[Q_tot] − Σ_i f_i(sg[g_i(q_i(a_i))]))²]``
    over the filled steps: the policies' logits of the taken actions, summed over agents, regress
    to ``Q_tot`` (the MSE the paper's appendix D prefers to a KL). ``q_tot`` [B, T, 1] (its
    gradient is stopped here); ``transformed_taken`` [B, T, N]: each agent's
    ``f_i(sg[g_i(q_i(a_i))])``, the caller stopping the gradient into ``g_i``; ``mask`` [B, T, 1]."""
    error = q_tot.detach() - transformed_taken.sum(dim=-1, keepdim=True)
    return 0.5 * (mask * error.pow(2)).sum() / mask.sum().clamp(min=1)


def away_from_policy_weights(td_error: torch.Tensor, opt_error: torch.Tensor, away_weight: float) -> torch.Tensor:
    """The weights of the released code's TD loss (notes/me_igm.md, "a 0.5 weight on samples
    where the OPT error and the TD error have a particular sign combination"). With
    ``td_error = Q_tot − G`` and ``opt_error = Q_tot − Σ_i f_i(g_i(q_i(a_i)))``, a sample whose TD
    gradient moves ``Q_tot`` away from the policies' summed logits (``opt_error > 0`` and
    ``td_error < 0``, or ``opt_error ≤ 0`` and ``td_error ≥ 0``) weighs ``away_weight``; every other
    sample weighs 1. Shapes [B, T, 1]; no gradient flows through the weights."""
    away = (opt_error > 0) == (td_error < 0)
    return torch.where(away.detach(), away_weight, 1.0).to(td_error.dtype)
