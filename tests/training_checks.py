"""What every training test checks besides its own claim: that training happened.

A run that takes no gradient step, or whose steps change nothing, still writes a final summary
with a win rate in [0, 1]; these checks tell such a run from one that trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from marlrepro.checkpoint import load_checkpoint
from marlrepro.train import Trainer

# The networks a learner trains (its target copies only follow them): the agents, the mixer,
# for IGM-DA the decentralised learners, for FOP the actor and the two critics, for PPO and HASAC
# the actor and the critic, HASAC's temperatures, MIFQ's reward and value mixers, MAGAIL's
# discriminator.
TRAINED = ("controller", "mixer", "learners", "actor", "critic_1", "critic_2", "critic", "log_alphas",
           "critic_log_alpha", "mixer_r", "mixer_v", "discriminator")


def network(name: str) -> str:
    """The network (top-level submodule of the learner) that holds parameter ``name``."""
    return name.split(".", 1)[0]


def trained_weights(learner_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of the trained networks' floating-point tensors from a learner's flat state dict
    (``controller.agent.fc1.weight``, ...)."""
    return {
        name: value.detach().clone().cpu()
        for name, value in learner_state.items()
        if network(name) in TRAINED and value.is_floating_point()
    }  # fmt: skip


def optimised_names(trainer: Trainer) -> set[str]:
    """The names of the stacked parameters that the trainer's optimiser updates, after checking
    that it updates each of them once and nothing else."""
    by_id = {id(p): name for name, p in trainer.learners.params.items()}
    names = [by_id[id(p)] for p in trainer.optimizer.params]
    assert len(names) == len(set(names)), f"a parameter is optimised twice: {sorted(names)}"
    return set(names)


def run_and_check_training(trainer: Trainer, fixed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run ``trainer`` to its end and assert that each of its runs trained; return the runs'
    final summaries.

    Trained means: the optimiser updates exactly the trainable weights (the trained networks,
    not their targets); at least one update; every loss logged after the first update is finite;
    and every trained network (agents, mixer, IGM-DA's learners) saved in the final checkpoint
    differs from its initial weights, except the ``fixed`` ones (a learning rate of 0: MIFQ's
    hypernetworks), which must keep them exactly.
    """
    trainable = {name for name, p in trainer.learners.params.items() if p.requires_grad}
    assert optimised_names(trainer) == trainable
    assert {network(name) for name in trainable} <= set(TRAINED), sorted(trainable)
    initial = [trained_weights(trainer.learners.run_state(r)) for r in range(len(trainer.runs))]
    finals = trainer.run()
    for r, final in enumerate(finals):
        run_dir = trainer.runs[r].run_dir
        assert final["updates"] > 0, f"{run_dir}: no gradient step was taken"
        metrics = pd.read_parquet(run_dir / "metrics.parquet")
        losses = metrics.loc[metrics["update"] > 0, "loss"].to_numpy()
        assert losses.size > 0 and np.isfinite(losses).all(), f"{run_dir}: losses after the first update: {losses}"
        saved = trained_weights(load_checkpoint(run_dir)["learner"])
        assert saved.keys() == initial[r].keys()
        for net in {network(name) for name in initial[r]}:
            names = [name for name in initial[r] if network(name) == net]
            if net in fixed:
                assert all(torch.equal(initial[r][name], saved[name]) for name in names), f"{run_dir}: {net} moved"
                continue
            assert any(not torch.equal(initial[r][name], saved[name]) for name in names), \
                f"{run_dir}: {net}: weights did not move"
    return finals
