"""``R`` copies of one module with their weights stacked: one vmapped call serves all runs.

The ensembling recipe of ``torch.func``: the runs' parameters and buffers are stacked into
tensors with a leading run dimension, and a method written for ONE run is evaluated for all of
them by ``vmap(functional_call(template, weights_r, inputs_r))``. A learner family therefore
never sees the pack: it is written for one run (:class:`marlrepro.learners.base.Learner`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap


class StackedModules:
    """The weights of ``modules`` (same architecture, one per run) stacked on a leading run axis.

    ``params`` keep each parameter's ``requires_grad`` (target networks are frozen) and are the
    leaves the optimiser updates; ``buffers`` hold the modules' buffers. ``template`` is a copy of
    the first module that :meth:`call` evaluates functionally; :meth:`module_for` gives a plain
    module holding one run's current weights, for code that runs once per run outside the hot
    loop (stepwise rollouts on CPU backends, end-of-run analyses).
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.runs = len(modules)
        self.template = copy.deepcopy(modules[0])
        self.params: dict[str, torch.Tensor] = {}
        for name, p in self.template.named_parameters():
            stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in modules])
            self.params[name] = stacked.requires_grad_(p.requires_grad)
        self.buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in modules])
                        for name, _ in self.template.named_buffers()}
        self._persistent_buffers = self.buffers.keys() & self.template.state_dict().keys()
        self._views: dict[tuple[int, str], nn.Module] = {}

    @property
    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.params.values() if p.requires_grad]

    def weights(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The stacked parameters under ``prefix`` (a submodule's name + ``.``), prefix removed."""
        return {name[len(prefix):]: p for name, p in self.params.items() if name.startswith(prefix)}

    def vmapped(self, fn: Callable[..., Any], randomness: str = "different") -> Callable[..., Any]:
        """``fn(module, *inputs)`` written for one run -> a function of inputs stacked over runs
        (leading dimension ``R``) that returns outputs stacked over runs. ``randomness``: random
        draws inside ``fn`` differ between runs (they come from the global generator)."""
        call = _Call(self.template, fn)

        def one_run(params: dict, buffers: dict, *inputs: Any) -> Any:
            weights = {f"module.{name}": t for name, t in (*params.items(), *buffers.items())}
            return functional_call(call, weights, inputs)

        batched = vmap(one_run, randomness=randomness)
        return lambda *inputs: batched(self.params, self.buffers, *inputs)

    @torch.no_grad()
    def copy_runs(self, target: str, source: str, mask: torch.Tensor, fraction: float = 1.0) -> None:
        """Move the parameters and buffers of submodule ``target`` to those of ``source`` for the
        runs where ``mask`` [R] is True: all the way (hard target-network updates, behaviour
        copies), or by ``fraction`` (Polyak averaging, ``θ' ← (1 − τ) θ' + τ θ``, of the
        floating-point ones)."""
        prefix = f"{source}."
        for store in (self.params, self.buffers):
            for name, value in store.items():
                if name.startswith(prefix):
                    dest = store[f"{target}.{name[len(prefix):]}"]
                    polyak = fraction != 1.0 and value.is_floating_point()
                    _copy_where(dest, torch.lerp(dest, value, fraction) if polyak else value, mask)

    @torch.no_grad()
    def write_buffers(self, values: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        """Set the persistent buffers named in ``values`` (name -> [R, ...]) to those values for the
        runs where ``mask`` [R] is True (the state a loss moves,
        :attr:`~marlrepro.learners.base.LossTerms.buffers`)."""
        for name, value in values.items():
            if name not in self._persistent_buffers:
                raise TypeError(f"{type(self.template).__name__}.forward returned buffer {name!r}; its persistent "
                                f"buffers are {sorted(self._persistent_buffers)}")
            _copy_where(self.buffers[name], value, mask)

    def run_state(self, r: int) -> dict[str, torch.Tensor]:
        """Run ``r``'s weights as the ``state_dict`` of one module."""
        state = {name: p[r].detach().clone() for name, p in self.params.items()}
        persistent = self.template.state_dict().keys()
        state.update({name: b[r].clone() for name, b in self.buffers.items() if name in persistent})
        return state

    @torch.no_grad()
    def load_run_state(self, r: int, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.template.state_dict())
        if set(state) != expected:
            raise ValueError(f"checkpoint weights do not match this learner: missing "
                             f"{sorted(expected - set(state))}, unexpected {sorted(set(state) - expected)}")
        for name, value in state.items():
            (self.params.get(name) if name in self.params else self.buffers[name])[r].copy_(value)

    @torch.no_grad()
    def module_for(self, r: int, submodule: str = "") -> nn.Module:
        """A module with run ``r``'s current weights: the whole module, or its child ``submodule``
        (only that child's weights are copied: a stepwise rollout needs the acting agents only).
        One cached copy per run and child, refreshed on each call."""
        key = (r, submodule)
        if key not in self._views:
            module = getattr(self.template, submodule) if submodule else self.template
            self._views[key] = copy.deepcopy(module).requires_grad_(False)
        view = self._views[key]
        prefix = f"{submodule}." if submodule else ""
        weights = {n[len(prefix):]: t[r] for source in (self.params, self.buffers) for n, t in source.items()
                   if n.startswith(prefix)}
        view.load_state_dict(weights, strict=False)
        return view


def _copy_where(dest: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> None:
    """``dest[r] = source[r]`` for the runs ``r`` where ``mask`` [R] is True."""
    dest.copy_(torch.where(mask.view(-1, *[1] * (dest.dim() - 1)), source, dest))


def child_name(parent: nn.Module, child: nn.Module) -> str:
    """The attribute name under which ``parent`` holds ``child``."""
    return next(name for name, module in parent.named_children() if module is child)


class _Call(nn.Module):
    """Calls ``fn(module, *inputs)``: lets ``functional_call`` evaluate any method of ``module``
    with substituted weights (it can only call a module's ``forward``)."""

    def __init__(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *inputs: Any) -> Any:
        return self.fn(self.module, *inputs)
