"""CESMA's decentralisation by DAgger (algo ``dagger``, :mod:`marlrepro.learners.dagger`): the expert,
a policy file, labels the states that the students visit; masked steps and unavailable actions
contribute nothing; each student's own loss is logged (Fig. 9); a wrong expert file fails before
training; the students learn the expert's policy on simple_spread; a pack equals its runs alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch
from run_outputs import assert_packed_run_equals_alone
from training_checks import run_and_check_training

from marlrepro import __version__
from marlrepro.archive import sha256, tensor_bytes, write_archive
from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig, load_config, to_dict
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import make
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError, PolicyFileError
from marlrepro.learners.build import build_learner
from marlrepro.learners.dagger import DAggerLearner, expert_labels
from marlrepro.learners.max_entropy import masked_log_policy
from marlrepro.policy_file import (
    FORMAT,
    VERSION,
    WEIGHTS_MEMBER,
    Manifest,
    evaluate_policy,
    export_policy,
    load_policy,
)
from marlrepro.runner import EpisodeRunner
from marlrepro.train import PackMember, Trainer, train_pack

TASK = "jaxmpe:simple_spread"
SETTINGS = ["run.device=cpu", "run.progress=false", "tracking.uri=", f"env.name={TASK}"]
BIG = 100.0  # gates the landmark offsets by the agent id (offsets are far smaller)
SCALE = 0.1  # keeps the scores in tanh's near-linear range


def go_to_own_landmark(obs: torch.Tensor) -> torch.Tensor:
    """The scripted expert's action [..., N] from observations [..., N, 18]: agent ``i`` moves along
    the axis of its larger offset to landmark ``i`` (mpe2's layout: velocity, position, then the
    landmarks' offsets; actions 1 −x, 2 +x, 3 −y, 4 +y), never the no-op."""
    n = obs.shape[-2]
    own = torch.arange(n)
    offset = obs[..., 4:4 + 2 * n].unflatten(-1, (n, 2))[..., own, own, :]  # [..., N, 2]
    scores = torch.stack([torch.full_like(offset[..., 0], -1.0), -offset[..., 0], offset[..., 0],
                          -offset[..., 1], offset[..., 1]], dim=-1)
    return scores.argmax(dim=-1)


def scripted_expert_config() -> TrainConfig:
    return load_config(["config/algos/iql.yaml"], [*SETTINGS, "agent.hidden_dim=16", "agent.obs_last_action=false",
                                                   "agent.obs_agent_id=true"])


def scripted_expert_weights(learner) -> dict[str, torch.Tensor]:
    """Weights of a recurrent agent (input ``[o_i, onehot(i)]``) whose greedy action is exactly
    :func:`go_to_own_landmark`: ``fc1`` + ReLU gates agent ``i``'s own landmark offset by its id
    (``relu(±x + BIG·id_j − BIG)`` is ``relu(±x)`` for ``j = i`` and 0 otherwise), the GRU's update
    gate is shut (``z ≈ 0``, so ``h' = n``, no memory) and its candidate ``n = tanh(SCALE · score)``
    holds the five scores of the rule, which ``fc2`` copies out; tanh is increasing, so the argmax
    is the rule's."""
    state = {name: torch.zeros_like(value) for name, value in learner.controller.state_dict().items()}
    obs_dim, n = 18, 3
    fc1_w, fc1_b = state["agent.fc1.weight"], state["agent.fc1.bias"]
    unit = 0
    gates = {}  # (coordinate, sign) -> the fc1 units whose sum is that signed coordinate
    for j in range(n):
        for c in range(2):
            for sign in (1.0, -1.0):
                fc1_w[unit, 4 + 2 * j + c] = sign
                fc1_w[unit, obs_dim + j] = BIG
                fc1_b[unit] = -BIG
                gates.setdefault(c, []).append((unit, sign))
                unit += 1
    hidden = fc1_w.shape[0]
    w_ih, b_ih = state["agent.rnn.weight_ih_l0"], state["agent.rnn.bias_ih_l0"]
    b_ih[hidden:2 * hidden] = -30.0  # the update gate z = σ(−30) ≈ 0: torch's h' = (1 − z) n + z h ≈ n
    candidate = w_ih[2 * hidden:]
    b_ih[2 * hidden] = -SCALE  # the no-op's score: −1
    for action, (c, direction) in enumerate([(0, -1.0), (0, 1.0), (1, -1.0), (1, 1.0)], start=1):
        for unit_index, sign in gates[c]:
            candidate[action, unit_index] = SCALE * direction * sign
    fc2 = state["agent.fc2.weight"]
    for action in range(5):
        fc2[action, action] = 1.0
    return state


def write_scripted_expert(path: Path) -> Path:
    """A policy file (an IQL run's decentralised agents, in the export format) holding
    :func:`scripted_expert_weights`."""
    config = scripted_expert_config()
    spec, _ = validate_env(TASK, config.env.options)
    learner = build_learner(spec, config, torch.device("cpu"))
    weights = tensor_bytes(scripted_expert_weights(learner))
    manifest = Manifest(
        format=FORMAT, version=VERSION, marlrepro_version=__version__, method="iql", algo="iql", env=TASK,
        env_options=config.env.options, spec=dataclasses.asdict(spec), controller="test",
        controller_class="AgentController", controller_source="obs", config=to_dict(config), run_dir="scripted",
        checkpoint="none", t_env=0, weights_sha256=sha256(weights))
    write_archive(path, manifest, {WEIGHTS_MEMBER: weights})
    return path


@pytest.fixture(scope="module")
def expert(tmp_path_factory) -> Path:
    return write_scripted_expert(tmp_path_factory.mktemp("expert") / "expert.zip")


def dagger_config(expert: Path, *extra: str) -> TrainConfig:
    return load_config(["config/algos/dagger.yaml"], [*SETTINGS, f"dagger.expert={expert}", *extra])


def clear_of_ties(obs: torch.Tensor) -> torch.Tensor:
    """Steps [..., N] where the rule's two axes differ by more than float rounding."""
    n = obs.shape[-2]
    own = torch.arange(n)
    offset = obs[..., 4:4 + 2 * n].unflatten(-1, (n, 2))[..., own, own, :]
    return (offset[..., 0].abs() - offset[..., 1].abs()).abs() > 1e-4


def test_the_scripted_expert_file_plays_the_rule(expert):
    """The policy file's greedy agents are :func:`go_to_own_landmark` (the test's known expert)."""
    policy = load_policy(expert)
    env = make(TASK, 16, 0)
    runner = EpisodeRunner([env], StackedModules([torch.nn.ModuleDict({"policy": policy.controller})]), "policy",
                           "stepwise")
    episodes, _ = runner.run([0.0], [True], [torch.Generator()], explore=False)
    obs, actions = episodes.obs[0][:, :-1], episodes.actions[0]
    clear = clear_of_ties(obs) & (episodes.filled[0] > 0).unsqueeze(-1)
    assert bool((actions == go_to_own_landmark(obs))[clear].all())


def test_the_expert_labels_the_states_the_students_visit(expert):
    """The students (the learner's acting controller, not the expert) collect the episodes; the
    loss's target at each stored step is the expert's rule applied to that step's stored
    observations, and the loss is the students' cross-entropy against it. Untrained students
    mostly disagree with the labels, so the states are theirs, not the expert's."""
    torch.manual_seed(0)
    config = dagger_config(expert, "agent.hidden_dim=32")
    spec = validate_env(TASK, {})[0]
    learner = DAggerLearner(spec, config, torch.device("cpu"))
    assert learner.acting_controller is learner.actor
    env = make(TASK, 8, 0)
    runner = EpisodeRunner([env], StackedModules([learner]), "actor", "fused")
    collected, _ = runner.run([0.0], [True], [torch.Generator()])
    batch = Episodes(**{name: value[0] for name, value in collected.tensors().items()})
    labels = expert_labels(learner.expert, batch)
    rule = go_to_own_landmark(batch.obs[:, :-1])
    clear = clear_of_ties(batch.obs[:, :-1])
    assert bool((labels == rule)[clear].all())
    assert float((batch.actions == rule).float().mean()) < 0.5  # the students act, not the expert
    logits = learner.actor.sequence(batch.obs, batch.actions, batch.avail_actions)[:, :-1]
    direct = -torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).mean()
    terms = learner(batch, torch.tensor(0.0))
    torch.testing.assert_close(terms.loss, direct)


def test_unfilled_steps_dead_agents_and_unavailable_actions_contribute_nothing(expert):
    """The loss is the mean over filled steps of live agents of −log softmax over the AVAILABLE
    actions at the expert's label; changing what an unfilled step or a dead agent (only the no-op
    available) observes, or the students' logits of unavailable actions, changes nothing."""
    torch.manual_seed(0)
    spec = validate_env(TASK, {})[0]
    learner = DAggerLearner(spec, dagger_config(expert, "agent.hidden_dim=16"), torch.device("cpu"))
    b, t, n, a = 3, spec.episode_limit, spec.n_agents, spec.n_actions
    batch = Episodes.empty(b, spec, torch.device("cpu"))
    batch.obs.normal_()
    batch.avail_actions.copy_(torch.rand(b, t + 1, n, a) < 0.6)
    batch.avail_actions[..., 1:3] = True  # the rule's x moves stay available, so labels stay the rule's
    batch.avail_actions[:, :, 1] = False  # agent 1 dead: the no-op alone
    batch.avail_actions[:, :, 1, 0] = True
    batch.actions.copy_(torch.randint(a, (b, t, n)))
    batch.filled[:, :20] = 1.0
    batch.filled[2, 10:] = 0.0
    loss = learner(batch, torch.tensor(0.0)).loss
    labels = expert_labels(learner.expert, batch)
    logits = learner.actor.sequence(batch.obs, batch.actions, batch.avail_actions)[:, :-1].detach()
    log_pi = masked_log_policy(logits, batch.avail_actions[:, :-1], 1.0).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    weight = batch.filled.unsqueeze(-1).expand(b, t, n).clone()
    weight[:, :, 1] = 0.0
    torch.testing.assert_close(loss.detach(), -(log_pi * weight).sum() / weight.sum())
    changed = Episodes(**{name: value.clone() for name, value in batch.tensors().items()})
    changed.obs[2, 10:t] += 5 * torch.randn_like(changed.obs[2, 10:t])  # unfilled steps
    changed.obs[:, :, 1] += 5 * torch.randn_like(changed.obs[:, :, 1])  # the dead agent
    torch.testing.assert_close(learner(changed, torch.tensor(0.0)).loss, loss, rtol=0, atol=0)
    with torch.no_grad():  # an unavailable action's logit: shift agent 0's no-op output by a bias
        bias = learner.actor.agent.mlp.biases[-1]
        bias[0, 0] += 3.0
        batch.avail_actions[:, :, 0, 0] = False
    shifted = learner(batch, torch.tensor(0.0)).loss
    bias.data[0, 0] -= 3.0
    torch.testing.assert_close(shifted, learner(batch, torch.tensor(0.0)).loss, rtol=0, atol=0)


@pytest.mark.parametrize("options", [(), ("dagger.dataset=per_agent",), ("dagger.move_weight=3.0",)])
def test_each_students_loss_is_its_own_masked_cross_entropy(expert, options):
    """``loss_agent{i}`` (CESMA appendix A.2, Fig. 9) is student ``i``'s cross-entropy alone: a loop
    over the agents with the same masks (filled steps, the dead agent's none, the label weights of
    per-agent datasets or of moves) gives it; the team loss is their mean weighted by each agent's
    total label weight."""
    torch.manual_seed(0)
    spec = validate_env(TASK, {})[0]
    learner = DAggerLearner(spec, dagger_config(expert, "agent.hidden_dim=16", *options), torch.device("cpu"))
    assert learner.update_scalars == ("accuracy", "loss_agent0", "loss_agent1", "loss_agent2")
    b, t, n, a = 6, spec.episode_limit, spec.n_agents, spec.n_actions
    batch = Episodes.empty(b, spec, torch.device("cpu"))
    batch.obs.normal_()
    batch.avail_actions.fill_(True)
    batch.avail_actions[3:, :, 1] = False  # agent 1 dead in the last episodes: the no-op alone
    batch.avail_actions[3:, :, 1, 0] = True
    batch.actions.copy_(torch.randint(a, (b, t, n)))
    batch.filled[:, :15] = 1.0
    batch.filled[0, 8:] = 0.0
    terms = learner(batch, torch.tensor(0.0))
    labels = expert_labels(learner.expert, batch)
    logits = learner.actor.sequence(batch.obs, batch.actions, batch.avail_actions)[:, :-1].detach()
    label_weight = learner.label_weight(labels)
    totals, sums = [], []
    for i in range(n):
        log_pi = masked_log_policy(logits[:, :, i], batch.avail_actions[:, :-1, i], 1.0)
        nll = -log_pi.gather(-1, labels[:, :, i].unsqueeze(-1)).squeeze(-1)  # [B, T]
        weight = batch.filled.clone()
        if i == 1:
            weight[3:] = 0.0
        if label_weight is not None:
            weight = weight * label_weight[:, :, i]
        torch.testing.assert_close(terms.logged[f"loss_agent{i}"], (nll * weight).sum() / weight.sum())
        totals.append(weight.sum())
        sums.append(terms.logged[f"loss_agent{i}"] * weight.sum())
    torch.testing.assert_close(terms.loss.detach(), torch.stack(sums).sum() / torch.stack(totals).sum())


def test_a_wrong_expert_file_fails_before_training(expert, tmp_path):
    """No expert, a corrupt file, an expert of another task: each raises a PolicyFileError (status
    2) naming the problem when the trainer builds the learner, before any step; and another algo
    rejects dagger.expert."""
    with pytest.raises(PolicyFileError, match="dagger.expert"):
        Trainer.solo(load_config(["config/algos/dagger.yaml"], SETTINGS), tmp_path / "none")
    corrupt = tmp_path / "corrupt.zip"
    data = bytearray(expert.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(PolicyFileError, match="corrupt.zip"):
        Trainer.solo(dagger_config(corrupt), tmp_path / "corrupt")
    other = load_config(["config/algos/dagger.yaml"], [*SETTINGS, "env.name=jaxmpe:simple_spread_6",
                                                       f"dagger.expert={expert}"])
    with pytest.raises(PolicyFileError, match="n_agents=3 \\(the env has 6\\)"):
        Trainer.solo(other, tmp_path / "other")
    assert not (tmp_path / "other" / "metrics.parquet").exists()
    with pytest.raises(ConfigError, match="dagger.expert"):
        load_config(["config/algos/qmix.yaml"], [*SETTINGS, f"dagger.expert={expert}"])


def test_the_students_learn_the_experts_policy_on_simple_spread(expert, tmp_path):
    """From the students' own episodes and the expert's labels alone, in 3000 env steps (one
    update each), the greedy students agree with the expert on most labelled steps and score
    closer to the expert's return than to a uniformly random policy's."""
    config = dagger_config(expert, "agent.hidden_dim=64", "learner.lr=0.003", "run.t_max=3000",
                           "run.eval_interval=1500", "run.eval_episodes=64", "learner.buffer_size=200")
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path))
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    policy = load_policy(expert)
    env = make(TASK, 64, 1)
    runner = EpisodeRunner([env], StackedModules([torch.nn.ModuleDict({"policy": policy.controller})]), "policy",
                           "stepwise")
    _, by_expert = runner.run([0.0], [True], [torch.Generator()], explore=False)
    _, uniform = runner.run([1.0], [True], [torch.Generator().manual_seed(0)])
    expert_return, uniform_return = float(by_expert.returns.mean()), float(uniform.returns.mean())
    assert expert_return > uniform_return + 10
    assert metrics["accuracy"].iloc[-1] > 0.8  # a uniform policy's agreement is 1/5
    assert final["test_return_mean"] > (expert_return + uniform_return) / 2


def test_a_pack_of_two_equals_the_runs_alone(expert, tmp_path):
    """Two DAgger runs (other seeds) packed equal the two runs alone, exactly (CPU), with the
    stepwise rollout (the fused JAX MPE rollout of a pack of two rounds the physics differently
    from one run's, ~1e-6 in the returns, whatever the learner)."""
    def member(seed: int, root: str) -> PackMember:
        config = dagger_config(expert, "agent.hidden_dim=16", f"run.seed={seed}", "run.t_max=400",
                               "run.eval_interval=200", "run.eval_episodes=8", "learner.buffer_size=64",
                               "run.rollout=stepwise")
        return PackMember(config, tmp_path / root / str(seed))

    train_pack([member(0, "pack"), member(1, "pack")])
    metrics = pd.read_parquet(tmp_path / "pack" / "0" / "metrics.parquet")  # each student's loss (Fig. 9)
    losses = metrics[[f"loss_agent{i}" for i in range(3)]].iloc[-1]
    assert losses.notna().all() and (losses > 0).all()
    for seed in (0, 1):
        train_pack([member(seed, "alone")])
        assert_packed_run_equals_alone(tmp_path / "pack" / str(seed), tmp_path / "alone" / str(seed))


@pytest.mark.parametrize("rollout", ["fused", "stepwise"])
def test_greedy_students_act_on_their_most_probable_available_action(expert, rollout):
    """With ``dagger.acting: greedy`` the students' training episodes (the fused JAX rollout or the
    stepwise loop, exploring) take each student's most probable available action; sampling students
    (the default) do not always."""
    spec = validate_env(TASK, {})[0]
    for acting, greedy in (("greedy", True), ("sample", False)):
        torch.manual_seed(0)
        learner = DAggerLearner(spec, dagger_config(expert, "agent.hidden_dim=16", f"dagger.acting={acting}"),
                                torch.device("cpu"))
        runner = EpisodeRunner([make(TASK, 8, 0)], StackedModules([learner]), "actor", rollout)
        collected, _ = runner.run([0.0], [True], [torch.Generator().manual_seed(0)])
        batch = Episodes(**{name: value[0] for name, value in collected.tensors().items()})
        logits = learner.actor.sequence(batch.obs, batch.actions, batch.avail_actions)[:, :-1]
        most_probable = logits.masked_fill(~batch.avail_actions[:, :-1], float("-inf")).argmax(-1)
        assert bool((batch.actions == most_probable).all()) == greedy, acting


def test_students_decentralise_a_trained_expert_on_the_matrix_game_and_export(tmp_path):
    """An IQL expert trained briefly on matrix:monotonic and exported; DAgger's students come to
    play its greedy joint action and its payoff; the students export and load back as a policy
    file (the expert file rebuilds their learner)."""
    expert_run = load_config(["config/algos/iql.yaml"], [
        "run.device=cpu", "run.progress=false", "tracking.uri=", "env.name=matrix:monotonic", "agent.hidden_dim=16",
        "run.t_max=400", "run.eval_interval=400", "learner.batch_size=8", "run.eval_episodes=4"])
    (expert_final,) = train_pack([PackMember(expert_run, tmp_path / "expert")])
    export_policy(tmp_path / "expert", tmp_path / "expert.zip")
    config = load_config(["config/algos/dagger.yaml"], [
        "run.device=cpu", "run.progress=false", "tracking.uri=", "env.name=matrix:monotonic", "agent.hidden_dim=16",
        f"dagger.expert={tmp_path / 'expert.zip'}", "learner.lr=0.01", "run.t_max=300", "run.eval_interval=300",
        "run.eval_episodes=4", "learner.buffer_size=300"])
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path / "students"))
    first = pd.read_parquet(tmp_path / "students" / "metrics.parquet")["test_return_mean"].iloc[0]
    assert first != expert_final["test_return_mean"]  # the untrained students play another joint action
    assert final["greedy_joint_action"] == expert_final["greedy_joint_action"]
    assert final["test_return_mean"] == expert_final["test_return_mean"]
    export_policy(tmp_path / "students", tmp_path / "students.zip")
    policy = load_policy(tmp_path / "students.zip")
    assert policy.manifest.method == "dagger"
    assert evaluate_policy(policy, make("matrix:monotonic", 4, 0), 4)[0] == final["test_return_mean"]
