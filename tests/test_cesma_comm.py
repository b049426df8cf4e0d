"""CESMA's learned communication (Algorithm 2, §4.4; :mod:`marlrepro.learners.dagger_comm`): a
speaker's communication head learns only through the OTHER agents' imitation losses, through the
channel; the relaxed message is a distribution, the words in the env are discrete; the relaxed
observations are the env's when the message is the word sent (the tasks' slot metadata); the
students learn speaker–listener from a scripted expert."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn
from run_outputs import assert_pack_equals_runs_alone
from training_checks import run_and_check_training

import marlrepro.learners.dagger as dagger_module
from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig, load_config
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import make
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError
from marlrepro.exploration import masked_greedy
from marlrepro.learners.build import build_learner
from marlrepro.learners.dagger import expert_labels
from marlrepro.learners.dagger_comm import DAggerCommLearner, joint_map
from marlrepro.runner import EpisodeRunner
from marlrepro.train import Trainer

SL, REF, REF3 = "jaxmpe:simple_speaker_listener", "jaxmpe:simple_reference", "jaxmpe:simple_reference_3a5l"
SETTINGS = ["run.device=cpu", "run.progress=false", "tracking.uri=", "dagger.expert=scripted"]
CPU = torch.device("cpu")


class ScriptedExpert(nn.Module):
    """A stand-in for an exported expert's controller: its greedy labels are its values' available argmax."""

    def observe(self, batch: Episodes) -> torch.Tensor:
        return batch.obs

    def greedy(self, values: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        return masked_greedy(values, avail)


class ScriptedSpeakerListener(ScriptedExpert):
    """A centralised expert of speaker–listener on the joint observation: the listener moves along
    the axis of its larger offset to the goal landmark, whose colour only the speaker sees (the
    speaker's observation is the goal's colour, 0.65 at the goal's index); the speaker's label is
    its first word (it has one move: only its move, 0, is imitated). Greedy values [B, T+1, N, 5]."""

    def sequence(self, obs: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        goal = obs[..., 0, :3].argmax(dim=-1)
        landmarks = obs[..., 1, 2:8].unflatten(-1, (3, 2))
        offset = landmarks.gather(-2, goal[..., None, None].expand(*goal.shape, 1, 2)).squeeze(-2)
        offset = offset - 0.5 * obs[..., 1, 0:2]  # brake: aim where the velocity will not carry it
        listener = torch.stack([torch.full_like(offset[..., 0], -1.0), -offset[..., 0], offset[..., 0],
                                -offset[..., 1], offset[..., 1]], dim=-1)
        speaker = nn.functional.one_hot(torch.zeros_like(goal), 5).to(obs.dtype)
        return torch.stack([speaker, listener], dim=-2)


class NoOpExpert(ScriptedExpert):
    """An expert labelling every agent's action 0 (the gradient tests give their own labels)."""

    def sequence(self, obs: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.zeros(obs.shape[:-1], dtype=torch.long), avail.shape[-1]).to(obs.dtype)


@pytest.fixture
def scripted(monkeypatch):
    """``dagger.expert`` loads :class:`ScriptedSpeakerListener` on speaker–listener, else :class:`NoOpExpert`."""
    monkeypatch.setattr(dagger_module, "load_expert", lambda path, spec, device:
                        ScriptedSpeakerListener() if spec.name == SL else NoOpExpert())


def comm_config(task: str, *extra: str) -> TrainConfig:
    return load_config(["config/algos/dagger_comm.yaml"], [*SETTINGS, f"env.name={task}", *extra])


def learner_of(task: str, *extra: str, seed: int = 0) -> DAggerCommLearner:
    torch.manual_seed(seed)
    learner = build_learner(validate_env(task, {})[0], comm_config(task, *extra), CPU)
    assert isinstance(learner, DAggerCommLearner)
    return learner


def collect(learner: DAggerCommLearner, task: str, rollout: str = "fused", explore: bool = True,
            envs: int = 8, seed: int = 0) -> Episodes:
    runner = EpisodeRunner([make(task, envs, seed)], StackedModules([learner]), "actor", rollout)
    collected, _ = runner.run([0.0], [True], [torch.Generator().manual_seed(seed)], explore=explore)
    return Episodes(**{name: value[0] for name, value in collected.tensors().items()})


def head_grads(learner: DAggerCommLearner, agent: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(agent's comm head gradient: its word columns of the last layer, weight and bias; its move
    head's; every other parameter of its network) after a backward pass."""
    mlp, moves = learner.actor.agent.mlp, learner.channel.moves
    weight, bias = mlp.weights[-1].grad[agent], mlp.biases[-1].grad[agent]
    body = torch.cat([p.grad[agent].flatten() for p in [*mlp.weights[:-1], *mlp.biases[:-1], *mlp.norms]])
    return (torch.cat([weight[:, moves:].flatten(), bias[moves:]]),
            torch.cat([weight[:, :moves].flatten(), bias[:moves]]), body)


def backward(learner: DAggerCommLearner, batch: Episodes, labels: torch.Tensor, weight: torch.Tensor | None = None,
             channel_gradient: bool = True) -> None:
    learner.zero_grad()
    learner.loss_terms(batch, labels, weight, channel_gradient)[0].loss.backward()


def random_labels(batch: Episodes, n_actions: int) -> torch.Tensor:
    return torch.randint(n_actions, batch.actions.shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("relaxation", ["softmax", "gumbel"])
def test_the_speaker_learns_only_through_the_listener_on_speaker_listener(scripted, relaxation):
    """Speaker–listener: the speaker has one move, so the loss is the listener's alone; its gradient
    reaches the speaker's comm head (and body), and with the channel detached nothing reaches the
    speaker at all; with either relaxation (a Gumbel-softmax message is a noisy distribution)."""
    learner = learner_of(SL, f"dagger.channel={relaxation}")
    batch = collect(learner, SL)
    labels = expert_labels(learner.expert, batch)
    _, messages, _ = learner.loss_terms(batch, labels)
    torch.testing.assert_close(messages.sum(-1), torch.ones(messages.shape[:-1]))
    soft = torch.softmax(learner.heads(batch.obs, batch)[..., 0, learner.channel.moves:], -1)
    assert torch.allclose(messages[..., 0, :], soft) == (relaxation == "softmax")
    backward(learner, batch, labels)
    comm, move, body = head_grads(learner, 0)
    assert comm.abs().sum() > 0 and body.abs().sum() > 0
    assert torch.count_nonzero(move) == 0  # the speaker's move logits are in no loss
    backward(learner, batch, labels, channel_gradient=False)
    assert all(torch.count_nonzero(g) == 0 for g in head_grads(learner, 0))
    assert head_grads(learner, 1)[1].abs().sum() > 0  # the listener still learns to move


@pytest.mark.parametrize("task", [REF, REF3])
def test_a_comm_head_hears_the_others_losses_never_its_own(scripted, task):
    """simple_reference (2 and 3 agents), every agent speaking and moving: with agent 0's own loss
    alone its comm head gets exactly zero gradient while the others' comm heads (whose words it
    hears) get some; with the others' losses alone agent 0's comm head gets some and its move head
    none; detaching the channel leaves agent 0 with nothing from the others' losses."""
    learner = learner_of(task)
    batch = collect(learner, task)
    labels = random_labels(batch, 50)
    n = batch.obs.shape[2]
    own = torch.zeros(n)
    own[0] = 1.0
    backward(learner, batch, labels, own)
    comm, move, _ = head_grads(learner, 0)
    assert torch.count_nonzero(comm) == 0 and move.abs().sum() > 0
    assert all(head_grads(learner, j)[0].abs().sum() > 0 for j in range(1, n))
    backward(learner, batch, labels, 1.0 - own)
    comm, move, body = head_grads(learner, 0)
    assert comm.abs().sum() > 0 and body.abs().sum() > 0 and torch.count_nonzero(move) == 0
    backward(learner, batch, labels, 1.0 - own, channel_gradient=False)
    assert all(torch.count_nonzero(g) == 0 for g in head_grads(learner, 0))


def test_the_relaxed_message_is_a_distribution_and_the_words_in_the_env_are_discrete(scripted):
    """In training a message is a softmax over the speaker's own words (sums to 1, differentiable);
    in the env (the fused rollout and the stepwise loop, greedy and sampling) every heard word is
    a one-hot: greedy, the argmax of the speaker's comm head on its previous observation (and each
    move its move head's argmax: the fused rollout's twin acts as the torch heads); sampling, the
    word of its executed action."""
    for task in (SL, REF3):
        learner = learner_of(task)
        moves = learner.moves
        for rollout in ("fused", "stepwise"):
            for explore in (False, True):
                batch = collect(learner, task, rollout, explore)
                _, messages, _ = learner.loss_terms(batch, random_labels(batch, 5))
                assert messages.requires_grad
                torch.testing.assert_close(messages.sum(-1), torch.ones(messages.shape[:-1]))
                words = nn.functional.one_hot(batch.actions // moves, messages.shape[-1]).float()
                if not explore:
                    heads = learner.heads(batch.obs, batch).detach()
                    word_avail = learner.channel.word_avail
                    greedy = heads[..., learner.channel.moves:].masked_fill(~word_avail, -1e9).argmax(-1)
                    assert torch.equal(batch.actions // moves, greedy[:, :-1])
                    move_avail = learner.channel.move_avail(batch.avail_actions, learner.actor.agent.joint_map)
                    move = heads[..., :learner.channel.moves].masked_fill(~move_avail, -1e9).argmax(-1)
                    assert torch.equal(batch.actions % moves, move[:, :-1])
                for slot in learner.actor.channel.slots:
                    heard = batch.obs[:, 1:, slot.listener, slot.start:slot.start + messages.shape[-1]]
                    said = words[:, :, slot.speaker, :heard.shape[-1]]
                    filled = batch.filled > 0
                    assert set(heard[filled].unique().tolist()) <= {0.0, 1.0}
                    assert torch.equal(heard[filled].sum(-1), torch.ones(int(filled.sum())))
                    assert torch.equal(heard[filled], said[filled])


@pytest.mark.parametrize("task", [SL, REF, REF3])
def test_the_relaxed_observations_are_the_envs_when_the_message_is_the_word_sent(scripted, task):
    """The slot metadata's fidelity: substituting the one-hot of each word actually sent at ``t − 1``
    into the stored observations of ``t`` gives back the env's observations exactly, at every
    step; a uniform message changes exactly the word slots of steps after the first."""
    learner = learner_of(task)
    batch = collect(learner, task)
    width = learner.channel.place.shape[1]
    words = nn.functional.one_hot(batch.actions // learner.moves, width).float()
    sent = torch.cat([words, torch.zeros_like(words[:, :1])], dim=1)  # [B, T+1, N, W]; the last is unused
    assert torch.equal(learner.channel.relaxed_observations(batch.obs, sent), batch.obs)
    uniform = learner.channel.relaxed_observations(batch.obs, torch.full_like(sent, 1.0 / width))
    changed = (uniform != batch.obs).any(dim=(0, 1))  # [N, D]
    assert torch.equal(changed, learner.channel.keep == 0)
    assert torch.equal(uniform[:, 0], batch.obs[:, 0])
    assert len(learner.actor.channel.slots) == {SL: 1, REF: 2, REF3: 6}[task]


def test_the_product_policy_acts_as_its_two_heads():
    """The joint-action softmax of the factored logits is the product of the move and word heads'
    softmaxes over each agent's own actions (simple_reference: 5 moves x 10 words; speaker–listener:
    the speaker's 3 words, the listener's 5 moves), so its argmax is the pair of argmaxes."""
    from marlrepro.envs.jax_mpe import comm_channel

    for task in (REF, SL):
        channel = comm_channel(task)
        spec = validate_env(task, {})[0]
        table = joint_map(channel, spec.n_actions)
        moves, words = max(channel.moves), max(channel.words)
        heads = torch.randn(7, spec.n_agents, moves + words)
        joint = torch.einsum("bko,koa->bka", heads, table)
        for i, (m_i, w_i) in enumerate(zip(channel.moves, channel.words, strict=True)):
            own = torch.softmax(joint[:, i, :m_i * w_i], -1)
            move = torch.softmax(heads[:, i, :m_i], -1)
            word = torch.softmax(heads[:, i, moves:moves + w_i], -1)
            torch.testing.assert_close(own, (word[:, :, None] * move[:, None, :]).flatten(1))


def test_communication_needs_a_speaking_task_and_the_dagger_algo(scripted):
    """A task whose agents are silent, or another backend, fails when the learner is built, naming
    the tasks that speak; another algo rejects dagger.communication, and DAgger without it a
    relaxation of words."""
    with pytest.raises(ConfigError, match="simple_reference"):
        learner_of("jaxmpe:simple_spread")
    with pytest.raises(ConfigError, match="dagger.communication"):
        load_config(["config/algos/qmix.yaml"], ["run.device=cpu", "dagger.communication=learned"])
    with pytest.raises(ConfigError, match="dagger.channel"):
        load_config(["config/algos/dagger.yaml"], ["run.device=cpu", "dagger.channel=gumbel"])


def test_a_trainer_run_trains_the_communicating_students(scripted, tmp_path):
    """The learner on the shared core: the trainer builds it from config/algos/dagger_comm.yaml, the
    fused rollout acts with its factored students, and every update trains them."""
    config = comm_config(SL, "run.t_max=400", "run.eval_interval=200", "run.eval_episodes=8",
                         "learner.buffer_size=64")
    run_and_check_training(Trainer.solo(config, tmp_path))
    accuracy = pd.read_parquet(tmp_path / "metrics.parquet")["accuracy"].dropna()
    assert len(accuracy) > 0 and accuracy.between(0.0, 1.0).all()


def test_a_pack_of_two_equals_the_runs_alone(scripted, tmp_path):
    """Two runs (other seeds) on simple_reference packed equal the two runs alone, exactly (CPU, the
    stepwise rollout, as tests/test_dagger.py): the relaxed channel lives in the vmapped loss."""
    assert_pack_equals_runs_alone([comm_config(REF, "agent.hidden_dim=16", f"run.seed={seed}", "run.t_max=200",
                                               "run.eval_interval=100", "run.eval_episodes=8",
                                               "learner.buffer_size=32", "run.rollout=stepwise")
                                   for seed in (0, 1)], tmp_path)


class SpeakerListenerTraining:
    """Algorithm 2 on speaker–listener against the scripted expert, outside the trainer (so one test
    trains twice, with and without the channel's gradient, on one compiled fused rollout): the
    students collect 8 episodes per rollout into the aggregated dataset, then take ``updates``
    Adam steps on batches of ``batch`` of its episodes."""

    def __init__(self) -> None:
        self.learner = learner_of(SL)
        self.stacked = StackedModules([self.learner])
        self.runner = EpisodeRunner([make(SL, 8, 0)], self.stacked, "actor", "fused")
        self.generator = torch.Generator().manual_seed(0)

    def load(self, learner: DAggerCommLearner) -> None:
        """Make ``learner``'s students the ones that act (the runner reads the stacked weights)."""
        self.learner = learner
        with torch.no_grad():
            for name, p in learner.named_parameters():
                self.stacked.params[name][0].copy_(p)

    def score(self, epsilon: float = 0.0, rollouts: int = 8) -> float:
        """The mean return over ``8 · rollouts`` episodes, greedy (ε = 1: uniformly random agents)."""
        returns = [self.runner.run([epsilon], [True], [self.generator], explore=epsilon > 0)[1].returns
                   for _ in range(rollouts)]
        return float(torch.cat(returns, dim=1).mean())

    def train(self, channel_gradient: bool, rollouts: int = 30, updates: int = 30, batch: int = 8) -> float:
        """Train a fresh pair (the same initial weights every time); its greedy score."""
        self.load(learner_of(SL, seed=1))
        learner = self.learner
        optimiser = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=0.003)
        dataset: list[Episodes] = []
        for _ in range(rollouts):
            collected, _ = self.runner.run([0.0], [True], [self.generator])
            dataset.append(Episodes(**{name: value[0] for name, value in collected.tensors().items()}))
            episodes = Episodes(**{name: torch.cat([getattr(e, name) for e in dataset])
                                   for name in dataset[0].tensors()})
            for _ in range(updates):
                pick = torch.randint(episodes.obs.shape[0], (batch,), generator=self.generator)
                sample = Episodes(**{name: value[pick] for name, value in episodes.tensors().items()})
                optimiser.zero_grad()
                labels = expert_labels(learner.expert, sample)
                learner.loss_terms(sample, labels, channel_gradient=channel_gradient)[0].loss.backward()
                optimiser.step()
            self.load(learner)
        return self.score()


def expert_return(episodes: int = 64) -> float:
    """The scripted expert's mean return, acting on the joint observation."""
    env, expert = make(SL, episodes, 1), ScriptedSpeakerListener()
    step, total = env.reset(), torch.zeros(episodes)
    for _ in range(env.spec.episode_limit):
        step = env.step(expert.sequence(step.obs[:, None], step.obs, step.obs)[:, 0].argmax(-1))
        total += step.reward
    return float(total.mean())


def test_the_decentralised_pair_learns_to_talk_on_speaker_listener(scripted):
    """Trained by Algorithm 2 from the scripted expert (speaker–listener, 30 rollouts of 8 episodes),
    the greedy decentralised pair scores far better than uniformly random agents and than the
    same training with the channel detached (the speaker's words then learn nothing, and the
    listener cannot tell the goal), and comes near the expert."""
    training = SpeakerListenerTraining()
    random_return = training.score(epsilon=1.0)
    talking, muted = training.train(True), training.train(False)
    expert = expert_return()
    print(f"random {random_return:.2f}, muted {muted:.2f}, talking {talking:.2f}, expert {expert:.2f}")
    assert expert > random_return + 0.5 * abs(random_return)
    assert talking > muted + 0.2 * abs(muted)
    assert talking > random_return + 0.5 * abs(random_return)
