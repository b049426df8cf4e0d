"""What a value-decomposition learner learned on a one-step matrix game (ME-IGM Table 1)."""

from __future__ import annotations

import itertools
from typing import Any

import torch

from marlrepro.controller import SoftmaxPolicyController
from marlrepro.learners.value_decomposition import ValueDecompositionLearner


@torch.no_grad()
def joint_q_table(learner: ValueDecompositionLearner, obs: torch.Tensor, state: torch.Tensor,
                  payoff: torch.Tensor) -> dict[str, Any]:
    """Evaluate ``Q_tot(u_1, …, u_N)`` for every joint action of a one-step game.

    ``obs`` [N, obs_dim] and ``state`` [state_dim] are the game's (constant) first step. The
    greedy joint action is each agent's own argmax of ``Q_i`` — the decentralised execution the
    papers evaluate. For IQL, which has no mixer, ``Q_tot`` is reported as ``Σ_i Q_i``; for DMIX,
    ``Q_i`` is the mean over ``N̂`` sampled quantiles and ``Q_tot = E[Z_tot]``. For softmax-policy
    agents (ME-IGM) the mixer mixes the transformed values ``g_i(Q_i)``, and the local policies
    ``π_i``, their most probable joint action and its payoff are reported too.
    """
    n, a = learner.spec.n_agents, learner.spec.n_actions
    none = torch.full((1, 1, n), -1, dtype=torch.int64, device=obs.device)
    q, _ = learner.controller(obs.view(1, 1, n, -1), none, learner.controller.initial_hidden(1))
    q = q.view(n, a)
    joint = torch.tensor(list(itertools.product(range(a), repeat=n)), device=obs.device)  # [A^N, N]
    q_all = q.expand(joint.shape[0], n, a).unsqueeze(0)  # every joint action sees the same Q_i
    states = state.view(1, 1, -1).expand(1, joint.shape[0], -1)
    available = torch.ones_like(q_all, dtype=torch.bool)
    q_tot = learner.joint_value(learner.mixer, learner.mixer_inputs(q_all, states), joint.unsqueeze(0),
                                available, states)
    q_tot = q_tot.sum(dim=-1).view([a] * n)
    greedy = q.argmax(dim=-1)
    policy = {}
    if isinstance(learner.controller, SoftmaxPolicyController):
        probs = learner.controller.log_policy(q, state, torch.ones_like(q, dtype=torch.bool)).exp()
        likely = probs.argmax(dim=-1)
        policy = {"policy": probs.tolist(), "most_probable_joint_action": likely.tolist(),
                  "most_probable_payoff": float(payoff[tuple(likely.tolist())])}
    return {
        "payoff": payoff.tolist(),
        "agent_q": q.tolist(),
        "joint_q": q_tot.tolist(),
        "greedy_joint_action": greedy.tolist(),
        "greedy_payoff": float(payoff[tuple(greedy.tolist())]),
        "optimal_payoff": float(payoff.max()),
        **policy,
    }
