"""CESMA on SMAC 3s5z (§6.1, appendix E.1; issue 15 item 6): the centralised recurrent VDN expert
(``agent.network: joint_rnn``, config/algos/central_vdn_rnn.yaml) and DAgger's recurrent students
(``dagger.student: rnn``, config/algos/dagger_rnn.yaml). The expert's Q_tot is the sum of its
per-agent heads of the joint observation, with memory, within the availability masks; its JAX twin
acts as the torch network, step by step; the students' loss is a loop over time steps with the
hidden state carried and the masks applied; DAgger's labels are the loaded expert's greedy actions
step by step; the students learn an exported expert's play; a pack equals its runs alone. The tasks
are small (a 3-agent MPE, matrix games): SMAX 3s5z's compile alone would take longer than these."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from episode_batches import greedy_actions_by_mode, masked_cases_batch
from run_outputs import assert_packed_run_equals_alone
from training_checks import run_and_check_training

from marlrepro import __version__
from marlrepro.archive import sha256, tensor_bytes, write_archive
from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig, load_config, to_dict
from marlrepro.controller import AgentController, JointRNNQController, SoftmaxPolicyController
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import make
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError
from marlrepro.exploration import masked_greedy
from marlrepro.learners.build import build_learner
from marlrepro.learners.dagger import DAggerLearner, expert_labels
from marlrepro.learners.max_entropy import masked_log_policy
from marlrepro.learners.value_decomposition import ValueDecompositionLearner
from marlrepro.policy_file import FORMAT, VERSION, WEIGHTS_MEMBER, Manifest, evaluate_policy, export_policy, load_policy
from marlrepro.runner import EpisodeRunner
from marlrepro.train import PackMember, Trainer, train, train_pack

CPU = torch.device("cpu")
TASK = "jaxmpe:simple_spread"
QUICK = ["run.device=cpu", "run.progress=false", "tracking.uri="]


def _config(algo: str, *extra: str) -> TrainConfig:
    return load_config([f"config/algos/{algo}.yaml"], [*QUICK, *extra])


def _spec(task: str = TASK):
    return validate_env(task, {})[0]


def _batch(collected: Episodes) -> Episodes:
    return Episodes(**{name: value[0] for name, value in collected.tensors().items()})


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory) -> Path:
    """An untrained joint recurrent VDN expert on simple_spread (torch seed 0) as a policy file,
    its manifest as ``export-policy`` writes it (a run's config; the weights of its ``test``
    controller)."""
    torch.manual_seed(0)
    config = _config("central_vdn_rnn", f"env.name={TASK}", "agent.hidden_dim=16")
    spec = _spec()
    learner = build_learner(spec, config, CPU)
    weights = tensor_bytes(learner.eval_controllers()["test"].state_dict())
    manifest = Manifest(
        format=FORMAT, version=VERSION, marlrepro_version=__version__, method="central_vdn_rnn", algo="vdn",
        env=TASK, env_options=config.env.options, spec=dataclasses.asdict(spec), controller="test",
        controller_class="JointRNNQController", controller_source="obs", config=to_dict(config),
        run_dir="untrained", checkpoint="none", t_env=0, weights_sha256=sha256(weights))
    path = tmp_path_factory.mktemp("expert") / "expert.zip"
    write_archive(path, manifest, {WEIGHTS_MEMBER: weights})
    return path


def _students(expert: Path, *extra: str) -> DAggerLearner:
    torch.manual_seed(0)
    return DAggerLearner(_spec(), _config("dagger_rnn", f"env.name={TASK}", f"dagger.expert={expert}",
                                          "agent.hidden_dim=16", *extra), CPU)


# ------------------------------------------------------------------------------ the expert
def test_the_joint_rnn_expert_sums_per_agent_heads_of_the_joint_observation_with_memory():
    """One GRU per environment on the concatenated observations, a Q head per agent: agent 0's head
    reads agent 2's observation, at that step and (the GRU's memory) at later steps, not earlier
    ones; VDN's Q_tot is the sum of the heads' values of the actions taken."""
    torch.manual_seed(0)
    spec = _spec()
    learner = build_learner(spec, _config("central_vdn_rnn", f"env.name={TASK}", "agent.hidden_dim=16"), CPU)
    assert isinstance(learner, ValueDecompositionLearner) and isinstance(learner.controller, JointRNNQController)
    assert learner.controller.initial_hidden(4).shape == (1, 4, 16)  # one hidden state per environment
    batch = masked_cases_batch(spec, 0)
    q = learner.controller.sequence(batch.obs, batch.actions, batch.avail_actions)
    assert q.shape == (*batch.obs.shape[:3], spec.n_actions)
    moved = batch.obs.clone()
    moved[:, 3, 2] += 1.0  # agent 2's observation at step 3
    q_moved = learner.controller.sequence(moved, batch.actions, batch.avail_actions)
    torch.testing.assert_close(q_moved[:, :3], q[:, :3], rtol=0, atol=0)  # nothing reads the future
    assert not torch.allclose(q_moved[:, 3, 0], q[:, 3, 0]) and not torch.allclose(q_moved[:, 5, 0], q[:, 5, 0])
    avail = batch.avail_actions[:, :-1]
    q_tot = learner.joint_value(learner.mixer, q[:, :-1], batch.actions, avail, batch.state[:, :-1])
    heads = q[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(q_tot.squeeze(-1), heads.sum(-1))
    assert torch.isfinite(learner(batch, torch.tensor(0.0)).loss)


def test_the_joint_rnn_expert_acts_and_bootstraps_within_each_agents_available_actions():
    """Greedy and exploring actions (ε = 1) are each agent's available ones (a dead agent: its
    no-op); the Double-Q bootstrap action is the greedy available one of the online heads."""
    torch.manual_seed(0)
    spec = _spec()
    controller = build_learner(spec, _config("central_vdn_rnn", f"env.name={TASK}", "agent.hidden_dim=16"),
                               CPU).controller
    g = torch.Generator().manual_seed(1)
    avail = torch.rand(64, spec.n_agents, spec.n_actions, generator=g) < 0.4
    avail[:, :, 0] = True
    avail[:, 1] = False
    avail[:, 1, 0] = True  # agent 1 dead
    obs = torch.randn(64, spec.n_agents, spec.obs_dim, generator=g)
    q, _ = controller.step(obs, torch.full((64, spec.n_agents), -1), controller.initial_hidden(64), avail)

    class Step:
        avail_actions = avail

    for epsilon in (0.0, 1.0):
        actions = controller.choose_actions(q, Step(), epsilon, torch.Generator().manual_seed(0))
        assert bool(avail.gather(-1, actions.unsqueeze(-1)).all()) and actions[:, 1].eq(0).all()
    greedy = controller.greedy(q, avail)
    torch.testing.assert_close(q.gather(-1, greedy.unsqueeze(-1)).squeeze(-1),
                               q.masked_fill(~avail, float("-inf")).max(-1).values)


def test_the_jax_twin_equals_the_torch_network_step_by_step():
    """The fused rollout's twin (``rnn_agent_step`` on each environment's concatenated inputs, one
    hidden row per environment) gives the torch controller's Q-values at every step of a sequence,
    the hidden state carried by each."""
    import jax.numpy as jnp

    from marlrepro.envs.jax_rollout import agent_inputs, rnn_agent_step

    torch.manual_seed(0)
    spec = _spec()
    controller = build_learner(spec, _config("central_vdn_rnn", f"env.name={TASK}", "agent.hidden_dim=16",
                                             "agent.obs_last_action=true"), CPU).controller
    params = {name[len("agent."):]: jnp.asarray(p.detach().numpy()) for name, p in controller.state_dict().items()
              if name.startswith("agent.")}
    g = torch.Generator().manual_seed(2)
    b, n = 5, spec.n_agents
    hidden, h_jax = controller.initial_hidden(b), jnp.zeros((b, 16))
    last = torch.full((b, n), -1)
    avail = torch.ones(b, n, spec.n_actions, dtype=torch.bool)
    for _ in range(6):
        obs = torch.randn(b, n, spec.obs_dim, generator=g)
        with torch.no_grad():
            q, hidden = controller.step(obs, last, hidden, avail)
        inputs = agent_inputs(jnp.asarray(obs.numpy()), jnp.asarray(last.numpy()), jnp.asarray(avail.numpy()),
                              spec.n_actions, last_action=True, agent_id=False, avail_actions=False)
        q_jax, h_jax = rnn_agent_step(params, inputs.reshape(b, -1), h_jax)
        np.testing.assert_allclose(np.asarray(q_jax).reshape(b, n, -1), q.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(h_jax), hidden[0].numpy(), rtol=1e-5, atol=1e-5)
        last = q.argmax(-1)


def test_the_fused_rollout_acts_as_the_stepwise_loop(expert_file):
    """From the same start, the fused JAX rollout of the joint recurrent expert (greedy) takes the
    stepwise loop's actions at every step."""
    actions, _ = greedy_actions_by_mode(make(TASK, 8, 0), load_policy(expert_file).controller)
    assert torch.equal(actions["stepwise"], actions["fused"])


# ------------------------------------------------------------------------------ recurrent students
def test_recurrent_students_are_one_shared_gru_fed_the_unit_id(expert_file):
    """``dagger.student: rnn``: pymarl's agent, one set of weights for every student, each fed its
    id (E.1); greedy acting (``dagger_rnn.yaml``) or a sample of its softmax."""
    students = _students(expert_file)
    assert type(students.actor) is AgentController and students.actor.config.obs_agent_id
    assert isinstance(_students(expert_file, "dagger.acting=sample").actor, SoftmaxPolicyController)
    assert students.actor.agent.fc1.weight.shape[0] == 16  # one network, not one per agent
    assert isinstance(students.expert, JointRNNQController)


def test_the_labels_are_the_loaded_experts_greedy_actions_step_by_step(expert_file):
    """On the students' own episodes (fused rollout), each stored step's label is the expert's
    greedy available action when it steps through the episode with its hidden state carried and
    the students' executed actions as the last actions: labelling at update time is labelling
    online."""
    students = _students(expert_file, "agent.obs_last_action=true")
    runner = EpisodeRunner([make(TASK, 4, 0)], StackedModules([students]), "actor", "fused")
    collected, _ = runner.run([0.0], [True], [torch.Generator()])
    batch = _batch(collected)
    labels = expert_labels(students.expert, batch)
    expert = students.expert
    hidden, last = expert.initial_hidden(batch.obs.shape[0]), torch.full_like(batch.actions[:, 0], -1)
    for t in range(batch.actions.shape[1]):
        with torch.no_grad():
            q, hidden = expert.step(batch.obs[:, t], last, hidden, batch.avail_actions[:, t])
        assert torch.equal(labels[:, t], masked_greedy(q, batch.avail_actions[:, t])), t
        last = batch.actions[:, t]


def test_the_recurrent_students_loss_equals_a_loop_over_time_steps(expert_file):
    """The students' loss is the mean, over filled steps of live agents whose label is available,
    of −log softmax over the available actions at the expert's label, the students' hidden state
    carried step by step from each episode's first step (their own actions as last actions)."""
    students = _students(expert_file)
    spec = _spec()
    batch = masked_cases_batch(spec, 3)  # padding after step 2 of episode 2; agent 1 dead from step 3
    batch.avail_actions[:, :3] = torch.rand(batch.avail_actions[:, :3].shape, generator=torch.Generator().manual_seed(0)) < 0.7
    batch.avail_actions[..., 0] = True
    loss = students(batch, torch.tensor(0.0)).loss
    labels = expert_labels(students.expert, batch)
    actor = students.actor
    hidden, last = actor.initial_hidden(batch.obs.shape[0]), torch.full_like(batch.actions[:, 0], -1)
    total, count = 0.0, 0.0
    for t in range(batch.actions.shape[1]):
        with torch.no_grad():
            logits, hidden = actor.step(batch.obs[:, t], last, hidden, batch.avail_actions[:, t])
        log_pi = masked_log_policy(logits, batch.avail_actions[:, t], 1.0)
        for e in range(batch.obs.shape[0]):
            for i in range(spec.n_agents):
                avail = batch.avail_actions[e, t, i]
                dead = bool(avail[0]) and int(avail.sum()) == 1
                if batch.filled[e, t] == 0 or dead or not avail[labels[e, t, i]]:
                    continue
                total -= float(log_pi[e, i, labels[e, t, i]])
                count += 1
        last = batch.actions[:, t]
    assert count > 0
    assert float(loss.detach()) == pytest.approx(total / count, rel=1e-5)


# ------------------------------------------------------------------------------ learning, export, packs
def _matrix_config(algo: str, *extra: str) -> TrainConfig:
    """``algo``'s file on the one-step monotonic matrix game (VDN's optimum (1, 2), worth 5), small
    and fast: 32 games per rollout, an update after each; the expert's soft target moves faster
    (τ = 0.05) than the paper's long runs'."""
    expert = [] if algo.startswith("dagger") else ["learner.target_polyak=0.05", "exploration.epsilon_anneal_steps=1000"]
    return _config(algo, "env.name=matrix:monotonic", "env.num_envs=32", "learner.batch_size=32",
                   "learner.buffer_size=512", "learner.learning_starts=0", "agent.hidden_dim=32", "learner.lr=0.01",
                   "learner.updates_per_env_step=null", "run.t_max=2000", "run.eval_interval=1000",
                   "run.eval_episodes=8", *expert, *extra)


@pytest.fixture(scope="module")
def matrix_expert(tmp_path_factory) -> tuple[Path, dict]:
    """The joint recurrent VDN trained on matrix:monotonic, exported: (policy file, final summary)."""
    root = tmp_path_factory.mktemp("vdn_rnn")
    final = train(_matrix_config("central_vdn_rnn"), root / "run")
    export_policy(root / "run", root / "expert.zip")
    return root / "expert.zip", final


def test_the_expert_learns_exports_and_loads_as_dagger_s_expert(matrix_expert):
    """The joint recurrent VDN finds the monotonic game's optimum (1, 2) (a uniform policy earns
    2.33); its policy file loads as a JointRNNQController whose evaluation is the run's own, and
    DAgger's labels are its greedy joint action."""
    path, final = matrix_expert
    assert final["greedy_joint_action"] == [1, 2] and final["test_return_mean"] == 5.0
    policy = load_policy(path)
    assert isinstance(policy.controller, JointRNNQController) and policy.manifest.method == "central_vdn_rnn"
    assert evaluate_policy(policy, make("matrix:monotonic", 4, 0), 4)[0] == final["test_return_mean"]
    holder = torch.nn.ModuleDict({"policy": policy.controller})
    runner = EpisodeRunner([make("matrix:monotonic", 4, 0)], StackedModules([holder]), "policy", "stepwise")
    collected, _ = runner.run([1.0], [True], [torch.Generator().manual_seed(0)])  # uniform play
    batch = _batch(collected)
    assert not bool((batch.actions == torch.tensor([1, 2])).all())
    assert torch.equal(expert_labels(policy.controller, batch), torch.tensor([1, 2]).expand_as(batch.actions))


def test_recurrent_students_imitate_the_exported_expert(matrix_expert, tmp_path):
    """From their own greedy play and the expert's labels alone, in 300 games, the recurrent students
    play the expert's greedy joint action and earn its payoff exactly (untrained, they play another
    one); their agreement with the labels, averaged over the updates since the previous evaluation,
    ends above 0.9 (a uniform policy's: 1/3)."""
    path, expert = matrix_expert
    config = _matrix_config("dagger_rnn", f"dagger.expert={path}", "learner.batch_size=8", "agent.hidden_dim=16",
                            "run.t_max=300", "run.eval_interval=300", "learner.updates_per_env_step=1.0",
                            "env.num_envs=8", "learner.buffer_size=300")
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path))
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["test_return_mean"].iloc[0] != expert["test_return_mean"]
    assert final["greedy_joint_action"] == expert["greedy_joint_action"]
    assert final["test_return_mean"] == expert["test_return_mean"]
    assert metrics["accuracy"].iloc[-1] > 0.9


def test_a_pack_of_two_recurrent_student_runs_equals_the_runs_alone(matrix_expert, tmp_path):
    """Two runs of recurrent students (other seeds) packed equal the two runs alone, exactly (CPU)."""
    path, _ = matrix_expert

    def member(seed: int, root: str) -> PackMember:
        config = _matrix_config("dagger_rnn", f"dagger.expert={path}", "learner.batch_size=8", "agent.hidden_dim=16",
                                f"run.seed={seed}", "run.t_max=160", "run.eval_interval=80",
                                "learner.updates_per_env_step=1.0", "env.num_envs=8", "learner.buffer_size=160")
        return PackMember(config, tmp_path / root / str(seed))

    train_pack([member(0, "pack"), member(1, "pack")])
    for seed in (0, 1):
        train_pack([member(seed, "alone")])
        assert_packed_run_equals_alone(tmp_path / "pack" / str(seed), tmp_path / "alone" / str(seed))


# ------------------------------------------------------------------------------ E.1's weight decay
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_weight_decay_steps_as_torchs_optimisers(optimizer):
    """``learner.weight_decay`` (E.1: 1e-4 for the expert and the students): each run of a stacked
    optimiser steps as torch's own optimiser with that ``weight_decay``, over steps with other
    gradients; a masked run keeps its parameters."""
    from marlrepro.core.optim import build_optimizer

    config = _config("central_vdn_rnn", f"learner.optimizer={optimizer}", "learner.weight_decay=0.01",
                     "learner.lr=0.05")
    g = torch.Generator().manual_seed(0)
    stacked = torch.randn(2, 3, 4, generator=g)
    alone = [stacked[r].clone().requires_grad_(True) for r in range(2)]
    stacked.requires_grad_(True)
    optim = build_optimizer([stacked], config.learner, torch.full((2,), 0.05))
    references = [torch.optim.Adam([p], lr=0.05, eps=config.learner.optim_eps, weight_decay=0.01)
                  if optimizer == "adam" else
                  torch.optim.RMSprop([p], lr=0.05, alpha=config.learner.optim_alpha, eps=config.learner.optim_eps,
                                      weight_decay=0.01) for p in alone]
    undecayed = stacked[0].detach().clone().requires_grad_(True)  # torch's optimiser without the decay
    plain = (torch.optim.Adam([undecayed], lr=0.05, eps=config.learner.optim_eps) if optimizer == "adam" else
             torch.optim.RMSprop([undecayed], lr=0.05, alpha=config.learner.optim_alpha, eps=config.learner.optim_eps))
    for _ in range(4):
        grad = torch.randn(2, 3, 4, generator=g)
        stacked.grad = grad.clone()
        optim.step(torch.tensor([True, True]))
        for r, (p, reference) in enumerate(zip(alone, references, strict=True)):
            p.grad = grad[r].clone()
            reference.step()
            torch.testing.assert_close(stacked[r].detach(), p.detach(), rtol=1e-5, atol=1e-6)  # float32 rounding
        undecayed.grad = grad[0].clone()
        plain.step()
    assert (stacked[0].detach() - undecayed.detach()).abs().max() > 1e-4  # the decay is far above the tolerance
    before = stacked.detach().clone()
    stacked.grad = torch.zeros_like(stacked)  # weight decay alone moves a run that steps
    optim.step(torch.tensor([False, True]))
    assert torch.equal(stacked[0].detach(), before[0]) and not torch.equal(stacked[1].detach(), before[1])


# ------------------------------------------------------------------------------ config
def test_bad_settings_fail_naming_the_field_and_the_choices():
    with pytest.raises(ConfigError, match="agent.network.*joint_rnn"):
        load_config(["config/algos/central_vdn_rnn.yaml"], ["agent.network=joint_gru"])
    with pytest.raises(ConfigError, match="agent.network: 'joint_rnn'.*iql, vdn, qmix"):
        load_config(["config/algos/central_vdn_rnn.yaml"], ["algo=qplex"])
    with pytest.raises(ConfigError, match="dagger.student.*rnn"):
        load_config(["config/algos/dagger_rnn.yaml"], ["dagger.student=gru"])
    with pytest.raises(ConfigError, match="dagger.student: recurrent students.*mlp, rnn"):
        load_config(["config/algos/dagger_comm.yaml"], ["dagger.student=rnn"])
    with pytest.raises(ConfigError, match="learner.weight_decay: must be >= 0"):
        load_config(["config/algos/dagger_rnn.yaml"], ["learner.weight_decay=-0.1"])
