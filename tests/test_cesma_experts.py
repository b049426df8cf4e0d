"""CESMA's DQN experts (appendix E.3, E.4) and DAgger's options for them (issue 15 items 2 and 3): the
joint-action table and its availability, the centralised VDN's sum, E.4's weighted cross-entropy,
Fig. 8's per-agent datasets, learning on matrix games with known optima, and the experts' road to
DAgger through a policy file."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from episode_batches import greedy_actions_by_mode, masked_cases_batch
from run_outputs import assert_packed_run_equals_alone
from training_checks import run_and_check_training

from marlrepro.buffer import Episodes
from marlrepro.config import load_config
from marlrepro.controller import JointActionController, JointQController, joint_action_table
from marlrepro.envs import make
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError
from marlrepro.learners.bc import imitation_loss
from marlrepro.learners.build import build_learner
from marlrepro.learners.dagger import DAggerLearner, expert_labels
from marlrepro.learners.joint_dqn import JointActionLearner
from marlrepro.learners.max_entropy import masked_log_policy
from marlrepro.learners.value_decomposition import ValueDecompositionLearner
from marlrepro.policy_file import export_policy, load_policy
from marlrepro.runner import EpisodeRunner
from marlrepro.core.stacked import StackedModules
from marlrepro.train import PackMember, Trainer, train, train_pack

CPU = torch.device("cpu")
SPEC = EnvSpec("test", n_agents=3, obs_dim=4, state_dim=12, n_actions=5, episode_limit=6)
QUICK = ["run.device=cpu", "run.progress=false", "tracking.uri="]
# a 2-agent game whose optimum (2, 2) moves both agents; the best joint action that moves one agent
# at most is (0, 2), worth 4 (the one-at-a-time expert's optimum); a uniform policy earns 1/9 · 0 = 0
PAYOFF = "[[0,1,4],[2,-5,-5],[-1,-5,10]]"


def _config(algo: str, *extra: str):
    return load_config([f"config/algos/{algo}.yaml"], [*QUICK, *extra])


# ------------------------------------------------------------------------------ the joint actions
@pytest.mark.parametrize("n, a", [(1, 4), (2, 3), (3, 5)])
def test_the_joint_action_index_and_the_agents_actions_are_a_bijection(n, a):
    """Every joint action appears once in the exponential table, output ``k`` is the base-|A|
    number of its agents' actions, and ``encode`` inverts the table (and the table ``encode``)."""
    spec = EnvSpec("t", n_agents=n, obs_dim=2, state_dim=2 * n, n_actions=a, episode_limit=1)
    table = joint_action_table(n, a, one_at_a_time=False)
    assert table.shape == (a ** n, n)
    assert {tuple(row) for row in table.tolist()} == set(itertools.product(range(a), repeat=n))
    digits = a ** torch.arange(n - 1, -1, -1)
    assert torch.equal((table * digits).sum(-1), torch.arange(a ** n))
    controller = JointActionController(spec, load_config([], []).agent, table)
    assert torch.equal(controller.encode(table), torch.arange(a ** n))
    actions = torch.randint(a, (64, n), generator=torch.Generator().manual_seed(n))
    assert torch.equal(table[controller.encode(actions)], actions)


def test_the_one_at_a_time_table_moves_one_agent_at_most():
    """1 + N(|A| − 1) distinct joint actions: all no-ops first, then each (agent, non-no-op action)
    exactly once, the other agents at the no-op; ``encode`` inverts it."""
    n, a = 6, 5
    table = joint_action_table(n, a, one_at_a_time=True)
    assert table.shape == (1 + n * (a - 1), n)
    assert table[0].eq(0).all() and (table != 0).sum(-1)[1:].eq(1).all()
    moves = {(int(row.nonzero()[0]), int(row.max())) for row in table[1:]}
    assert moves == set(itertools.product(range(n), range(1, a)))
    spec = EnvSpec("t", n_agents=n, obs_dim=2, state_dim=2 * n, n_actions=a, episode_limit=1)
    controller = JointActionController(spec, load_config([], []).agent, table)
    assert torch.equal(controller.encode(table), torch.arange(table.shape[0]))


@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_joint_availability_masks_exactly_the_joint_actions_with_an_unavailable_component(one_at_a_time):
    table = joint_action_table(SPEC.n_agents, SPEC.n_actions, one_at_a_time)
    controller = JointActionController(SPEC, load_config([], []).agent, table)
    avail = torch.rand(32, SPEC.n_agents, SPEC.n_actions, generator=torch.Generator().manual_seed(1)) < 0.7
    joint = controller.joint_avail(avail)
    for b in range(avail.shape[0]):
        for k, row in enumerate(table.tolist()):
            assert bool(joint[b, k]) == all(bool(avail[b, i, u]) for i, u in enumerate(row))
    # the greedy joint action is the best available one, and exploring picks available ones only
    q = torch.randn(32, 1, table.shape[0])
    avail[:, :, 0] = True  # the all-no-op joint action stays available
    greedy = controller.greedy(q, avail)
    best = q.squeeze(1).masked_fill(~controller.joint_avail(avail), float("-inf")).max(-1).values
    torch.testing.assert_close(q.squeeze(1).gather(-1, controller.encode(greedy)[:, None]).squeeze(-1), best)

    class Step:
        avail_actions = avail

    explored = controller.choose_actions(q, Step(), 1.0, torch.Generator().manual_seed(0))
    assert bool(avail.gather(-1, explored.unsqueeze(-1)).all())


# ------------------------------------------------------------------------------ the centralised VDN
def test_the_centralised_vdn_sums_per_agent_heads_of_the_joint_observation():
    """``agent.network: joint_mlp``: each agent's Q head reads every agent's observation (change
    agent 2's observation and agent 0's head moves), and VDN's Q_tot is the sum of the heads'
    values of the actions taken."""
    torch.manual_seed(0)
    config = _config("central_vdn", "env.name=matrix:me_igm")
    learner = build_learner(SPEC, config, CPU)
    assert isinstance(learner, ValueDecompositionLearner) and isinstance(learner.controller, JointQController)
    batch = masked_cases_batch(SPEC, 0)
    q = learner.controller.sequence(batch.obs, batch.actions, batch.avail_actions)
    assert q.shape == (*batch.obs.shape[:3], SPEC.n_actions)
    moved = batch.obs.clone()
    moved[..., 2, :] += 1.0
    q_moved = learner.controller.sequence(moved, batch.actions, batch.avail_actions)
    assert not torch.allclose(q_moved[..., 0, :], q[..., 0, :])
    avail = batch.avail_actions[:, :-1]
    q_tot = learner.joint_value(learner.mixer, q[:, :-1], batch.actions, avail, batch.state[:, :-1])
    heads = q[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(q_tot.squeeze(-1), heads.sum(-1))


def test_the_joint_dqn_values_the_joint_action_taken():
    torch.manual_seed(0)
    learner = build_learner(SPEC, _config("joint_dqn", "env.name=matrix:me_igm"), CPU)
    assert isinstance(learner, JointActionLearner) and learner.mixer is None
    batch = masked_cases_batch(SPEC, 1)
    q = learner.controller.sequence(batch.obs, batch.actions, batch.avail_actions)  # [B, T+1, 1, 125]
    assert q.shape == (*batch.obs.shape[:2], 1, SPEC.n_actions ** SPEC.n_agents)
    value = learner.joint_value(None, q[:, :-1], batch.actions, batch.avail_actions[:, :-1], batch.state[:, :-1])
    index = (batch.actions * torch.tensor([25, 5, 1])).sum(-1)
    torch.testing.assert_close(value.squeeze(-1), q[:, :-1, 0].gather(-1, index.unsqueeze(-1)).squeeze(-1))
    assert torch.isfinite(learner(batch, torch.tensor(0.0)).loss)


# ------------------------------------------------------------------------------ DAgger's options
def _students(spec: EnvSpec, expert: Path, *extra: str) -> DAggerLearner:
    torch.manual_seed(0)
    config = _config("dagger", f"dagger.expert={expert}", "agent.hidden_dim=16", *extra)
    return DAggerLearner(spec, config, CPU)


@pytest.fixture(scope="module")
def matrix_expert(tmp_path_factory) -> Path:
    """A joint DQN trained on matrix:me_igm until its greedy joint action is the optimum (0, 0),
    exported as a policy file."""
    root = tmp_path_factory.mktemp("joint_dqn")
    final = train(_matrix_config("joint_dqn", "matrix:me_igm"), root / "run")
    assert final["greedy_joint_action"] == [0, 0] and final["test_return_mean"] == 8.0
    export_policy(root / "run", root / "expert.zip")
    return root / "expert.zip"


def _matrix_config(algo: str, env: str, *extra: str):
    """``algo``'s file on a one-step matrix game, small and fast: 32 games per rollout and an update
    after each; an expert's soft targets move faster (τ = 0.05) than the paper's long runs'."""
    expert = [] if algo == "dagger" else ["learner.target_polyak=0.05", "exploration.epsilon_anneal_steps=1000"]
    return _config(algo, f"env.name={env}", "env.num_envs=32", "learner.batch_size=32", "learner.buffer_size=512",
                   "learner.learning_starts=0", "agent.hidden_dim=32", "learner.lr=0.01",
                   "learner.updates_per_env_step=null", "run.t_max=2000", "run.eval_interval=1000",
                   "run.eval_episodes=8", *expert, *extra)


def test_the_weighted_cross_entropy_equals_a_loop(matrix_expert):
    """``dagger.move_weight: w``: Σ weight · (−log π_i(label)) / Σ weight over the counted labels
    (filled steps, live agents), weight w for a label other than the no-op and 1 for the no-op."""
    spec = validate_env("matrix:me_igm", {})[0]
    learner = _students(spec, matrix_expert, "dagger.move_weight=5.0")
    g = torch.Generator().manual_seed(3)
    b = 16
    batch = Episodes.empty(b, spec, CPU)
    batch.obs.normal_(generator=g)
    batch.avail_actions[:] = True
    batch.actions.copy_(torch.randint(spec.n_actions, batch.actions.shape, generator=g))
    batch.filled[:, 0] = 1.0
    batch.filled[3] = 0.0
    labels = torch.randint(spec.n_actions, (b, 1, spec.n_agents), generator=g)
    logits = torch.randn(b, 2, spec.n_agents, spec.n_actions, generator=g)  # the students' outputs
    terms = imitation_loss(logits, labels, batch, spec, learner.label_weight(labels))
    log_pi = masked_log_policy(logits[:, :-1], batch.avail_actions[:, :-1], 1.0)
    total, weights = 0.0, 0.0
    for e in range(b):
        for i in range(spec.n_agents):
            if batch.filled[e, 0] == 0:
                continue
            w = 5.0 if labels[e, 0, i] != 0 else 1.0
            total += w * -float(log_pi[e, 0, i, labels[e, 0, i]])
            weights += w
    assert abs(float(terms.loss) - total / weights) < 1e-5
    plain = _students(spec, matrix_expert)  # the same students (same seed) without the weights
    assert plain.label_weight(labels) is None
    assert float(imitation_loss(logits, labels, batch, spec).loss) != pytest.approx(total / weights)


def test_per_agent_datasets_give_each_student_its_own_batch(matrix_expert, tmp_path):
    """``dagger.dataset: per_agent``: the trainer draws ``N × batch_size`` distinct episodes, and
    student ``i`` learns from episodes ``k ≡ i (mod N)`` alone: its loss gradient is that of its own
    cross-entropy on those episodes, and the other students' episodes do not reach it."""
    def trainer(dataset: str) -> Trainer:
        config = _matrix_config("dagger", "matrix:me_igm", f"dagger.expert={matrix_expert}",
                                f"dagger.dataset={dataset}", "learner.batch_size=8", "agent.hidden_dim=16")
        return Trainer.solo(config, tmp_path / dataset)

    spec = validate_env("matrix:me_igm", {})[0]
    shared, per_agent = trainer("shared"), trainer("per_agent")
    with pytest.raises(ConfigError, match="learner.buffer_size"):  # a ring that can never hold a batch per agent
        Trainer.solo(_matrix_config("dagger", "matrix:me_igm", f"dagger.expert={matrix_expert}",
                                    "dagger.dataset=per_agent", "learner.batch_size=8", "learner.buffer_size=8"),
                     tmp_path / "small")
    for t in (shared, per_agent):
        episodes, _ = t.runner.run([0.0], [True], [t.runs[0].generator])
        t.buffer.insert(episodes, [0])
        episodes, _ = t.runner.run([0.0], [True], [t.runs[0].generator])
        t.buffer.insert(episodes, [0])
    assert shared.sample_inputs([True])["actions"].shape[1] == 8
    drawn = per_agent.sample_inputs([True])
    assert drawn["actions"].shape[1] == 8 * spec.n_agents
    learner = _students(spec, matrix_expert, "dagger.dataset=per_agent")
    n = spec.n_agents
    batch = Episodes(**{name: value[0] for name, value in drawn.items() if name in Episodes.__dataclass_fields__})
    loss = learner(batch, torch.tensor(0.0)).loss
    labels = expert_labels(learner.expert, batch)
    logits = learner.actor.sequence(batch.obs, batch.actions, batch.avail_actions)
    log_pi = masked_log_policy(logits[:, :-1], batch.avail_actions[:, :-1], 1.0)
    by_agent = [-log_pi[i::n, :, i].gather(-1, labels[i::n, :, i, None]).mean() for i in range(n)]
    torch.testing.assert_close(loss, sum(by_agent) / n)
    changed = Episodes(**{name: value.clone() for name, value in batch.tensors().items()})
    changed.avail_actions[1::n, ..., 2] = False  # agent 1's episodes (matrix observations are constant)
    grads = []
    for episodes in (batch, changed):
        learner.zero_grad()
        learner(episodes, torch.tensor(0.0)).loss.backward()
        grads.append({name: p.grad.clone() for name, p in learner.actor.named_parameters() if p.grad is not None})
    assert grads[0]
    for name in grads[0]:  # the stacked per-agent weights: agent 0's slice does not see agent 1's episodes
        torch.testing.assert_close(grads[0][name][0], grads[1][name][0], rtol=0, atol=0)
    assert any(not torch.equal(grads[0][name][1], grads[1][name][1]) for name in grads[0])  # agent 1's does


def test_a_shared_dataset_is_todays_dagger(matrix_expert):
    """``dagger.dataset: shared`` (the default) with no weights: one batch of ``batch_size``
    episodes for every student and the loss of the plain cross-entropy, exactly."""
    spec = validate_env("matrix:me_igm", {})[0]
    learner = _students(spec, matrix_expert, "dagger.dataset=shared")
    assert learner.batch_draws == 1 and learner.label_weight(torch.zeros(2, 1, 2, dtype=torch.int64)) is None
    batch = masked_cases_batch(dataclasses.replace(spec, episode_limit=6), 2)
    logits = learner.actor.sequence(batch.obs, batch.actions, batch.avail_actions)
    today = imitation_loss(logits, expert_labels(learner.expert, batch), batch, spec)
    torch.testing.assert_close(learner(batch, torch.tensor(0.0)).loss, today.loss, rtol=0, atol=0)


# ------------------------------------------------------------------------------ learning and export
def test_the_joint_dqn_decentralises_through_a_policy_file(matrix_expert, tmp_path):
    """matrix:me_igm (the optimum 8 at (0, 0) among miscoordination penalties of −12; a uniform
    policy earns −40/9): the joint DQN expert (the fixture) plays the optimum; loaded as DAgger's
    expert it labels each agent with its part of the greedy joint action; DAgger's students come to
    play it too."""
    spec = validate_env("matrix:me_igm", {})[0]
    expert = load_policy(matrix_expert).controller
    assert isinstance(expert, JointActionController)
    config = _matrix_config("dagger", "matrix:me_igm", f"dagger.expert={matrix_expert}", "learner.batch_size=8",
                            "agent.hidden_dim=16", "run.t_max=300", "run.eval_interval=300",
                            "learner.updates_per_env_step=1.0", "env.num_envs=8", "learner.buffer_size=300")
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path / "students"))
    assert final["greedy_joint_action"] == [0, 0] and final["test_return_mean"] == 8.0
    batch = masked_cases_batch(dataclasses.replace(spec, episode_limit=6), 4)
    batch.avail_actions[:] = True
    labels = expert_labels(expert, batch)
    assert labels.eq(0).all()  # the optimum, wherever it is labelled


def test_the_centralised_vdn_exports_and_labels_on_simple_spread(tmp_path):
    """A few steps of the centralised VDN on jaxmpe:simple_spread (fused rollout: its controller's
    twin is the joint MLP's), exported, loaded as DAgger's expert: its labels are each agent's
    greedy head on the joint observation."""
    config = _config("central_vdn", "env.name=jaxmpe:simple_spread", "agent.hidden_dim=16", "run.t_max=400",
                     "run.eval_interval=400", "run.eval_episodes=8", "learner.learning_starts=8",
                     "learner.buffer_size=64", "learner.updates_per_env_step=0.02")
    train(config, tmp_path / "expert")
    export_policy(tmp_path / "expert", tmp_path / "expert.zip")
    spec = validate_env("jaxmpe:simple_spread", {})[0]
    students = _students(spec, tmp_path / "expert.zip")
    runner = EpisodeRunner([make("jaxmpe:simple_spread", 4, 0)], StackedModules([students]), "actor", "fused")
    collected, _ = runner.run([0.0], [True], [torch.Generator()])
    batch = Episodes(**{name: value[0] for name, value in collected.tensors().items()})
    labels = expert_labels(students.expert, batch)
    q = students.expert.sequence(batch.obs, batch.actions, batch.avail_actions)[:, :-1]
    assert torch.equal(labels, q.argmax(-1))
    assert float(students(batch, torch.tensor(0.0)).loss.detach()) > 0


@pytest.mark.parametrize("algo, env, greedy, payoff", [
    ("central_vdn", "matrix:monotonic", [1, 2], 5.0),  # the additive game's optimum, exactly VDN's
    ("one_at_a_time", "matrix:monotonic", [0, 2], 4.0),  # PAYOFF: the best joint action moving one agent
])
def test_the_experts_learn_their_optimum(algo, env, greedy, payoff, tmp_path):
    """Greedy after 2000 one-step episodes: the centralised VDN plays the monotonic game's optimum
    5 (a uniform policy earns 2.33); the one-at-a-time expert plays 4 on PAYOFF, the best it can
    reach (the game's 10 moves both agents; a uniform policy earns 0)."""
    extra = [f"env.options.payoff={PAYOFF}"] if algo == "one_at_a_time" else []
    final = train(_matrix_config(algo, env, *extra), tmp_path)
    assert final["greedy_joint_action"] == greedy and final["test_return_mean"] == payoff


@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_the_fused_rollout_acts_as_the_joint_action_controller(one_at_a_time):
    """The fused JAX rollout's twin of the joint-action DQN (greedy, and exploring at ε = 1) takes
    the joint actions the stepwise loop takes from the same start, and explores among its table's."""
    env = make("jaxmpe:simple_spread", 8, 0)
    torch.manual_seed(1)
    table = joint_action_table(3, env.spec.n_actions, one_at_a_time)
    controller = JointActionController(env.spec, load_config([], ["agent.hidden_dim=16"]).agent, table)
    actions, runner = greedy_actions_by_mode(env, controller)
    assert torch.equal(actions["stepwise"], actions["fused"])
    explored, _ = runner.run([1.0], [True], [torch.Generator().manual_seed(0)])
    encoded = controller.encode(explored.actions[0])
    assert torch.equal(table[encoded], explored.actions[0])  # every explored joint action is in the table
    assert encoded.unique().numel() > table.shape[0] // 2  # and they spread over it


def test_a_pack_of_joint_dqns_equals_the_runs_alone(tmp_path):
    """Two one-at-a-time experts (other seeds; soft targets, ε-greedy over joint actions from each
    run's generator) packed equal the two runs alone, exactly (CPU)."""
    def member(seed: int, root: str) -> PackMember:
        config = _matrix_config("one_at_a_time", "matrix:monotonic", f"env.options.payoff={PAYOFF}",
                                f"run.seed={seed}", "run.t_max=320", "run.eval_interval=160")
        return PackMember(config, tmp_path / root / str(seed))

    train_pack([member(0, "pack"), member(1, "pack")])
    for seed in (0, 1):
        train_pack([member(seed, "alone")])
        assert_packed_run_equals_alone(tmp_path / "pack" / str(seed), tmp_path / "alone" / str(seed))


# ------------------------------------------------------------------------------ config
def test_unknown_algos_and_misplaced_options_fail_with_the_choices():
    with pytest.raises(ConfigError, match="joint_dqn"):
        load_config([], ["algo=joint_dqnn"])
    with pytest.raises(ConfigError, match="agent.network"):
        load_config(["config/algos/ddpg_central.yaml"], ["agent.network=joint_mlp"])
    with pytest.raises(ConfigError, match="learner.target_polyak"):
        load_config(["config/algos/dagger.yaml"], ["learner.target_polyak=0.01"])
    with pytest.raises(ConfigError, match="dagger.dataset"):
        load_config(["config/algos/dagger.yaml"], ["dagger.dataset=each"])



def test_the_one_at_a_time_expert_labels_one_mover_per_step_for_weighted_students(tmp_path):
    """E.4's road on 6-agent cooperative navigation: a few steps of the one-at-a-time expert
    (its rollout stepped in Python: no JAX twin), exported, loaded by DAgger's weighted students
    (``dagger_weighted.yaml``): on the students' own episodes every step's labels move one agent
    at most, and the loss weighs the movers' labels by ``move_weight``."""
    env = "jaxmpe:simple_spread_6"
    config = _config("one_at_a_time", f"env.name={env}", "agent.hidden_dim=16", "run.t_max=200",
                     "run.eval_interval=200", "run.eval_episodes=8", "learner.learning_starts=8",
                     "learner.buffer_size=16", "learner.updates_per_env_step=0.02")
    train(config, tmp_path / "expert")
    export_policy(tmp_path / "expert", tmp_path / "expert.zip")
    spec = validate_env(env, {})[0]
    torch.manual_seed(0)
    students = DAggerLearner(spec, load_config(["config/algos/dagger_weighted.yaml"], [
        *QUICK, f"env.name={env}", f"dagger.expert={tmp_path / 'expert.zip'}", "agent.hidden_dim=16"]), CPU)
    assert students.move_weight == 5.0 and isinstance(students.expert, JointActionController)
    runner = EpisodeRunner([make(env, 4, 0)], StackedModules([students]), "actor", "fused")
    collected, _ = runner.run([0.0], [True], [torch.Generator()])
    batch = Episodes(**{name: value[0] for name, value in collected.tensors().items()})
    labels = expert_labels(students.expert, batch)
    assert (labels != 0).sum(-1).le(1).all()
    weight = students.label_weight(labels)
    torch.testing.assert_close(weight, torch.where(labels != 0, 5.0, 1.0))
    assert torch.isfinite(students(batch, torch.tensor(0.0)).loss)
