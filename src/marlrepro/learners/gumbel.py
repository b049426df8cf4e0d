"""The Gumbel-softmax (concrete) relaxation of a categorical sample (Jang, Gu & Poole 2017,
"Categorical Reparameterization with Gumbel-Softmax"; Maddison, Mnih & Teh 2017, "The Concrete
Distribution"): the differentiable sample through which a deterministic-policy-gradient actor
over discrete actions (MADDPG, Lowe et al. 2017, appendix; CESMA's DDPG expert) and HASAC's
actors receive the critic's gradient."""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.learners.max_entropy import gumbel_noise


def gumbel_softmax(logits: torch.Tensor, temperature: float = 1.0, hard: bool = False) -> torch.Tensor:
    """A relaxed one-hot sample [..., A] of the categorical ``softmax(logits)``:
    ``y = softmax((logits + g) / τ)``, ``g`` standard Gumbel noise from torch's global generator
    (a pack's vmapped loss draws per run; :func:`~marlrepro.learners.max_entropy.gumbel_noise`).
    Its argmax is an exact sample of the categorical (the Gumbel-max trick), and ``y`` is
    differentiable in ``logits``; as ``τ → 0`` it approaches that one-hot sample.

    ``hard`` (straight-through, Jang et al. §2.2): the forward value is the one-hot of ``argmax y``
    and the gradient is that of ``y``. openai/maddpg's ``SoftCategoricalPd.sample`` is the soft
    sample at ``τ = 1`` (``hard`` false); HARL's ``gumbel_softmax(hard=True)`` the straight-through."""
    soft = torch.softmax((logits + gumbel_noise(logits)) / temperature, dim=-1)
    if not hard:
        return soft
    one_hot = nn.functional.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return one_hot - soft.detach() + soft
