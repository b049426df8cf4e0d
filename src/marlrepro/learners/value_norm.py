"""Value normalisation: marlbenchmark/on-policy's ValueNorm (``onpolicy/utils/valuenorm.py``),
written as a pure function of its running statistics so that a pack's loss stays functional.

The statistics are three scalars, exponential moving averages with weight ``β`` per update:

* ``m ← β m + (1 − β) mean(x)``, ``m₂ ← β m₂ + (1 − β) mean(x²)``, ``d ← β d + (1 − β)``;
* debiased: ``μ = m / max(d, ε)``, ``σ² = max(m₂ / max(d, ε) − μ², 10⁻²)``;
* ``normalise(x) = (x − μ) / σ``, ``denormalise(y) = y σ + μ``.

on-policy's defaults: ``β = 0.99999``, ``ε = 10⁻⁵``, one update per minibatch update, on that
minibatch's returns (``r_mappo.py``'s ``cal_value_loss``), ``per_element_update`` off; IMAX-PPO's
critic (vietbt/IMAXPPO ``models/policies/policy.py``) is the same rule. Before the first update
``μ = 0`` and ``σ = 0.1`` (the variance floor), as there.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

BETA = 0.99999  # on-policy's ValueNorm(beta)
EPSILON = 1e-5  # the floor on the debiasing term
VARIANCE_FLOOR = 1e-2


class RunningMoments(NamedTuple):
    """The running statistics ``(m, m₂, d)``; field names are :class:`ValueNorm`'s buffers."""

    running_mean: torch.Tensor
    running_mean_sq: torch.Tensor
    debiasing_term: torch.Tensor

    def scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The debiased ``(μ, σ)``."""
        debias = self.debiasing_term.clamp(min=EPSILON)
        mean = self.running_mean / debias
        variance = (self.running_mean_sq / debias - mean.pow(2)).clamp(min=VARIANCE_FLOOR)
        return mean, variance.sqrt()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.scale()
        return (x - mean) / std

    def denormalise(self, y: torch.Tensor) -> torch.Tensor:
        mean, std = self.scale()
        return y * std + mean

    def updated(self, x: torch.Tensor, weights: torch.Tensor) -> RunningMoments:
        """The statistics after one update on the samples ``x`` where ``weights`` (0/1, the shape
        of ``x``) is 1: their mean and mean square move the averages by ``1 − β``."""
        count = weights.sum().clamp(min=1.0)
        batch_mean = (x * weights).sum() / count
        batch_mean_sq = (x.pow(2) * weights).sum() / count
        return RunningMoments(self.running_mean * BETA + batch_mean * (1.0 - BETA),
                              self.running_mean_sq * BETA + batch_mean_sq * (1.0 - BETA),
                              self.debiasing_term * BETA + (1.0 - BETA))


class ValueNorm(nn.Module):
    """The running statistics of one run's returns, as persistent buffers: they stack, pack and
    checkpoint like weights. The module never changes them itself: a loss computes
    :meth:`RunningMoments.updated` and returns the new values in
    :attr:`~marlrepro.learners.base.LossTerms.buffers`, which the core writes back."""

    def __init__(self) -> None:
        super().__init__()
        for name in RunningMoments._fields:
            self.register_buffer(name, torch.zeros(()))

    @property
    def moments(self) -> RunningMoments:
        return RunningMoments(*(getattr(self, name) for name in RunningMoments._fields))
