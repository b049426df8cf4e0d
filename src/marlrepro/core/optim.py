"""Optimisers over stacked weights: ``R`` independent runs, each with its own step count and
update mask, in one set of elementwise kernels.

Every tensor has the runs as its leading dimension. A run whose mask entry is False is left
exactly as it was (parameters and optimiser state), so a pack can hold runs that cannot update
yet (too few stored episodes), have finished, or diverged. Likewise, a parameter with a
:class:`Phase` moves only in its phase of a learner's update (HASAC's sequential agents), as if
it had an optimiser of its own: its state and its Adam step count stay put in the other phases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marlrepro.config import ADAM_EPS, RMSPROP_EPS, LearnerConfig


def _per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` [R] shaped to broadcast against ``like`` [R, ...]."""
    return values.view(-1, *[1] * (like.dim() - 1))


def clip_grad_norm_per_run(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` applied to each run separately: the 2-norm of run
    ``r``'s gradient over all ``params`` is ``n_r``, and its gradients are scaled by
    ``min(1, max_norm / (n_r + 1e-6))``; parameters without a gradient count for nothing (as
    torch's; with none, the norms are 0: an update phase whose loss reaches none of them, MAGAIL's
    discriminator phases). Returns the norms [R] before clipping."""
    runs, device = params[0].shape[0], params[0].device
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros(runs, device=device)
    squares = torch.stack([p.grad.flatten(1).pow(2).sum(dim=1) for p in params]).sum(dim=0)
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_([p.grad for p in params], [_per_run(scale, p.grad) for p in params])
    return norms


@dataclass(frozen=True)
class Phase:
    """The phase of a learner's update in which a parameter [R, ...] trains: ``first``; with
    ``per_agent``, its slice ``i`` along the axis after the runs' (agent ``i``'s network) trains
    in phase ``first + i`` (:class:`marlrepro.learners.base.ParamGroup`)."""

    first: int
    per_agent: bool = False

    def active(self, phase: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Whether each run's (and agent's) slice of ``p`` trains in the runs' phases ``phase`` [R]."""
        if not self.per_agent:
            return _per_run(phase == self.first, p)
        agents = torch.arange(p.shape[1], device=p.device) + self.first
        return (phase.unsqueeze(1) == agents).view(_slices(p, self))


def _slices(p: torch.Tensor, phase: Phase | None) -> tuple[int, ...]:
    """The shape that broadcasts one flag or count per independently stepped slice of ``p``
    [R, ...]: [R, 1, ...], or [R, N, 1, ...] for a per-agent :class:`Phase`."""
    lead = p.shape[:2] if phase is not None and phase.per_agent else p.shape[:1]
    return (*lead, *[1] * (p.dim() - len(lead)))


class StackedOptimizer:
    """Base of the stacked optimisers: ``params`` are leaf tensors [R, ...] with ``.grad``;
    ``lr`` is one learning rate per run [R] (a pack may sweep it), or a list of them, one per
    parameter (a learner's parameter groups, :meth:`marlrepro.learners.base.Learner.param_groups`);
    ``phases``: each parameter's :class:`Phase`, or None where it trains in every phase. Each
    parameter counts its own steps (``state["step"]``, per run and, per agent, per slice), so a
    parameter that trains in one phase of several has the step count of an optimiser of its own.
    ``weight_decay``: torch's L2 form, ``g ← g + weight_decay · θ`` before the update (0: none)."""

    def __init__(self, params: list[torch.Tensor], lr: torch.Tensor | list[torch.Tensor], eps: float,
                 phases: list[Phase | None] | None = None, weight_decay: float = 0.0) -> None:
        self.params = params
        self.weight_decay = weight_decay
        self.lrs = lr if isinstance(lr, list) else [lr] * len(params)
        self.phases = phases if phases is not None else [None] * len(params)
        self.eps = eps
        runs = params[0].shape[0]
        # a factor on every learning rate, per run (a schedule; set in place, so a captured CUDA
        # graph of the step reads the current values)
        self.lr_scale = torch.ones(runs, device=params[0].device)
        self.state: list[dict[str, torch.Tensor]] = [
            {"step": torch.zeros(_slices(p, phase), device=p.device), **self.init_state(p)}
            for p, phase in zip(params, self.phases, strict=True)]

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, mask: torch.Tensor, phase: torch.Tensor | None = None) -> None:
        """One step for the runs where ``mask`` [R] (bool) is True, of the parameters that train
        in the runs' update phases ``phase`` [R] (none given: every parameter). A parameter
        without a gradient (the loss did not reach it) takes no step, as in torch's optimisers.
        The arithmetic runs over all parameters at once (``torch._foreach_*``: the same
        elementwise operations in the same order as one parameter at a time, so the same bits)."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        states = [self.state[i] for i in live]
        keeps = []
        for i, p in zip(live, params):
            keep = _per_run(mask, p)
            own = self.phases[i]
            if own is not None and phase is not None:
                keep = keep & own.active(phase, p)
            keeps.append(keep)
        steps = [state["step"] for state in states]
        torch._foreach_add_(steps, [keep.to(step.dtype) for keep, step in zip(keeps, steps)])
        grads = [p.grad for p in params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, torch._foreach_mul(params, self.weight_decay))
        lrs = [_per_run(self.lrs[i] * self.lr_scale, p) for i, p in zip(live, params)]
        new_params, new_states = self.update(params, grads, lrs, states)
        for p, keep, new in zip(params, keeps, new_params):
            p.copy_(torch.where(keep, new, p))
        for key, values in new_states.items():
            for state, keep, value in zip(states, keeps, values):
                state[key].copy_(torch.where(keep, value, state[key]))

    def update(self, params: list[torch.Tensor], grads: list[torch.Tensor], lrs: list[torch.Tensor],
               states: list[dict[str, torch.Tensor]]) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
        """The new parameters and state (other than ``step``, already counted) of a step, for
        every parameter at once; ``lrs``: each parameter's learning rates shaped to broadcast
        against it."""
        raise NotImplementedError

    def run_state(self, r: int) -> dict:
        """Run ``r``'s optimiser state, for its checkpoint."""
        return {"state": [{k: v[r].clone() for k, v in s.items()} for s in self.state]}

    def load_run_state(self, r: int, saved: dict) -> None:
        for state, values in zip(self.state, saved["state"]):
            for key, value in values.items():
                state[key][r] = value.to(state[key].device)


class StackedRMSprop(StackedOptimizer):
    """RMSProp as ``torch.optim.RMSprop`` (no momentum, not centred):
    ``v ← α v + (1 − α) g²``, ``θ ← θ − lr · g / (√v + ε)``."""

    def __init__(self, params: list[torch.Tensor], lr: torch.Tensor | list[torch.Tensor], alpha: float, eps: float,
                 phases: list[Phase | None] | None = None, weight_decay: float = 0.0) -> None:
        self.alpha = alpha
        super().__init__(params, lr, eps, phases, weight_decay)

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"square_avg": torch.zeros_like(p)}

    def update(self, params, grads, lrs, states):
        square_avg = torch._foreach_mul([state["square_avg"] for state in states], self.alpha)
        torch._foreach_add_(square_avg, torch._foreach_mul(torch._foreach_mul(grads, 1 - self.alpha), grads))
        denom = torch._foreach_add(torch._foreach_sqrt(square_avg), self.eps)
        steps = torch._foreach_div(torch._foreach_mul(grads, lrs), denom)
        return torch._foreach_sub(params, steps), {"square_avg": square_avg}


class StackedAdam(StackedOptimizer):
    """Adam (Kingma and Ba 2015, Algorithm 1) as ``torch.optim.Adam`` with β = (0.9, 0.999):
    ``m ← β₁ m + (1 − β₁) g``, ``v ← β₂ v + (1 − β₂) g²``,
    ``θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)``, with ``t`` each run's own step."""

    betas = (0.9, 0.999)

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def update(self, params, grads, lrs, states):
        b1, b2 = self.betas
        m = torch._foreach_mul([state["exp_avg"] for state in states], b1)
        torch._foreach_add_(m, torch._foreach_mul(grads, 1 - b1))
        v = torch._foreach_mul([state["exp_avg_sq"] for state in states], b2)
        torch._foreach_add_(v, torch._foreach_mul(torch._foreach_mul(grads, 1 - b2), grads))
        t = torch._foreach_clamp_min([state["step"] for state in states], 1)
        denom = torch._foreach_add(torch._foreach_sqrt(torch._foreach_div(v, _one_minus(torch._foreach_pow(b2, t)))),
                                   self.eps)
        steps = torch._foreach_mul(lrs, torch._foreach_div(m, _one_minus(torch._foreach_pow(b1, t))))
        return torch._foreach_sub(params, torch._foreach_div(steps, denom)), {"exp_avg": m, "exp_avg_sq": v}


def _one_minus(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``1 − x`` for each tensor (``−x + 1``: the same bits)."""
    return torch._foreach_add(torch._foreach_neg(xs), 1.0)


def build_optimizer(params: list[torch.Tensor], config: LearnerConfig, lr: torch.Tensor | list[torch.Tensor],
                    phases: list[Phase | None] | None = None) -> StackedOptimizer:
    """Adam (pymarl2, DFAC) or RMSProp (pymarl, IGM-DA) with the configured constants; an unset
    ``optim_eps`` is the optimiser's reference default (:class:`~marlrepro.config.LearnerConfig`);
    ``weight_decay`` as torch's."""
    if config.optimizer == "adam":
        return StackedAdam(params, lr, ADAM_EPS if config.optim_eps is None else config.optim_eps, phases,
                           config.weight_decay)
    eps = RMSPROP_EPS if config.optim_eps is None else config.optim_eps
    return StackedRMSprop(params, lr, config.optim_alpha, eps, phases, config.weight_decay)
