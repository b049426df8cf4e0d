"""Demonstrations of a scripted expert on the monotonic matrix game, shared by the tests of the
learners of demonstrations (BC, MAGAIL): 64 one-step episodes in which the expert plays
:data:`KNOWN` with probability 3/4 and a uniform joint action otherwise."""

from __future__ import annotations

from pathlib import Path

import torch

from marlrepro.buffer import Episodes
from marlrepro.demos import write_demos
from marlrepro.envs.matrix import PAYOFFS
from marlrepro.envs.registry import validate_env

MONOTONIC = validate_env("matrix:monotonic", {})[0]
KNOWN = (1, 2)  # the monotonic game's optimum, payoff 5; neither agent's first action
PAYOFF = torch.tensor(PAYOFFS["monotonic"])


def write_scripted_demos(root: Path, n: int = 64) -> Path:
    """``root/demos.zip``: ``n`` episodes of the scripted expert (seeded), with the game's payoffs."""
    generator = torch.Generator().manual_seed(0)
    episodes = Episodes.empty(n, MONOTONIC, torch.device("cpu"))
    episodes.obs.fill_(1.0)
    episodes.state.fill_(1.0)
    episodes.avail_actions.fill_(True)
    known = torch.rand(n, generator=generator) < 0.75
    uniform = torch.randint(MONOTONIC.n_actions, (n, MONOTONIC.n_agents), generator=generator)
    episodes.actions[:, 0] = torch.where(known[:, None], torch.tensor(KNOWN), uniform)
    episodes.reward[:, 0] = PAYOFF[episodes.actions[:, 0, 0], episodes.actions[:, 0, 1]]
    episodes.terminated.fill_(1.0)
    episodes.filled.fill_(1.0)
    (root / "expert.txt").write_text("the scripted expert of tests/scripted_demos.py\n")
    write_demos(root / "demos.zip", episodes, list(range(n)), episodes.reward[:, 0], episodes.reward[:, 0] == 5.0,
                MONOTONIC, {}, "sampled", root / "expert.txt", {"method": "scripted"})
    return root / "demos.zip"
