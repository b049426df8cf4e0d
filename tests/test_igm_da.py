"""IGM-DA: the imitation loss of Proposition 5, who acts and who is evaluated, and a training smoke run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_config_errors import ALGOS, SCALES, SCHEMAS, WORKFLOW
from test_dmix import _episodes
from test_workflow import REPO
from training_checks import network, optimised_names, run_and_check_training

from marlrepro.checkpoint import load_checkpoint
from marlrepro.config import AgentConfig, load_config
from marlrepro.config_schema import load_checked
from marlrepro.controller import AgentController, DistributionalController
from marlrepro.core.optim import build_optimizer
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import validate_env
from marlrepro.errors import ConfigError
from marlrepro.experiments import Run, format_value, plan_paper, scale_from_dict
from marlrepro.learners.build import build_learner
from marlrepro.learners.igm_da import IGMDALearner, imitation_loss
from marlrepro.learners.value_decomposition import ValueDecompositionLearner
from marlrepro.nets.qplex import QPLEXMixer
from marlrepro.train import Trainer

BLIND_3M = ["env.name=smax:3m", "env.options.sight_range=0", "env.options.full_sight_obs=true"]
QUIET = ["run.device=cpu", "run.progress=false", "tracking.uri="]


def _config(*overrides: str, algo: str = "qmix"):
    return load_config([f"config/algos/{algo}.yaml"], [*BLIND_3M, *QUIET, *overrides])


def _learner(algo: str, *overrides: str):
    config = _config(*overrides, algo=algo)
    spec, _ = validate_env(config.env.name, config.env.options)
    return build_learner(spec, config, torch.device("cpu")), spec


def test_imitation_minimiser_is_the_experts_action_frequency():
    """Proposition 5: k states share one observation; the regressed q equals the mean one-hot."""
    torch.manual_seed(0)
    k, a = 10, 4
    expert_q = torch.randn(1, k, 1, a)  # k samples of the same observation, different expert states
    avail = torch.ones(1, k, 1, a, dtype=torch.bool)
    avail[0, :3, 0, 0] = False  # the expert's greedy action is masked where unavailable
    frequency = torch.nn.functional.one_hot(
        expert_q.masked_fill(~avail, float("-inf")).argmax(-1), a).float().mean(dim=(0, 1, 2))
    q = torch.zeros(a, requires_grad=True)
    optimiser = torch.optim.SGD([q], lr=0.5)
    for _ in range(300):
        optimiser.zero_grad()
        imitation_loss(q.expand(1, k, 1, a), expert_q, avail, torch.ones(1, k)).backward()
        optimiser.step()
    assert torch.allclose(q.detach(), frequency, atol=1e-4)


def test_imitation_loss_ignores_padding_and_never_trains_the_expert():
    expert_q = torch.randn(2, 5, 3, 6, requires_grad=True)
    learner_q = torch.randn(2, 5, 3, 6, requires_grad=True)
    avail = torch.ones(2, 5, 3, 6, dtype=torch.bool)
    mask = torch.ones(2, 5)
    mask[1, 2:] = 0
    loss = imitation_loss(learner_q, expert_q, avail, mask)
    loss.backward()
    assert expert_q.grad is None
    assert learner_q.grad[1, 2:].abs().sum() == 0 and learner_q.grad[0].abs().sum() > 0
    changed = learner_q.detach().clone()
    changed[1, 2:] += 100.0
    assert torch.isclose(imitation_loss(changed, expert_q, avail, mask), loss)


@pytest.mark.parametrize(("mode", "acting"), [("dagger", "learners"), ("bc", "experts")])
def test_dagger_lets_the_learners_act_and_bc_the_experts(mode, acting, tmp_path):
    config = _config(f"imitation.mode={mode}", "agent.obs_avail_actions=true")
    spec, _ = validate_env(config.env.name, config.env.options)
    learner = build_learner(spec, config, torch.device("cpu"))
    assert isinstance(learner, IGMDALearner)
    assert learner.controller.source == "full_obs" and learner.learners.source == "obs"
    # the learners see the mask (authors' basic_mac_avalible_action), the experts never (basic_mac_all)
    assert learner.learners.config.obs_avail_actions and not learner.controller.config.obs_avail_actions
    assert learner.learners.agent.fc1.in_features == spec.obs_dim + 2 * spec.n_actions + spec.n_agents
    assert learner.controller.agent.fc1.in_features == spec.full_obs_dim + spec.n_actions + spec.n_agents
    expected = learner.learners if acting == "learners" else learner.controller
    assert learner.acting_controller is expected and learner.eval_controller is learner.learners
    # the trainer's optimiser updates the learners and the mixer (besides the experts)
    optimised = optimised_names(Trainer.solo(config, tmp_path))
    assert {f"learners.{name}" for name, _ in learner.learners.named_parameters()} <= optimised
    assert {f"mixer.{name}" for name, _ in learner.mixer.named_parameters()} <= optimised
    assert {network(name) for name in optimised} == {"controller", "mixer", "learners"}


def test_plain_value_decomposition_is_unchanged():
    config = _config()
    spec, _ = validate_env(config.env.name, config.env.options)
    learner = build_learner(spec, config, torch.device("cpu"))
    assert type(learner) is ValueDecompositionLearner
    assert learner.acting_controller is learner.eval_controller is learner.controller


def test_expert_full_obs_needs_the_env_to_provide_it():
    with pytest.raises(ConfigError, match="full_sight_obs"):
        load_config([], ["env.name=smax:3m", "imitation.mode=dagger"])
    with pytest.raises(ConfigError, match="expert_input=state"):
        load_config([], ["env.name=mpe:simple_spread", "imitation.mode=dagger"])
    load_config([], ["env.name=mpe:simple_spread", "imitation.mode=dagger", "imitation.expert_input=state"])


def test_igm_da_training_smoke_run(tmp_path):
    config = _config("imitation.mode=dagger", "learner.optimizer=rmsprop", "learner.batch_size=4",
                     "env.num_envs=4", "env.options.episode_limit=30", "run.t_max=600",
                     "run.eval_interval=300", "run.eval_episodes=4", "run.checkpoint_interval=2")
    run_and_check_training(Trainer.solo(config, tmp_path))  # the experts and the learners trained
    # a resumed run restores the learners too
    assert any(network(name) == "learners" for name in load_checkpoint(tmp_path)["learner"])
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["test_expert_won_mean"].between(0, 1).all()  # the experts' target_mean
    values = pd.read_parquet(tmp_path / "action_values.parquet")
    assert set(values["agents"]) == {"learner", "expert"} and values["value"].notna().all()


# ------------------------------------------------------------------ the authors' settings (issue 10)
def _planned_runs(paper: str, scale: str) -> list[Run]:
    """One run (first map, first seed) per experiment and algorithm of ``config/<paper>.yaml``, as
    the workflow plans them at ``scale``."""
    at = scale_from_dict(scale, load_checked(REPO / f"config/scales/{scale}.yaml", SCHEMAS / "scale.schema.yaml"))
    data = load_checked(REPO / f"config/{paper}.yaml", SCHEMAS / "paper.schema.yaml")
    experiments = plan_paper(paper, data, at, {**WORKFLOW, "scale": scale}, SCALES, ALGOS)
    firsts = {}
    for experiment in experiments.values():
        for run in experiment.runs():
            firsts.setdefault((run.experiment, run.algo), run)
    return list(firsts.values())


def _built(run: Run):
    """(config, spec, learner) of ``run``, loaded as ``marlrepro train`` loads it."""
    overrides = [f"{key}={format_value(value)}" for key, value in run.train_settings().items()]
    config = load_config([REPO / f"config/algos/{run.algo}.yaml"], overrides)
    spec, _ = validate_env(config.env.name, config.env.options)
    return config, spec, build_learner(spec, config, torch.device("cpu"))


def test_igm_da_grid_runs_the_authors_settings():
    """In the IGM-DA grid every method's decentralised agents (the baselines' agents, the -DA
    learners) read the available actions, as the authors' basic_mac_avalible_action and its IQN
    twin; the -DA experts do not (basic_mac_all). QPLEX's attention has the authors' 3 layers and
    10 heads, and the TD term is not halved."""
    runs = _planned_runs("igm_da", "paper")
    assert {(run.experiment, run.algo) for run in runs} >= {("sight0", a) for a in ("qmix", "qplex", "dmix")}
    for run in runs:
        config, spec, learner = _built(run)
        where = f"{run.experiment}/{run.algo}"
        agents = learner.eval_controller
        assert config.agent.obs_avail_actions, where
        assert agents.agent.fc1.in_features == spec.obs_dim + 2 * spec.n_actions + spec.n_agents, where
        assert isinstance(agents, DistributionalController) == (run.algo == "dmix"), where
        if config.imitation.mode != "none":
            experts = learner.controller
            assert experts.agent.fc1.in_features == spec.full_obs_dim + spec.n_actions + spec.n_agents, where
        if isinstance(learner.mixer, QPLEXMixer):
            assert len(learner.mixer.keys) == 10, where
            assert sum(isinstance(m, torch.nn.Linear) for m in learner.mixer.action_heads[0].modules()) == 3
        assert config.learner.td_weight == 1.0, where


def test_pymarl2_reproduction_keeps_its_own_settings():
    """vd_smax_curves reproduces pymarl2: no mask in the agent input, ½ in the TD loss, Adam's eps 1e-8."""
    for run in _planned_runs("vd", "paper"):
        config, spec, learner = _built(run)
        assert not config.agent.obs_avail_actions
        assert learner.controller.agent.fc1.in_features == spec.obs_dim + spec.n_actions + spec.n_agents
        optimizer = build_optimizer(StackedModules([learner]).trainable, config.learner,
                                    torch.tensor([config.learner.lr]))
        assert config.learner.td_weight == 0.5 and optimizer.eps == 1e-8


def test_agent_input_is_ordered_as_the_authors_controller():
    """``[obs, onehot(last action), avail, onehot(agent id)]``: the authors' _build_inputs order."""
    spec, _ = validate_env("smax:3m", {})
    d, a, n = spec.obs_dim, spec.n_actions, spec.n_agents
    controller = AgentController(spec, AgentConfig(obs_avail_actions=True))
    obs = torch.randn(2, 3, n, d)
    last = torch.randint(0, a, (2, 3, n))
    avail = torch.rand(2, 3, n, a) < 0.5
    x = controller.build_inputs(obs, last, avail)
    assert x.shape[-1] == controller.agent.fc1.in_features == d + 2 * a + n
    assert torch.equal(x[..., :d], obs)
    assert torch.equal(x[..., d:d + a], torch.nn.functional.one_hot(last, a).float())
    assert torch.equal(x[..., d + a:d + 2 * a], avail.float())
    assert torch.equal(x[..., d + 2 * a:], torch.eye(n).expand(2, 3, n, n))


@pytest.mark.parametrize(("algo", "bootstrap_from"), [("qmix_da", "learners"), ("qmix_bc", "experts")])
def test_double_q_bootstrap_action_comes_from_the_agents_that_act(algo, bootstrap_from):
    """DAgger (q_learner_teach) bootstraps at the learners' greedy available action, BC
    (q_learner_teach_bijiao) at the experts' online greedy available action, both evaluated by the
    target experts and mixer: ``y = r + γ Q'_tot(s', argmax_avail selector(s'))``."""
    torch.manual_seed(0)
    learner, spec = _learner(algo, "learner.td_lambda=0")
    batch = _episodes(spec)
    batch.terminated.zero_()  # bootstrap at every step
    avail, mask = batch.avail_actions, batch.filled
    with torch.no_grad():
        target_mean = learner.loss(batch)[2]
        experts, learners, target = learner.controller, learner.learners, learner.target_controller
        expert_q = experts.sequence(experts.observe(batch), batch.actions, avail)
        learner_q = learners.sequence(batch.obs, batch.actions, avail)
        target_q = target.sequence(target.observe(batch), batch.actions, avail)

        def mean_target(selector: torch.Tensor) -> torch.Tensor:
            best = selector.masked_fill(~avail, float("-inf")).argmax(-1)
            next_tot = learner.target_mixer(target_q.gather(-1, best[..., None]).squeeze(-1), batch.state)
            y = batch.reward + 0.99 * next_tot[:, 1:, 0]
            return (y * mask).sum() / mask.sum()

        from_experts, from_learners = mean_target(expert_q), mean_target(learner_q)
    assert not torch.isclose(from_experts, from_learners, atol=1e-4)  # the choice shows on this batch
    assert torch.isclose(target_mean, from_experts if bootstrap_from == "experts" else from_learners, atol=1e-6)


def _unroll(controller: AgentController, inputs: torch.Tensor, batch) -> torch.Tensor:
    """Q [B, T+1, N, A] step by step from a zero hidden state, as pymarl's mac.forward loop."""
    hidden = controller.initial_hidden(inputs.shape[0])
    last = torch.full_like(batch.actions[:, 0], -1)
    qs = []
    for t in range(inputs.shape[1]):
        q, hidden = controller.step(inputs[:, t], last, hidden, batch.avail_actions[:, t])
        qs.append(q)
        last = batch.actions[:, t] if t < batch.actions.shape[1] else last
    return torch.stack(qs, dim=1)


def _reference_loss(learner, batch, mode: str, td_weight: float) -> torch.Tensor:
    """The loss of the authors' learners written step by step: ``w Σ_t m_t (Q_tot − y_t)² / Σ m``
    with ``y_t = r_t + γ (1 − d_t) Q'_tot(s_{t+1}, argmax_avail selector)``, plus for IGM-DA
    ``Σ_{t,i,u} m_t (q_i(u) − onehot(argmax_avail Q_i)_u)² / Σ_{t,i,u} m_t`` (q_learner_teach and
    q_learner_teach_bijiao: w = 1; pymarl2's nq_learner, no imitation: w = ½)."""
    experts, target = learner.controller, learner.target_controller
    expert_q = _unroll(experts, experts.observe(batch), batch)
    with torch.no_grad():
        target_q = _unroll(target, target.observe(batch), batch)
    selector = expert_q
    if mode != "none":
        learner_q = _unroll(learner.learners, batch.obs, batch)
        selector = learner_q if mode == "dagger" else expert_q
    avail, mask = batch.avail_actions, batch.filled
    b, steps, n = batch.actions.shape
    n_actions = avail.shape[-1]
    td, teach = torch.zeros(()), torch.zeros(())
    for t in range(steps):
        chosen = expert_q[:, t].gather(-1, batch.actions[:, t, :, None]).squeeze(-1)
        q_tot = learner.mixer(chosen[:, None], batch.state[:, t:t + 1]).view(b)
        best = selector[:, t + 1].detach().masked_fill(~avail[:, t + 1], float("-inf")).argmax(-1)
        next_q = target_q[:, t + 1].gather(-1, best[..., None]).squeeze(-1)
        next_tot = learner.target_mixer(next_q[:, None], batch.state[:, t + 1:t + 2]).view(b)
        y = batch.reward[:, t] + 0.99 * (1 - batch.terminated[:, t]) * next_tot
        td = td + (mask[:, t] * (q_tot - y.detach()) ** 2).sum()
        if mode != "none":
            greedy = expert_q[:, t].detach().masked_fill(~avail[:, t], float("-inf")).argmax(-1)
            onehot = torch.nn.functional.one_hot(greedy, n_actions).float()
            teach = teach + (mask[:, t, None, None] * (learner_q[:, t] - onehot) ** 2).sum()
    return td_weight * td / mask.sum() + teach / (mask.sum() * n * n_actions)


@pytest.mark.parametrize(("algo", "overrides", "mode", "td_weight"), [
    ("qmix", [], "none", 0.5),  # config/algos/qmix.yaml: pymarl2's nq_learner
    ("qmix", ["learner.td_weight=1", "agent.obs_avail_actions=true"], "none", 1.0),  # the authors' q_learner
    ("qmix_da", [], "dagger", 1.0),  # the authors' q_learner_teach
    ("qmix_bc", [], "bc", 1.0),  # the authors' q_learner_teach_bijiao
])  # fmt: skip
def test_loss_weights_equal_the_reference_learners(algo, overrides, mode, td_weight):
    """The TD and imitation terms, their normalisation and weights, and the gradients they send,
    equal a step-by-step implementation of the reference learner's loss (one-step targets)."""
    torch.manual_seed(1)
    learner, spec = _learner(algo, "learner.td_lambda=0", *overrides)
    batch = _episodes(spec, seed=2)
    trainable = [p for p in learner.parameters() if p.requires_grad]
    loss = learner.loss(batch)[0]
    grads = torch.autograd.grad(loss, trainable)
    reference = _reference_loss(learner, batch, mode, td_weight)
    reference_grads = torch.autograd.grad(reference, trainable)
    assert torch.isclose(loss, reference, rtol=1e-5), (loss, reference)
    for g, h in zip(grads, reference_grads, strict=True):
        assert torch.allclose(g, h, rtol=1e-4, atol=1e-6)
