"""Decentralisation by DAgger (algo ``dagger``): CESMA's Algorithm 1 (Lin et al., §4 and appendix B)
on the shared core.

A fixed centralised expert ``π*`` (an exported policy file, ``dagger.expert``, loaded and checked
by :func:`marlrepro.policy_file.load_policy` and :func:`~marlrepro.policy_file.check_env_spec`
before anything trains) supervises ``M`` decentralised students ``π_1, …, π_M``, each its own MLP
on its own observation (:class:`~marlrepro.controller.PerAgentPolicyController`, 2 hidden layers of
``agent.hidden_dim``; its JAX twin ``per_agent_policy_step`` acts in the fused rollout), or with
``dagger.student: rnn`` (appendix E.1, SMAC) pymarl's recurrent agent shared by the students, each
fed its unit id (:class:`~marlrepro.controller.AgentController` acting greedily,
:class:`~marlrepro.controller.SoftmaxPolicyController` at temperature 1 sampling; the fused
rollout's GRU twin ``rnn_agent_step``), whose outputs are the policies' logits and whose loss
unrolls the hidden state over each stored episode from its first step, as while acting:

1. the STUDENTS act (Algorithm 1, line 3: a sample of each student's softmax policy while
   training, or with ``dagger.acting: greedy`` its most probable available action,
   :class:`~marlrepro.controller.GreedyPerAgentPolicyController`; greedy in evaluation), and their episodes go into the
   replay ring, which is the aggregated dataset ``D`` (one dataset shared by the agents, §4;
   ``learner.buffer_size`` episodes, large enough to keep every episode of the run);
2. every stored step is labelled with the expert's greedy joint action on that step's
   observations, ``a*_i = π*(o_1, …, o_M)_i`` (lines 4–5);
3. once ``D`` holds ``learner.batch_size`` episodes, each environment step earns one supervised
   update (``learner.updates_per_env_step: 1``, CESMA's ``k = 1``; lines 6–9) minimising the
   cross-entropy ``−Σ_i log π_i(a*_i | o_i)`` of a batch drawn from ``D``.

The labels are computed at update time from the stored observations rather than stored at
collection time. That is the same dataset: the expert is fixed (frozen weights, never trained) and
its greedy action is a deterministic function of what it reads from the stored step (for a
recurrent expert, the episode's observations up to the step and the students' executed actions as
its last actions, which is what it would have read while labelling online). A value expert is
greedy on its values, a policy expert on its policy's logits, as its own evaluation plays.

The loss averages over the filled steps of live agents (the death mask) whose label is available,
each agent's student policy masked to its available actions, as BC's (:mod:`marlrepro.learners.bc`).
Two options weigh its labels (:meth:`DAggerLearner.label_weight`): ``dagger.dataset: per_agent``
(appendix A.1, Fig. 8) draws a batch of episodes per student and counts each episode for its own
student alone; ``dagger.move_weight`` is appendix E.4's weighted cross-entropy. A joint-action
expert's labels are its greedy joint action, decoded (:meth:`AgentController.greedy`).
"""

from __future__ import annotations

import torch

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import (
    AgentController,
    GreedyPerAgentPolicyController,
    PerAgentPolicyController,
    SoftmaxPolicyController,
)
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import PolicyFileError
from marlrepro.learners.base import ActorCriticLearner, LossTerms, ParamGroup
from marlrepro.learners.bc import imitation_loss


def load_expert(path: str, spec: EnvSpec, device: torch.device) -> AgentController:
    """The expert's frozen controller from policy file ``path``, checked against env ``spec``
    (:class:`PolicyFileError` naming the file when it is missing, corrupt or does not fit)."""
    # policy_file builds learners (learners.build imports this module): imported here, as demos.py does
    from marlrepro.policy_file import check_env_spec, load_policy

    if not path:
        raise PolicyFileError("dagger.expert: algo 'dagger' needs the expert's policy file "
                              "(written by `marlrepro export-policy`); got none")
    policy = load_policy(path, device)
    try:
        check_env_spec(policy.manifest, spec)
    except PolicyFileError as err:
        raise PolicyFileError(f"dagger.expert {path}: {err}") from None
    return policy.controller


def make_students(spec: EnvSpec, config: TrainConfig) -> AgentController:
    """The students of ``config.dagger`` (``student``: per-agent MLPs or the shared recurrent agent;
    ``acting``: a sample of their softmax policies or their most probable available action)."""
    greedy = config.dagger.acting == "greedy"
    if config.dagger.student == "rnn":  # E.1: pymarl's agent, its parameters shared, each unit its id
        return AgentController(spec, config.agent) if greedy else \
            SoftmaxPolicyController(spec, config.agent, transform=None, alpha_init=1.0, learn_temperature=False)
    return (GreedyPerAgentPolicyController if greedy else PerAgentPolicyController)(spec, config.agent)


def expert_labels(expert: AgentController, batch: Episodes) -> torch.Tensor:
    """The expert's greedy available action [B, T, N] at every step of ``batch``'s episodes
    (Algorithm 1, line 4), fed the episode's executed actions as its last actions."""
    with torch.no_grad():
        values = expert.sequence(expert.observe(batch), batch.actions, batch.avail_actions)[:, :-1]
        return expert.greedy(values, batch.avail_actions[:, :-1])  # a joint-action DQN decodes its argmax


class DAggerLearner(ActorCriticLearner):
    """Decentralised students imitating a fixed centralised expert on their own visited states
    (module docstring). ``actor``: the students; ``expert``: the expert's frozen controller."""

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        # each student's own cross-entropy beside the accuracy (appendix A.2, Fig. 9: loss per agent)
        self.update_scalars = ("accuracy", *(f"loss_agent{i}" for i in range(spec.n_agents)))
        self.lr = config.learner.lr
        self.actor = make_students(spec, config)
        self.expert = load_expert(config.dagger.expert, spec, device)
        self.per_agent = config.dagger.dataset == "per_agent"
        self.batch_draws = spec.n_agents if self.per_agent else 1  # a batch of episodes per student
        self.move_weight = config.dagger.move_weight
        self.to(device)

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """The students at ``learner.lr``, unclipped (CESMA gives no clipping for decentralisation)."""
        return (ParamGroup("actor.", self.lr, clip=False),)

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        """The students' cross-entropy against the expert's labels of ``batch``'s steps (Algorithm 1,
        line 8); logged: ``accuracy``, the share of those labels that are the students' greedy choice,
        and ``loss_agent{i}``, student ``i``'s own cross-entropy (appendix A.2, Fig. 9)."""
        logits = self.actor.sequence(self.actor.observe(batch), batch.actions, batch.avail_actions)
        labels = expert_labels(self.expert, batch)
        return imitation_loss(logits, labels, batch, self.spec, self.label_weight(labels), per_agent=True)

    def label_weight(self, labels: torch.Tensor) -> torch.Tensor | None:
        """Each label's weight [B, T, N] in the cross-entropy, or None (all 1: the shared dataset's
        plain cross-entropy). With ``dagger.dataset: per_agent`` the batch holds ``N`` draws of
        ``learner.batch_size`` episodes and episode ``k`` is in agent ``k mod N``'s alone; with
        ``dagger.move_weight`` a label other than the no-op (action 0) weighs that much."""
        if not self.per_agent and self.move_weight == 1.0:
            return None
        weight = torch.ones_like(labels, dtype=torch.float32)
        if self.per_agent:
            rows, n = labels.shape[0], labels.shape[-1]
            owner = torch.arange(rows, device=labels.device).unsqueeze(-1) % n == torch.arange(n, device=labels.device)
            weight = weight * owner.unsqueeze(1)  # [B, 1, N]: episode k trains agent k mod N
        if self.move_weight != 1.0:
            weight = weight * torch.where(labels != 0, self.move_weight, 1.0)
        return weight
