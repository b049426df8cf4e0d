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
# and, for IGM-DA, the decentralised learners.
TRAINED = ("controller", "mixer", "learners")


def trained_weights(learner_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of the trained networks' floating-point tensors from a learner's flat state dict
    (``network.parameter`` names)."""
    return {name: value.detach().clone().cpu() for name, value in learner_state.items()
            if name.split(".", 1)[0] in TRAINED and value.is_floating_point()}


def run_and_check_training(trainer: Trainer) -> dict[str, Any]:
    """Run ``trainer`` to its end and assert that it trained; return the final summary.

    Trained means: at least one update; every loss logged after the first update is finite; and
    every trained network (agents, mixer, IGM-DA's learners) saved in the final checkpoint differs
    from its initial weights.
    """
    initial = trained_weights(trainer.learners.run_state(0))
    final, = trainer.run()
    assert final["updates"] > 0, "no gradient step was taken"
    run_dir = trainer.runs[0].run_dir
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    losses = metrics.loc[metrics["update"] > 0, "loss"].to_numpy()
    assert losses.size > 0 and np.isfinite(losses).all(), f"losses after the first update: {losses}"
    saved = trained_weights(load_checkpoint(run_dir)["learner"])
    assert saved.keys() == initial.keys()
    for network in {name.split(".", 1)[0] for name in initial}:
        names = [name for name in initial if name.startswith(f"{network}.")]
        assert any(not torch.equal(initial[name], saved[name]) for name in names), f"{network}: weights did not move"
    return final
