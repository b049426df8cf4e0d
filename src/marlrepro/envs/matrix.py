"""One-step cooperative matrix games, batched in pure torch.

Every agent sees the constant observation ``[1.0]`` (the state is ``[1.0]`` too), picks one
action, and the team receives ``payoff[a_1, ..., a_N]``; every episode terminates after that one
step. ``won`` marks joint actions that reach the maximal payoff.

Scenarios:

* ``me_igm`` -- the 2-agent, 3-action game of the ME-IGM paper (Table 1)::

      [[  8, -12, -12],
       [-12,   0,   0],
       [-12,   0,   0]]

  The optimum (0, 0) is surrounded by heavy miscoordination penalties, so a monotonic mixer
  (VDN/QMIX) tends to settle on the safe sub-optimal block.
* ``monotonic`` -- a 2-agent, 3-action *additive* game ``payoff[i, j] = u[i] + v[j]`` with
  ``u = [0, 2, 1]`` and ``v = [1, 0, 3]``::

      [[1, 0, 3],
       [3, 2, 5],
       [2, 1, 4]]

  Being a sum of per-agent utilities it is exactly representable by VDN, hence by any
  monotonic mixer (QMIX) as well, and IGM holds: each agent's greedy utility action forms the
  joint optimum. The unique optimum (1, 2) = 5 is not at the first action, so a learner that
  merely keeps its initial argmax cannot pass by accident.

Option ``payoff`` replaces the scenario's matrix with any N-agent payoff tensor given as nested
lists (one nesting level per agent, ``payoff[a_1][a_2]...[a_N]``). Agents may have different
action counts; ``n_actions`` is the largest and the extra actions are marked unavailable.
"""

from __future__ import annotations

import torch

from marlrepro import env_catalog
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.errors import ConfigError

PAYOFFS: dict[str, list[list[float]]] = {
    "me_igm": [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]],
    "monotonic": [[1.0, 0.0, 3.0], [3.0, 2.0, 5.0], [2.0, 1.0, 4.0]],
}
SCENARIOS = frozenset(PAYOFFS)
# An empty ``payoff`` list (the default) means "the scenario's own matrix". The option checker
# requires the default to be an instance of the option's type, so ``None`` cannot be used.
OPTIONS = env_catalog.OPTIONS["matrix"]  # option -> (type, default)


def payoff_tensor(scenario: str, payoff: list) -> torch.Tensor:
    """Return the game's payoff as a float32 tensor with one dimension per agent.

    ``payoff`` overrides the scenario's matrix unless empty. Raises :class:`ConfigError` when it
    is ragged, non-numeric, non-finite, has fewer than two agent dimensions or an empty one.
    """
    if not payoff:
        return torch.tensor(PAYOFFS[scenario], dtype=torch.float32)
    field = "env.options.payoff"
    try:
        table = torch.tensor(payoff, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(
            f"{field}: expected a rectangular nested list of numbers, one nesting level per agent "
            f"(e.g. [[8, -12], [-12, 0]] for 2 agents x 2 actions); {err}"
        ) from None
    if table.dim() < 2:
        raise ConfigError(
            f"{field}: expected at least 2 agents (nesting depth >= 2), got shape {list(table.shape)}"
        )
    if table.numel() == 0:
        raise ConfigError(f"{field}: every agent needs at least one action, got shape {list(table.shape)}")
    if not torch.isfinite(table).all():
        raise ConfigError(f"{field}: all payoffs must be finite numbers")
    return table


def spec(scenario: str, payoff: list) -> EnvSpec:
    """Static spec of the game (validates ``payoff``)."""
    table = payoff_tensor(scenario, payoff)
    return EnvSpec(
        name=f"matrix:{scenario}",
        n_agents=table.dim(),
        obs_dim=1,
        state_dim=1,
        n_actions=max(table.shape),
        episode_limit=1,
    )


class Env:
    """``num_envs`` copies of one matrix game; each step is a whole episode.

    ``seed`` is accepted for interface compatibility; the game is deterministic. The returned
    ``obs``, ``state`` and ``avail_actions`` are shared constant tensors: copy before modifying.
    """

    def __init__(
        self, scenario: str, *, num_envs: int, seed: int, device: torch.device, payoff: list
    ) -> None:
        self.spec = spec(scenario, payoff)
        self.num_envs = num_envs
        self.device = device
        self.payoff = payoff_tensor(scenario, payoff).to(device)
        sizes = torch.tensor(self.payoff.shape, device=device)
        self._strides = torch.tensor(self.payoff.stride(), device=device)
        self._flat_payoff = self.payoff.reshape(-1)
        self._best = self.payoff.max()
        n, b = self.spec.n_agents, num_envs
        avail = torch.arange(self.spec.n_actions, device=device) < sizes[:, None]  # [N, A]
        self._first = EnvBatch(
            obs=torch.ones(b, n, 1, device=device),
            state=torch.ones(b, 1, device=device),
            avail_actions=avail.expand(b, -1, -1).clone(),
            reward=torch.zeros(b, device=device),
            terminated=torch.zeros(b, dtype=torch.bool, device=device),
            truncated=torch.zeros(b, dtype=torch.bool, device=device),
            won=torch.zeros(b, dtype=torch.bool, device=device),
        )

    def reset(self) -> EnvBatch:
        """Return the (constant) first step of every game."""
        return self._first

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Pay ``payoff[actions[b]]`` to each game ``b``; every episode terminates and restarts."""
        reward = self._flat_payoff[(actions * self._strides).sum(-1)]
        return self._first._replace(
            reward=reward,
            terminated=torch.ones_like(self._first.terminated),
            won=reward == self._best,
        )

    def close(self) -> None:
        """Nothing to release."""

    def rng_state(self) -> dict:
        """Deterministic game: nothing to save."""
        return {}

    def set_rng_state(self, state: dict) -> None:
        """Deterministic game: nothing to restore."""
