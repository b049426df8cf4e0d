"""What a learner learned on a one-step matrix game (ME-IGM Table 1)."""

from __future__ import annotations

import itertools
from typing import Any

import torch

from marlrepro.controller import AgentController, SoftmaxPolicyController
from marlrepro.learners.base import Learner
from marlrepro.learners.bc import BCLearner
from marlrepro.learners.dagger import DAggerLearner
from marlrepro.learners.ddpg import DDPGLearner
from marlrepro.learners.fop import FOPLearner
from marlrepro.learners.hasac import HASACLearner
from marlrepro.learners.joint_dqn import JointActionLearner
from marlrepro.learners.magail import MAGAILLearner
from marlrepro.learners.ppo import PPOLearner
from marlrepro.learners.value_decomposition import ValueDecompositionLearner

# a learner's view of the game: its local values [N, A] (None for PPO, BC and HASAC, which learn none),
# Q_tot of every joint action [A^N] (None for PPO and BC, which learn no action values), its greedy joint
# action [N] and its local policies [N, A] (None without stochastic policies)
_Values = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor | None]


@torch.no_grad()
def joint_q_table(learner: Learner, obs: torch.Tensor, state: torch.Tensor, payoff: torch.Tensor,
                  t_env: int) -> dict[str, Any]:
    """Evaluate ``Q_tot(u_1, …, u_N)`` for every joint action of a one-step game.

    ``obs`` [N, obs_dim] and ``state`` [state_dim] are the game's (constant) first step; ``t_env``
    the run's environment steps (FOP's temperature). The greedy joint action is what the
    papers evaluate, decentralised: each agent's own argmax of ``Q_i`` (value decomposition,
    ME-IGM) or of its policy (FOP). For IQL, which has no mixer, ``Q_tot`` is reported as
    ``Σ_i Q_i``; for DMIX, ``Q_i`` is the mean over ``N̂`` sampled quantiles and
    ``Q_tot = E[Z_tot]``. For softmax-policy agents (ME-IGM, FOP) the local policies ``π_i``,
    their most probable joint action and its payoff are reported too. ME-IGM's mixer mixes the
    transformed values ``g_i(Q_i)``; FOP's ``Q_tot`` and ``Q_i`` are the smaller of its two
    critics' (what its targets and its actor use), and so is HASAC's ``Q_tot`` (it has no
    ``Q_i``); PPO, MAGAIL, BC, DAgger and the DDPG family report their policies alone.
    """
    n, a = learner.spec.n_agents, learner.spec.n_actions
    joint = torch.tensor(list(itertools.product(range(a), repeat=n)), device=obs.device)  # [A^N, N]
    states = state.view(1, 1, -1).expand(1, joint.shape[0], -1)
    values = {FOPLearner: _fop_values, PPOLearner: _actor_values, BCLearner: _actor_values,
              MAGAILLearner: _actor_values, DAggerLearner: _actor_values, DDPGLearner: _actor_values,
              HASACLearner: _hasac_values, JointActionLearner: _joint_action_values}.get(
        type(learner), _value_decomposition_values)
    q, q_tot, greedy, probs = values(learner, obs.view(1, 1, n, -1), joint.unsqueeze(0), states, t_env)
    policy = {}
    if probs is not None:
        likely = probs.argmax(dim=-1)
        policy = {"policy": probs.tolist(), "most_probable_joint_action": likely.tolist(),
                  "most_probable_payoff": float(payoff[tuple(likely.tolist())])}
    if q is not None:
        policy["agent_q"] = q.tolist()
    if q_tot is not None:
        policy["joint_q"] = q_tot.view([a] * n).tolist()
    return {
        "payoff": payoff.tolist(),
        "greedy_joint_action": greedy.tolist(),
        "greedy_payoff": float(payoff[tuple(greedy.tolist())]),
        "optimal_payoff": float(payoff.max()),
        **policy,
    }


def _first_step(controller: AgentController, obs: torch.Tensor) -> torch.Tensor:
    """The controller's outputs [N, A] on the first step ``obs`` [1, 1, N, dim]."""
    none = torch.full(obs.shape[:3], -1, dtype=torch.int64, device=obs.device)
    out, _ = controller(obs, none, controller.initial_hidden(1))
    return out[0, 0]


def _value_decomposition_values(learner: ValueDecompositionLearner, obs: torch.Tensor, joint: torch.Tensor,
                                states: torch.Tensor, t_env: int) -> _Values:
    q = _first_step(learner.controller, obs)
    q_all = q.expand(joint.shape[1], *q.shape).unsqueeze(0)  # every joint action sees the same Q_i
    available = torch.ones_like(q_all, dtype=torch.bool)
    q_tot = learner.joint_value(learner.mixer, learner.mixer_inputs(q_all, states), joint, available, states)
    probs = None
    if isinstance(learner.controller, SoftmaxPolicyController):
        probs = learner.controller.log_policy(q, states[0, 0], torch.ones_like(q, dtype=torch.bool)).exp()
    return q, q_tot.sum(dim=-1), q.argmax(dim=-1), probs


def _joint_action_values(learner: JointActionLearner, obs: torch.Tensor, joint: torch.Tensor, states: torch.Tensor,
                         t_env: int) -> _Values:
    """A centralised DQN's own joint-action values (NaN for a joint action it does not enumerate:
    the one-at-a-time expert's) and its greedy joint action; it has no local values."""
    controller = learner.controller
    q = _first_step(controller, obs)[0]  # [K]
    member = (joint[0].unsqueeze(-2) == controller.joint_actions).all(dim=-1)  # [A^N, K]
    q_tot = torch.where(member.any(dim=-1), q[member.to(torch.int64).argmax(dim=-1)], torch.nan)
    return None, q_tot, controller.joint_actions[q.argmax()], None


def _fop_values(learner: FOPLearner, obs: torch.Tensor, joint: torch.Tensor, states: torch.Tensor,
                t_env: int) -> _Values:
    alpha = learner.temperature(torch.tensor(float(t_env), device=obs.device))
    logits = _first_step(learner.actor, obs)
    q_local, q_tot = [], []
    for critic in (learner.critic_1, learner.critic_2):
        q = _first_step(critic.agents, obs)
        q_local.append(q)
        q_tot.append(critic.joint_value(q.expand(joint.shape[1], *q.shape).unsqueeze(0), joint, states, alpha)[0])
    probs = torch.softmax(logits, dim=-1)
    return torch.minimum(*q_local), torch.minimum(*q_tot).squeeze(-1), probs.argmax(dim=-1), probs


def _actor_values(learner: PPOLearner | BCLearner | DDPGLearner, obs: torch.Tensor, joint: torch.Tensor, states: torch.Tensor,
                t_env: int) -> _Values:
    probs = torch.softmax(_first_step(learner.actor, obs), dim=-1)
    return None, None, probs.argmax(dim=-1), probs


def _hasac_values(learner: HASACLearner, obs: torch.Tensor, joint: torch.Tensor, states: torch.Tensor,
                  t_env: int) -> _Values:
    probs = torch.softmax(_first_step(learner.actor, obs), dim=-1)
    onehot = torch.nn.functional.one_hot(joint, learner.spec.n_actions).to(probs.dtype)
    q_tot = learner.critic(states, onehot).min(dim=-1).values
    return None, q_tot, probs.argmax(dim=-1), probs
