"""Behavioural cloning (algo ``bc``), MIFQ's first baseline (Bui et al., §3.2.1 and appendix B.1,
"Behavior Cloning (BC)"): each agent's policy maximises the likelihood of the expert's actions,

    max_{π_i, i ∈ N}  Σ_i Σ_{(o_i, a_i) ∈ D^E}  log π_i(a_i | o_i),

here with the project's recurrent agent: one GRU policy ``π_i(·|τ_i) = softmax(logits)`` shared by
the agents (the observation history, plus the last action and the agent's id where ``agent`` asks
for them: :class:`~marlrepro.controller.SoftmaxPolicyController` at temperature 1, so its JAX twin
samples it in the fused rollout). Its histories are the expert's own (teacher forcing: the last
action fed at step ``t`` is the expert's).

The loss is the mean negative log-likelihood of the demonstrations' actions over the filled steps of
live agents (the death mask, :func:`~marlrepro.learners.ppo.live_agents`) whose action was available,
the policy masked to the available actions; a step with a single available action has likelihood 1
under any masked policy, so excluding it changes nothing. BC learns from the demonstrations alone
(:attr:`~marlrepro.learners.base.Learner.demonstrations`); the replay batch that the core also
samples is ignored, and the rollouts it collects (sampling its policy) only feed the training
metrics. Evaluation is greedy and decentralised, as every learner's.
"""

from __future__ import annotations

import torch

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import SoftmaxPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import ActorCriticLearner, LossTerms
from marlrepro.learners.max_entropy import masked_log_policy
from marlrepro.learners.ppo import live_agents


class BCLearner(ActorCriticLearner):
    """Per-agent maximum likelihood of the expert's actions (module docstring)."""

    demonstrations = True
    update_scalars = ("accuracy",)

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.actor = SoftmaxPolicyController(spec, config.agent, transform=None, alpha_init=1.0,
                                             learn_temperature=False)
        self.to(device)

    def forward(self, batch: Episodes, t_env: torch.Tensor, demos: Episodes) -> LossTerms:
        """The negative log-likelihood of ``demos``' actions (MIFQ's BC objective, negated and
        averaged); logged: ``accuracy``, the share of those actions that are the policy's greedy
        choice. ``batch`` (replay) is not used."""
        logits = self.actor.sequence(self.actor.observe(demos), demos.actions, demos.avail_actions)
        return imitation_loss(logits, demos.actions, demos, self.spec)


def imitation_loss(logits: torch.Tensor, labels: torch.Tensor, episodes: Episodes, spec: EnvSpec,
                   label_weight: torch.Tensor | None = None, per_agent: bool = False) -> LossTerms:
    """The mean negative log-likelihood of ``labels`` [B, T, N] under the policies ``softmax(logits)``
    (``logits`` [B, T+1, N, A]) masked to ``episodes``' available actions, over its filled steps of
    live agents (``spec``'s death mask, :func:`~marlrepro.learners.ppo.live_agents`) whose label
    is available; logged: ``accuracy``, the share of those labels that are the policy's greedy
    choice (BC's objective; DAgger's on the expert's labels).

    ``label_weight`` (broadcast to [B, T, N]; DAgger's): each label's weight in a weighted mean,
    ``Σ w·(−log π) / Σ w`` (a weighted cross-entropy; 0 leaves a label out, also of the accuracy).

    ``per_agent`` (DAgger's, CESMA appendix A.2, Fig. 9) also logs ``loss_agent{i}``: agent ``i``'s
    own cross-entropy, the same weighted mean over its labels alone (0 where it has none); the loss
    is their mean weighted by each agent's total label weight."""
    avail = episodes.avail_actions[:, :-1]
    log_pi = masked_log_policy(logits[:, :-1], avail, 1.0)  # [B, T, N, A]
    labelled = log_pi.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # [B, T, N]
    available = avail.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    weight = episodes.filled.unsqueeze(-1) * live_agents(avail, spec) * available
    counted = weight
    if label_weight is not None:
        counted = weight * (label_weight > 0)
        weight = weight * label_weight
    floor = 1e-8 if label_weight is not None else 1.0
    count = weight.sum().clamp(min=floor)
    log_likelihood = (labelled * weight).sum() / count
    with torch.no_grad():
        accuracy = ((log_pi.argmax(dim=-1) == labels).float() * counted).sum() / counted.sum().clamp(min=1.0)
        logged = {"accuracy": accuracy}
        if per_agent:  # [N]: each agent's weighted mean over its own labels, on the device (no sync)
            agent_nll = -(labelled * weight).sum(dim=(0, 1)) / weight.sum(dim=(0, 1)).clamp(min=floor)
            logged |= {f"loss_agent{i}": agent_nll[i] for i in range(agent_nll.shape[0])}
    return LossTerms(-log_likelihood, log_likelihood.detach(), torch.zeros_like(log_likelihood), logged=logged)
