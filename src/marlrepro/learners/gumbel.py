"""The Gumbel-softmax (concrete) relaxation of a categorical sample (Jang, Gu & Poole 2017,
"Categorical Reparameterization with Gumbel-Softmax"; Maddison, Mnih & Teh 2017, "The Concrete
Distribution"): the differentiable sample through which a deterministic-policy-gradient actor
over discrete actions (MADDPG, Lowe et al. 2017, appendix; CESMA's DDPG expert) and HASAC's
actors receive the critic's gradient.

Its noise comes from torch's global generator, or from :func:`hashed_gumbel`: counter-based draws
(a stateless integer hash of a per-run key and each element's index), so that a run's draws
inside a pack's vmapped loss depend on its own key alone and a packed run equals the run alone
(docs/architecture.md, packs)."""

from __future__ import annotations

import math

import torch
from torch import nn

from marlrepro.learners.max_entropy import gumbel_noise

_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (C. Wellons' ``lowbias32``) on int64 tensors: xor-shifts and
    multiplications modulo ``2^32`` (the low bits of int64's wrapping products are exact)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


UNIFORM_BITS = 23  # (bits + 0.5) · 2^-23 is exact in float32 and strictly inside (0, 1)


def gumbel_of_bits(bits: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise from uniform integers ``bits`` in ``[0, 2^23)``:
    ``u = (bits + 1/2) · 2^-23`` and ``g = −log(−log u)``. With 23 bits ``u`` is exact in float32
    and lies in ``[2^-24, 1 − 2^-24]``, so ``g`` is finite (24 bits would round the largest ``u``
    to 1 and give ``g = ∞``)."""
    u = (bits.to(torch.float32) + 0.5) * 2.0 ** -UNIFORM_BITS
    return -torch.log(-torch.log(u))


def hashed_gumbel(key: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard Gumbel noise [shape] (float32), a function of ``key`` (int64 [2]: a seed and a
    counter) and each element's index alone: the top 23 bits of
    ``h(h(h(counter) ⊕ seed) ⊕ index)`` (:func:`gumbel_of_bits`). Pure tensor operations: under
    ``vmap`` each run hashes its own key, with no generator shared by the pack."""
    index = torch.arange(math.prod(shape), device=key.device).view(shape)
    return gumbel_of_bits(_mix32(_mix32(_mix32(key[1]) ^ (key[0] & _MASK32)) ^ index) >> (32 - UNIFORM_BITS))


def gumbel_softmax(logits: torch.Tensor, temperature: float = 1.0, hard: bool = False,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """A relaxed one-hot sample [..., A] of the categorical ``softmax(logits)``:
    ``y = softmax((logits + g) / τ)``, ``g`` standard Gumbel noise from torch's global generator
    (a pack's vmapped loss draws per run; :func:`~marlrepro.learners.max_entropy.gumbel_noise`).
    Its argmax is an exact sample of the categorical (the Gumbel-max trick), and ``y`` is
    differentiable in ``logits``; as ``τ → 0`` it approaches that one-hot sample.

    ``hard`` (straight-through, Jang et al. §2.2): the forward value is the one-hot of ``argmax y``
    and the gradient is that of ``y``. openai/maddpg's ``SoftCategoricalPd.sample`` is the soft
    sample at ``τ = 1`` (``hard`` false); HARL's ``gumbel_softmax(hard=True)`` the straight-through.
    ``noise``: the Gumbel noise to use (:func:`hashed_gumbel`), shaped like ``logits``."""
    noise = gumbel_noise(logits) if noise is None else noise
    soft = torch.softmax((logits + noise) / temperature, dim=-1)
    if not hard:
        return soft
    one_hot = nn.functional.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return one_hot - soft.detach() + soft
