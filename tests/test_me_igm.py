"""ME-IGM's learner (§5, Algorithm 1) wired into the training core: the softmax acting policy, the
temperature's own optimiser group, the three ``max_entropy`` modes and their configuration."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from marlrepro.buffer import Episodes
from marlrepro.config import AgentConfig, MixerConfig, load_config
from marlrepro.controller import SoftmaxPolicyController
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.learners.me_igm import MaxEntropyLearner
from marlrepro.nets.opt import OrderPreservingTransform
from marlrepro.train import PackMember, Trainer, train, train_pack

SPEC = EnvSpec(name="t", n_agents=3, n_actions=5, obs_dim=4, state_dim=6, episode_limit=7)


def _matrix_config(*extra: str):
    return load_config(["config/algos/qmix.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=4", "learner.batch_size=8", "learner.td_lambda=0.0",
        "run.t_max=120", "run.eval_interval=60", "run.eval_episodes=4", "run.device=cpu", "run.progress=false",
        "tracking.uri=", "max_entropy.mode=opt", *extra])


def _controller(alpha: float) -> SoftmaxPolicyController:
    torch.manual_seed(0)
    transform = OrderPreservingTransform(SPEC.n_agents, SPEC.state_dim, MixerConfig())
    for p in transform.parameters():
        p.data.normal_(0, 1.0)  # far from initialisation
    return SoftmaxPolicyController(SPEC, AgentConfig(), transform, alpha)


def _step(batch: int) -> tuple[EnvBatch, torch.Tensor]:
    avail = torch.rand(batch, SPEC.n_agents, SPEC.n_actions) < 0.6
    avail[..., 0] = True  # at least one available action
    zeros = torch.zeros(batch, dtype=torch.bool)
    step = EnvBatch(torch.randn(batch, SPEC.n_agents, SPEC.obs_dim), torch.randn(batch, SPEC.state_dim) * 2,
                    avail, torch.zeros(batch), zeros, zeros, zeros, None)
    return step, torch.randn(batch, SPEC.n_agents, SPEC.n_actions) * 3


def test_exploring_samples_the_softmax_policy_over_available_actions_and_evaluation_is_greedy_on_q():
    controller = _controller(alpha=2.0)
    step, q = _step(4)
    generator = torch.Generator().manual_seed(1)
    draws = torch.stack([controller.choose_actions(q, step, 0.0, generator) for _ in range(4000)])  # [D, B, N]
    assert step.avail_actions.gather(-1, draws.permute(1, 2, 0)).all(), "an unavailable action was sampled"
    counts = torch.nn.functional.one_hot(draws, SPEC.n_actions).float().mean(dim=0)
    expected = controller.log_policy(q, step.state, step.avail_actions).exp()
    torch.testing.assert_close(counts, expected, atol=0.04, rtol=0)
    greedy = controller.choose_actions(q, step, 0.0, generator, explore=False)
    assert torch.equal(greedy, q.masked_fill(~step.avail_actions, float("-inf")).argmax(dim=-1))


def test_the_policys_most_probable_action_is_the_greedy_action_of_the_raw_values():
    """The transform preserves order, so the local greedy action (decentralised execution) is the
    joint policy's most probable one, in every state (IGM between the policies and Q_tot)."""
    controller = _controller(alpha=0.5)
    for _ in range(5):
        step, q = _step(256)
        probs = controller.log_policy(q, step.state, step.avail_actions).exp()
        greedy = q.masked_fill(~step.avail_actions, float("-inf")).argmax(dim=-1)
        assert torch.equal(probs.argmax(dim=-1), greedy)


def _batch(learner: MaxEntropyLearner, episodes: int = 6) -> Episodes:
    torch.manual_seed(3)
    batch = Episodes.empty(episodes, SPEC, torch.device("cpu"))
    batch.obs.normal_()
    batch.state.normal_()
    batch.avail_actions.fill_(True)
    batch.actions.random_(0, SPEC.n_actions)
    batch.reward.normal_()
    batch.filled[:, :5] = 1.0
    batch.terminated[:, 4] = 1.0
    return batch


def _learner(mode: str, alpha: float, *extra: str) -> MaxEntropyLearner:
    config = load_config([], [f"max_entropy.mode={mode}", f"max_entropy.alpha_init={alpha}", *extra])
    torch.manual_seed(2)
    return MaxEntropyLearner(SPEC, config, torch.device("cpu"))


@pytest.mark.parametrize(("alpha", "sign"), [(50.0, 1.0), (1e-4, -1.0)])
def test_the_temperature_gradient_lowers_alpha_above_the_target_entropy_and_raises_it_below(alpha, sign):
    """At a high temperature the policies are near uniform (joint entropy 3 log 5 ≈ 4.8 nats, above
    the target 3 × 0.24): the loss's gradient pushes log α down; near zero, up."""
    learner = _learner("opt", alpha)
    learner.loss(_batch(learner))[0].backward()
    assert torch.sign(learner.controller.log_alpha.grad) == sign


@pytest.mark.parametrize(("mode", "mixer_input", "opt_only"), [
    ("opt", "transformed", ("hyper_w5", "hyper_b5")),  # f alone: g learns from the TD loss
    ("mlp", "transformed", ("hyper_w5", "hyper_b5")),
    ("opt", "local", ("hyper_",)),  # the whole transformation: the mixer reads the raw values
])
def test_the_opt_loss_alone_trains_its_part_of_the_transformation(mode, mixer_input, opt_only):
    """The parameters named by ``opt_only`` get gradient, and only from the OPT loss: with the OPT
    term's transformation cut out of the loss, they get none; the rest of the transformation
    (``g`` when the mixer mixes it) still learns from the TD loss."""
    learner = _learner(mode, 0.5, f"max_entropy.mixer_input={mixer_input}")
    batch = _batch(learner)
    learner.loss(batch)[0].backward()
    params = dict(learner.controller.transform.named_parameters())
    ours = [p for name, p in params.items() if name.startswith(opt_only)]
    rest = [p for name, p in params.items() if not name.startswith(opt_only)]
    assert ours and all(p.grad is not None and p.grad.abs().sum() > 0 for p in ours)
    learner.zero_grad()
    learner.controller.transform.outer = lambda x, states: x.detach() * 0  # the OPT term now has no f
    learner.loss(batch)[0].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in ours)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rest)


def test_the_td_loss_weighs_samples_away_from_the_policy_by_the_configured_weight(monkeypatch):
    """``max_entropy.away_td_weight``: 1 is the plain TD loss (the weights all 1); the code's 0.5
    changes the loss, and it does so only through :func:`away_from_policy_weights`."""
    from marlrepro.learners import me_igm

    def loss(weight: float, plain: bool) -> torch.Tensor:
        learner = _learner("opt", 0.5, f"max_entropy.away_td_weight={weight}")
        if plain:
            monkeypatch.setattr(me_igm, "away_from_policy_weights", lambda td, opt, w: torch.ones_like(td))
        value = learner.loss(_batch(learner))[0]
        monkeypatch.undo()
        return value

    assert loss(1.0, plain=False) == loss(1.0, plain=True)
    assert loss(0.5, plain=False) != loss(0.5, plain=True)


def test_the_entropy_ablation_has_no_transform_and_its_policy_is_the_softmax_of_q():
    learner = _learner("entropy", 0.7)
    assert learner.controller.transform is None
    step, q = _step(8)
    expected = torch.log_softmax((q / 0.7).masked_fill(~step.avail_actions, -1e9), dim=-1)
    torch.testing.assert_close(learner.controller.log_policy(q, step.state, step.avail_actions), expected)


def test_the_temperature_has_its_own_learning_rate_and_is_not_clipped(tmp_path):
    trainer = Trainer([PackMember(_matrix_config("max_entropy.temperature_lr=0.3", "learner.lr=0.001"), tmp_path)])
    names = [name for name, p in trainer.learners.params.items() if p.requires_grad]
    lrs = dict(zip(names, trainer.optimizer.lrs, strict=True))
    assert lrs.pop("controller.log_alpha").item() == pytest.approx(0.3)
    assert all(lr.item() == pytest.approx(0.001) for lr in lrs.values())
    alpha = trainer.learners.params["controller.log_alpha"]
    (clipped,) = trainer._clip_sets  # one set, clipped together: every parameter but the temperature
    assert all(p is not alpha for p in clipped) and len(clipped) == len(names) - 1


@pytest.mark.parametrize(("mode", "algo", "name"), [
    ("opt", "qmix", "me_qmix"), ("entropy", "qmix", "qmix_entropy"), ("mlp", "qmix", "me_qmix_mlp"),
    ("opt", "qplex", "me_qplex"), ("opt", "vdn", "me_vdn"),
])
def test_each_mode_trains_on_the_matrix_game_and_reports_its_policies(tmp_path, mode, algo, name):
    final = train(_matrix_config(f"max_entropy.mode={mode}", f"algo={algo}"), tmp_path)
    assert final["algo"] == name
    saved = json.loads((tmp_path / "final.json").read_text())
    probs = torch.tensor(saved["policy"])
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(dim=-1), torch.ones(2))
    assert saved["most_probable_joint_action"] == probs.argmax(dim=-1).tolist()
    assert saved["most_probable_joint_action"] == saved["greedy_joint_action"]  # order preserved
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")  # the learned temperature, per evaluation
    assert metrics["temperature"].iloc[0] == pytest.approx(0.03) and (metrics["temperature"] >= 1e-4).all()
    assert metrics["temperature"].nunique() > 1  # it learns


@pytest.mark.parametrize(("overrides", "message"), [
    (["algo=dmix", "learner.td_lambda=0"], "valid choices: vdn, qmix, qplex"),
    (["imitation.mode=dagger", "imitation.expert_input=state"], "cannot be combined with imitation.mode"),
    (["max_entropy.alpha_init=0"], "max_entropy.alpha_init"),
    (["max_entropy.mode=soft"], "max_entropy.mode"),
    (["max_entropy.away_td_weight=0"], r"max_entropy.away_td_weight: a weight in \(0, 1\]"),
    (["max_entropy.away_td_weight=1.5"], r"max_entropy.away_td_weight: a weight in \(0, 1\]"),
])
def test_bad_max_entropy_settings_fail_before_any_compute(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config([], ["max_entropy.mode=opt", *overrides])


def test_me_qmix_finds_the_optimal_joint_action_of_the_non_monotonic_game_in_most_seeds(tmp_path):
    """ME-IGM Table 1: ME-QMIX's most probable joint action is (A, A), with ``Q_tot(A, A)`` near
    its payoff of 8 and both policies almost certain of A, where QMIX's monotone fit never gets
    there (``tests/test_learning.py``). The released code's runner settings
    (``config/algos/me_qmix.yaml``: 4 envs, batches of 128 episodes), as ``table1_me_qmix``. It
    depends on the seed: 4 of seeds 0-4 reach it in this pack (docs/validation.md); the test asks
    for a majority, a margin for other CPUs' rounding."""
    members = [PackMember(load_config(["config/algos/me_qmix.yaml"], [
        "env.name=matrix:me_igm", "learner.td_lambda=0.0", "max_entropy.opt_hypernet_layers=2", "run.t_max=1000",
        "run.eval_interval=500", "run.eval_episodes=4", "run.device=cpu", "run.progress=false", "tracking.uri=",
        f"run.seed={seed}"]), tmp_path / f"s{seed}") for seed in range(5)]
    finals = train_pack(members)
    optimal = [f for f in finals if f["most_probable_joint_action"] == [0, 0]]
    assert len(optimal) >= 3, [f["most_probable_joint_action"] for f in finals]
    for final in optimal:
        assert abs(final["joint_q"][0][0] - 8.0) < 1.5
        assert min(policy[0] for policy in final["policy"]) > 0.9


def test_an_me_qmix_pack_resumed_after_a_crash_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """The temperature, its optimiser state, the transformation and the softmax policies' random
    draws (acting and the loss's bootstrap samples) resume exactly: outputs equal, bit for bit."""
    from run_outputs import assert_crashed_pack_resumes_exactly

    def pack(name: str) -> list[PackMember]:
        return [PackMember(_matrix_config("run.t_max=200", "run.eval_interval=80", "run.checkpoint_interval=5",
                                          f"run.seed={seed}"), tmp_path / name / f"seed{seed}") for seed in (0, 1)]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path)


def test_a_pack_may_sweep_the_temperature_learning_rate_and_the_target_entropy(tmp_path):
    """Fig. 6's scans as one pack: each run keeps its own temperature learning rate and target
    entropy. Two runs of one seed, one batch: their entropies are equal, so the difference of their
    temperature gradients is exactly the difference of their targets."""
    members = [PackMember(_matrix_config(f"max_entropy.temperature_lr={lr}",
                                         f"max_entropy.target_entropy_per_agent={target}"), tmp_path / f"r{i}")
               for i, (lr, target) in enumerate([(0.3, 0.24), (0.01, 0.5)])]
    trainer = Trainer(members)
    names = [name for name, p in trainer.learners.params.items() if p.requires_grad]
    lrs = dict(zip(names, trainer.optimizer.lrs, strict=True))["controller.log_alpha"]
    torch.testing.assert_close(lrs, torch.tensor([0.3, 0.01]))
    targets = trainer.learners.buffers["target_entropy"]
    torch.testing.assert_close(targets, torch.tensor([0.48, 1.0]))  # × 2 agents
    generator = torch.Generator().manual_seed(0)
    while not all(trainer.buffer.can_sample(8)):
        episodes, _ = trainer.runner.run([0.0, 0.0], [True, True], [generator, generator])
        trainer.buffer.insert(episodes, [0, 1])
    batch = trainer.buffer.sample(8, [torch.Generator().manual_seed(1)] * 2, [True, True])
    trainer._losses(trainer.loss_inputs(batch))[0].sum().backward()
    grad = trainer.learners.params["controller.log_alpha"].grad
    torch.testing.assert_close(grad[0] - grad[1], targets[1] - targets[0])
