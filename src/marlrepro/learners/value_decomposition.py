"""IQL, VDN and QMIX learners on episode batches (pymarl2's ``NQLearner``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import LearnerConfig, TrainConfig
from marlrepro.controller import AgentController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.targets import td_lambda_targets
from marlrepro.nets.mixers import build_mixer


@dataclass
class UpdateStats:
    """Device tensors from one update; read them outside the hot loop."""

    loss: torch.Tensor
    grad_norm: torch.Tensor
    q_taken_mean: torch.Tensor
    target_mean: torch.Tensor


def build_optimizer(params, config: LearnerConfig) -> torch.optim.Optimizer:
    """Adam (pymarl2) or RMSProp (pymarl, IGM-DA) with the configured constants."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.RMSprop(params, lr=config.lr, alpha=config.optim_alpha, eps=config.optim_eps)


class ValueDecompositionLearner:
    """Q-learning of a factored joint action-value.

    The loss is ``½ E[(Q_tot(τ, u; s) − sg[G^λ])²]`` over real (unpadded) steps, where
    ``Q_tot = f(Q_1(τ_1, u_1), …, Q_N(τ_N, u_N); s)`` with ``f`` the mixer (sum for VDN, QMIX's
    monotone hypernetwork, none for IQL, which regresses each agent to the team reward), and
    ``G^λ`` the TD(λ) return bootstrapped from target networks. With double Q the bootstrap
    action is the online network's greedy available action, evaluated by the target network
    (van Hasselt et al. 2016).
    """

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        self.spec = spec
        self.config = config.learner
        self.controller = AgentController(spec, config.agent).to(device)
        mixer = build_mixer(config.algo, spec.n_agents, spec.state_dim, config.mixer)
        self.mixer = mixer.to(device) if mixer is not None else None
        self.target_controller = copy.deepcopy(self.controller)
        self.target_controller.agent.rnn.flatten_parameters()  # deepcopy breaks cuDNN's layout
        self.target_mixer = copy.deepcopy(self.mixer)
        for module in self.target_modules():
            module.requires_grad_(False)
        self.params = list(self.controller.parameters())
        if self.mixer is not None:
            self.params += list(self.mixer.parameters())
        self.optimizer = build_optimizer(self.params, self.config)
        self.last_target_update_episode = 0

    def online_modules(self) -> list[nn.Module]:
        return [m for m in (self.controller, self.mixer) if m is not None]

    def target_modules(self) -> list[nn.Module]:
        return [m for m in (self.target_controller, self.target_mixer) if m is not None]

    def mix(self, mixer: nn.Module | None, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """[B, T, N] agent values -> [B, T, K]: the mixed Q_tot (K=1), or the agents' own (K=N)."""
        return agent_qs if mixer is None else mixer(agent_qs, states)

    def joint_q(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Online ``Q_tot`` for given per-agent values (used to inspect matrix games)."""
        return self.mix(self.mixer, agent_qs, states)

    def loss(self, batch: Episodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The masked TD(λ) loss of one batch; returns (loss, mean Q taken, mean target)."""
        cfg = self.config
        rewards = batch.reward.unsqueeze(-1)
        terminated = batch.terminated.unsqueeze(-1)
        mask = batch.filled.unsqueeze(-1)

        q = self.controller.sequence(batch.obs, batch.actions)  # [B, T+1, N, A]
        q_taken = q[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)  # [B, T, N]
        with torch.no_grad():
            target_q = self.target_controller.sequence(batch.obs, batch.actions)
            target_q = target_q.masked_fill(~batch.avail_actions, float("-inf"))
            if cfg.double_q:
                online = q.detach().masked_fill(~batch.avail_actions, float("-inf"))
                best = online.argmax(dim=-1, keepdim=True)
                target_max = target_q.gather(-1, best).squeeze(-1)
            else:
                target_max = target_q.max(dim=-1).values
            # Padded steps have no available action; their value never reaches a target.
            target_max = torch.where(batch.avail_actions.any(dim=-1), target_max, 0.0)
            target_max = self.mix(self.target_mixer, target_max, batch.state)  # [B, T+1, K]
            targets = td_lambda_targets(rewards, terminated, mask, target_max, cfg.gamma, cfg.td_lambda)

        q_tot = self.mix(self.mixer, q_taken, batch.state[:, :-1])  # [B, T, K]
        td_error = (q_tot - targets) * mask
        denom = mask.sum() * q_tot.shape[-1]
        loss = 0.5 * td_error.pow(2).sum() / denom
        return loss, (q_tot * mask).sum() / denom, (targets * mask).sum() / denom

    def update(self, batch: Episodes, episode: int) -> UpdateStats:
        """One gradient step on ``batch``; hard-copies the target networks every
        ``target_update_interval`` episodes."""
        loss, q_mean, target_mean = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        if episode - self.last_target_update_episode >= self.config.target_update_interval:
            self.update_targets()
            self.last_target_update_episode = episode
        return UpdateStats(loss.detach(), grad_norm.detach(), q_mean.detach(), target_mean.detach())

    def update_targets(self) -> None:
        for online, target in zip(self.online_modules(), self.target_modules()):
            target.load_state_dict(online.state_dict())

    def state_dict(self) -> dict:
        return {
            "controller": self.controller.state_dict(),
            "mixer": self.mixer.state_dict() if self.mixer is not None else None,
            "target_controller": self.target_controller.state_dict(),
            "target_mixer": self.target_mixer.state_dict() if self.target_mixer is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "last_target_update_episode": self.last_target_update_episode,
        }

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.target_controller.load_state_dict(state["target_controller"])
        if self.mixer is not None:
            self.mixer.load_state_dict(state["mixer"])
            self.target_mixer.load_state_dict(state["target_mixer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.last_target_update_episode = state["last_target_update_episode"]
