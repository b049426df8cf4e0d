"""The learner interface: what the training core (:mod:`marlrepro.core`) needs from a learner.

A learner is an :class:`torch.nn.Module` holding every network of ONE run (online and target).
The core never calls its parameters directly: it stacks the parameters of the ``R`` runs of a
pack and evaluates the learner's :meth:`Learner.forward` (its loss) under ``torch.func.vmap``
with ``functional_call``, so a learner family is written once, for one run, and packs for free.
See ``docs/architecture.md`` for the contract and a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.controller import AgentController


@dataclass(frozen=True)
class ParamGroup:
    """Parameters (those whose name starts with ``prefix``) trained with their own learning rate
    ``lr`` instead of ``learner.lr``. ``clip``: whether their gradient norm is clipped to
    ``learner.grad_clip`` (per run); ``clip_alone``: clipped on their own norm, as a separate
    optimiser would (FOP's actor and each critic), instead of together with the ungrouped ones.
    ``phase``: the phase of each update (:attr:`Learner.update_phases`) in which they train, as
    if with an optimiser of their own (None: in every phase); with ``per_agent``, the parameters'
    first axis is the agents', and agent ``i``'s slice trains in phase ``phase + i`` (HASAC's
    sequential update of heterogeneous agents)."""

    prefix: str
    lr: float
    clip: bool = True
    clip_alone: bool = False
    phase: int | None = None
    per_agent: bool = False


@dataclass
class LossTerms:
    """What one update's loss reports; device tensors, scalars per run. ``logged``: the scalars
    that :attr:`Learner.update_scalars` names, measured on the update's batch (no gradient flows
    from them; in an update of several phases, the core logs those of the first phase).
    ``buffers``: new values for some of the learner's persistent buffers (full names,
    e.g. ``critic.value_norm.running_mean``), state that the update itself moves (running
    statistics); the core writes them into the buffers of the runs that took the step, after
    its backward pass, inside the step (so in its CUDA graph), and a masked run keeps its own."""

    loss: torch.Tensor
    q_taken_mean: torch.Tensor
    target_mean: torch.Tensor
    logged: dict[str, torch.Tensor] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)


class Learner(nn.Module):
    """One run's networks and loss.

    Subclasses define:

    * :attr:`acting_controller`: the agents that collect training episodes (ε-greedy on their
      values; each controller class has a JAX twin in :mod:`marlrepro.envs.jax_rollout`, so the
      fused rollout can run it on the device);
    * :meth:`eval_controllers`: the policies evaluated greedily, by metric prefix: ``test`` is the
      decentralised agents (the paper's metric); others (IGM-DA's experts) are extra columns;
    * :meth:`forward`: the loss of one batch of stored episodes (episode replay) at the run's
      environment step ``t_env`` (a 0-d float tensor, for schedules such as FOP's temperature), as
      :class:`LossTerms`; it must use no state outside its modules' parameters and buffers, and
      no host synchronisation (on CUDA it is replayed from a graph, :mod:`marlrepro.core.graphed`);
      it changes no buffer in place: state that an update moves (ValueNorm's statistics) leaves it
      as :attr:`LossTerms.buffers`, which the core writes back;
    * :attr:`target_pairs`: (target module, online module) names whose parameters the core
      hard-copies every ``learner.target_update_interval`` episodes;
    * :attr:`target_polyak`: optional; where set, the core moves each target module towards its
      online one by this fraction after every update (``θ' ← (1 − τ) θ' + τ θ``, HASAC) instead
      of the hard copies;
    * :attr:`behaviour_pairs`: (copy, module) names whose parameters and buffers the core copies
      before the updates of each rollout, so that the copy holds the networks that collected it
      (PPO's old policy and old values, with the value normaliser's statistics of that time);
    * :attr:`update_phases` and :meth:`update_order`: optional; an update of several phases is
      that many gradient steps on the same sampled batch, in the order :meth:`update_order`
      draws; :meth:`forward` then takes the phase (a 0-d integer tensor) as a third argument, and
      each parameter group trains in its own phase only (:class:`ParamGroup`);
    * :attr:`update_stages`: optional, with phases; the kind of phase at each position of the
      order (a Python int per position, the same for every order :meth:`update_order` draws):
      :meth:`forward` then also takes the position's stage, so that it computes only what
      phases of that kind need (HASAC: the critic first, then agents' phases) while the phase
      itself stays a tensor; each stage is a CUDA graph of its own;
    * :meth:`lr_scale`: optional per-run factor on every learning rate (a linear decay);
    * :meth:`param_groups`: optional parameters with their own learning rate and gradient
      clipping (a temperature, an actor beside its critics);
    * :meth:`logged_scalars`: optional per-run scalars logged at each evaluation (a temperature);
    * :attr:`update_scalars`: optional names of scalars that :meth:`forward` measures on each
      update's batch (:attr:`LossTerms.logged`); each is averaged over the updates between two
      evaluations and logged beside them (FOP's Q-value gap, ME-IGM Figure 2);
    * :meth:`extra_outputs`: optional per-run files written when training ends;
    * :attr:`demonstrations`: optional; a learner that sets it learns from the run's demonstration
      file (the config's ``demos`` section, :mod:`marlrepro.demos`): :meth:`forward` then takes the
      keyword ``demos``, an :class:`~marlrepro.buffer.Episodes` of ``demos.batch_size`` expert
      episodes drawn by the run's generator among the file's first ``demos.count``, float32, in
      the replay batch's layout and padded to the same length as ``batch``
      (``forward(batch, t_env, [phase, stage,] demos=demos)``);
    * :attr:`batch_draws`: optional; each update's replay batch holds this many times
      ``learner.batch_size`` distinct episodes (DAgger's per-agent datasets: a batch per student).
    """

    target_pairs: tuple[tuple[str, str], ...] = ()
    target_polyak: float | None = None
    behaviour_pairs: tuple[tuple[str, str], ...] = ()
    update_scalars: tuple[str, ...] = ()
    update_phases: int = 1
    update_stages: tuple[int, ...] = ()
    demonstrations: bool = False
    batch_draws: int = 1

    @property
    def acting_controller(self) -> AgentController:
        raise NotImplementedError

    def eval_controllers(self) -> dict[str, AgentController]:
        raise NotImplementedError

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        raise NotImplementedError

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """Parameters trained at their own learning rate; none by default (every parameter at
        ``learner.lr``, all clipped together)."""
        return ()

    def update_order(self, generator: torch.Generator) -> torch.Tensor:
        """The phases [P] of one update in the order they run, drawn with the run's ``generator``
        where the order is random; ``0, 1, …, P − 1`` (no draw) by default."""
        return torch.arange(self.update_phases, device=generator.device)

    def lr_scale(self, t_env: torch.Tensor) -> torch.Tensor:
        """The factor [R] on each run's learning rates at its env steps ``t_env`` [R]; 1 by default."""
        return torch.ones_like(t_env)

    def logged_scalars(self, weights: dict[str, torch.Tensor], t_env: torch.Tensor) -> dict[str, torch.Tensor]:
        """Scalars [R] to log beside each evaluation (``metrics.parquet`` columns), from the pack's
        stacked ``weights`` (name -> [R, ...]) and its runs' env steps ``t_env`` [R]; none by default."""
        return {}

    def extra_outputs(self, episodes: Episodes) -> dict[str, object]:
        """Files (name -> pandas DataFrame) computed from greedy evaluation ``episodes`` at the end
        of training; none by default."""
        return {}


class ActorCriticLearner(Learner):
    """A learner whose ``actor`` module (a softmax policy on the local observation) collects the
    training episodes and is the decentralised policy evaluated, greedily (FOP, MAPPO, IPPO)."""

    actor: AgentController

    @property
    def acting_controller(self) -> AgentController:
        return self.actor

    def eval_controllers(self) -> dict[str, AgentController]:
        """The actor, greedy on its policy (the papers' evaluation)."""
        return {"test": self.actor}
