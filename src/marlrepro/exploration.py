"""Action selection: epsilon-greedy over available actions with a linear schedule."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marlrepro.config import ExplorationConfig


@dataclass(frozen=True)
class LinearEpsilon:
    """``epsilon(t) = start + (finish - start) * min(1, (t − w) / anneal_steps)`` (pymarl's
    schedule), and 1 (uniformly random actions) during a warm-up of ``w = warmup_steps``."""

    start: float
    finish: float
    anneal_steps: int
    warmup_steps: int = 0

    @classmethod
    def from_config(cls, config: ExplorationConfig) -> LinearEpsilon:
        return cls(config.epsilon_start, config.epsilon_finish, config.epsilon_anneal_steps, config.warmup_steps)

    def __call__(self, t_env: int) -> float:
        if t_env < self.warmup_steps:
            return 1.0
        frac = min(1.0, (t_env - self.warmup_steps) / max(1, self.anneal_steps))
        return self.start + (self.finish - self.start) * frac


def masked_greedy(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """``argmax_a Q(a)`` over available actions only; ``q`` and ``avail`` [..., A]."""
    return q.masked_fill(~avail, float("-inf")).argmax(dim=-1)


def epsilon_greedy(q: torch.Tensor, avail: torch.Tensor, epsilon: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``epsilon`` a uniformly random *available* action, else the greedy one;
    the draws come from ``generator`` (default: torch's global one).

    Runs entirely on the device: no host synchronisation.
    """
    return epsilon_mix(masked_greedy(q, avail), avail, epsilon, generator)


def epsilon_mix(actions: torch.Tensor, avail: torch.Tensor, epsilon: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Each of ``actions`` [...] replaced, with probability ``epsilon``, by a uniformly random
    available action (``avail`` [..., A]): the ε-greedy of a greedy ``actions``, FOP's
    ``(1 − ε) π + ε · uniform`` of a sampled one. No host synchronisation."""
    if epsilon <= 0.0:
        return actions
    # Uniform over available actions: the argmax of i.i.d. uniform scores, unavailable ones
    # pushed below every available score (cheaper than torch.multinomial, and sync-free).
    scores = torch.rand(avail.shape, device=avail.device, generator=generator).masked_fill(~avail, -1.0)
    random = scores.argmax(dim=-1)
    explore = torch.rand(actions.shape, device=avail.device, generator=generator) < epsilon
    return torch.where(explore, random, actions)
