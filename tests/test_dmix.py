"""DMIX in the learner: acting values, the distributional loss, the rollout fallback, checkpoints,
IGM-DA around it, and training smoke runs."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from training_checks import TRAINED, network, optimised_names, run_and_check_training

from marlrepro.buffer import Episodes
from marlrepro.checkpoint import load_checkpoint
from marlrepro.config import load_config
from marlrepro.controller import AgentController, DistributionalController
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import validate_env
from marlrepro.errors import ConfigError
from marlrepro.learners.build import build_learner
from marlrepro.learners.distributional import DistributionalLearner
from marlrepro.learners.igm_da import DistributionalIGMDALearner
from marlrepro.nets.dmix import DMixer
from marlrepro.nets.iqn_agent import IQNRNNAgent
from marlrepro.runner import EpisodeRunner
from marlrepro.train import Trainer, train

BLIND_3M = ["env.name=smax:3m", "env.options.sight_range=0", "env.options.full_sight_obs=true"]
QUIET = ["run.device=cpu", "run.progress=false", "tracking.uri="]
TINY = ["learner.batch_size=4", "env.num_envs=4", "env.options.episode_limit=30", "run.t_max=400",
        "run.eval_interval=200", "run.eval_episodes=4", "run.checkpoint_interval=2"]


def _config(algo: str, *overrides: str):
    return load_config([f"config/algos/{algo}.yaml"], [*BLIND_3M, *QUIET, *overrides])


def _learner(algo: str, *overrides: str):
    config = _config(algo, *overrides)
    spec, _ = validate_env(config.env.name, config.env.options)
    return build_learner(spec, config, torch.device("cpu")), spec


def test_config_builds_dmix_and_validates_its_settings():
    learner, _ = _learner("dmix")
    assert type(learner) is DistributionalLearner
    assert isinstance(learner.controller, DistributionalController)
    assert isinstance(learner.controller.agent, IQNRNNAgent) and isinstance(learner.mixer, DMixer)
    cfg = learner.controller.config
    assert (cfg.n_quantiles, cfg.n_target_quantiles, cfg.n_greedy_quantiles, cfg.quantile_embed_dim) == (8, 8, 32, 64)
    assert not learner.config.double_q and learner.config.optimizer == "adam"
    with pytest.raises(ConfigError, match="td_lambda=0"):
        _config("dmix", "learner.td_lambda=0.6")
    assert _config("dmix", "run.rollout=fused").run.rollout == "fused"  # the IQN agent has a JAX twin
    with pytest.raises(ConfigError, match="agent.n_quantiles: must be >= 1"):
        _config("dmix", "agent.n_quantiles=0")


def test_dmix_da_has_distributional_experts_and_q_vector_learners(tmp_path):
    learner, _ = _learner("dmix_da")
    assert type(learner) is DistributionalIGMDALearner
    assert isinstance(learner.controller, DistributionalController) and learner.controller.source == "full_obs"
    assert type(learner.learners) is AgentController and learner.learners.config.obs_avail_actions
    assert learner.acting_controller is learner.eval_controller is learner.learners
    assert learner.config.double_q and learner.config.optimizer == "rmsprop"
    # the trainer's optimiser updates the experts, their mixer and the learners, and nothing else
    trainer = Trainer.solo(_config("dmix_da"), tmp_path)
    learners = trainer.learners.template
    expected = {f"{name}.{p}" for name in TRAINED if hasattr(learners, name)
                for p, _ in getattr(learners, name).named_parameters()}
    assert {network(name) for name in expected} == {"controller", "mixer", "learners"}
    assert optimised_names(trainer) == expected


def test_acting_values_are_the_mean_over_sampled_quantiles():
    learner, spec = _learner("dmix", "agent.n_greedy_quantiles=16")
    controller = learner.controller
    b, n = 3, spec.n_agents
    obs = torch.randn(b, n, spec.obs_dim)
    last = torch.randint(-1, spec.n_actions, (b, n))
    hidden = torch.randn(1, b * n, controller.config.hidden_dim)
    with torch.no_grad():
        torch.manual_seed(1)
        q, q_hidden = controller.step(obs, last, hidden)
        torch.manual_seed(1)
        taus = torch.rand(b, 16)  # one set of N̂ fractions per environment
        z, z_hidden = controller.quantiles(obs.unsqueeze(1), last.unsqueeze(1), hidden, taus.unsqueeze(1))
    assert q.shape == (b, n, spec.n_actions) and z.shape == (b, 1, n, 16, spec.n_actions)
    assert torch.allclose(q, z[:, 0].mean(dim=-2), atol=1e-5)
    assert torch.allclose(q_hidden, z_hidden, atol=1e-5)
    # the quantiles at the acting fractions, agent by agent, are the agent network's own
    rows = controller.step_rows(obs, last, None)
    direct, _ = controller.agent.step(rows, hidden, taus)
    assert torch.allclose(z[:, 0], direct.view(b, n, 16, -1), atol=1e-5)


def test_runner_fuses_the_iqn_agent_on_jax_backends():
    learner, spec = _learner("dmix")
    env = SimpleNamespace(spec=spec, num_envs=2, device=torch.device("cpu"))
    env.fused_rollout = lambda controller, pack, num_envs: SimpleNamespace(controller=controller, pack=pack, env=env)
    learners = StackedModules([learner])
    fused = EpisodeRunner([env], learners, "controller", "auto")._fused
    assert (fused.controller, fused.pack) == (learners.template.controller, [env])
    assert isinstance(fused.controller.agent, IQNRNNAgent)
    assert EpisodeRunner([env], learners, "controller", "stepwise")._fused is None


def _episodes(spec, b: int = 4, steps: int = 7, seed: int = 0) -> Episodes:
    """Random episodes with real steps ``t < length[b]``; padding after."""
    g = torch.Generator().manual_seed(seed)
    n, a = spec.n_agents, spec.n_actions
    avail = torch.rand(b, steps + 1, n, a, generator=g) < 0.6
    avail[..., 0] = True
    actions = torch.multinomial(avail[:, :-1].reshape(-1, a).float(), 1, generator=g).view(b, steps, n)
    lengths = torch.tensor([steps, 3, 5, 1])
    filled = (torch.arange(steps) < lengths[:, None]).float()
    terminated = torch.zeros(b, steps)
    terminated[torch.arange(b), lengths - 1] = 1.0
    return Episodes(
        obs=torch.randn(b, steps + 1, n, spec.obs_dim, generator=g),
        state=torch.randn(b, steps + 1, spec.state_dim, generator=g), avail_actions=avail,
        actions=actions, reward=torch.randn(b, steps, generator=g) * filled, terminated=terminated,
        filled=filled, full_obs=torch.randn(b, steps + 1, n, spec.full_obs_dim, generator=g),
    )


def _loss_and_grads(learner, batch: Episodes) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(5)  # the same fractions τ, τ' for both batches
    learner.zero_grad()
    loss, _, _ = learner.loss(batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in learner.parameters() if p.requires_grad]


@pytest.mark.parametrize("algo", ["dmix", "dmix_da"])
def test_loss_ignores_padded_steps(algo):
    """Whatever the padding holds (after each episode's final observation), the loss and its
    gradients are the same."""
    torch.manual_seed(0)
    learner, spec = _learner(algo, "learner.double_q=true")
    batch = _episodes(spec)
    garbled = Episodes(**{k: v.clone() for k, v in vars(batch).items()})
    pad = batch.filled == 0  # [B, T]
    after = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)  # steps past the final observation
    garbled.obs[after] = torch.randn_like(garbled.obs[after]) * 50
    garbled.full_obs[after] = torch.randn_like(garbled.full_obs[after]) * 50
    garbled.state[after] = torch.randn_like(garbled.state[after]) * 50
    garbled.avail_actions[after] = True
    garbled.reward[pad] = 1e3
    garbled.actions[pad] = spec.n_actions - 1
    loss, grads = _loss_and_grads(learner, batch)
    garbled_loss, garbled_grads = _loss_and_grads(learner, garbled)
    assert torch.isfinite(loss) and loss > 0
    assert torch.allclose(loss, garbled_loss, rtol=1e-5)
    for g, h in zip(grads, garbled_grads, strict=True):
        assert torch.allclose(g, h, rtol=1e-4, atol=1e-6)


def test_target_samples_bootstrap_the_greedy_mean_action():
    """Targets are r + γ(1 − d) Z'_tot(τ') at the target's greedy action by its mean over τ'."""
    torch.manual_seed(2)
    learner, spec = _learner("dmix")
    batch = _episodes(spec, seed=3)
    batch.terminated.zero_()  # bootstrap everywhere
    torch.manual_seed(7)
    outputs = learner.agent_outputs(batch)
    _, _, target_mean = learner.td_loss(batch, outputs, learner.expected_values(outputs).detach())
    torch.manual_seed(7)
    learner.agent_outputs(batch)  # replay the RNG draws of the online fractions
    target = learner.target_controller
    taus = torch.rand(*batch.avail_actions.shape[:2], 8)
    with torch.no_grad():
        z = target.quantile_sequence(target.observe(batch), batch.actions, batch.avail_actions, taus)
        best = z.mean(-2).masked_fill(~batch.avail_actions, float("-inf")).argmax(-1)
        chosen = z.gather(-1, best[..., None, None].expand(*z.shape[:-1], 1)).squeeze(-1)
        next_tot = learner.target_mixer(chosen, batch.state)[:, 1:]
        expected = batch.reward.unsqueeze(-1) + 0.99 * next_tot
    mask = batch.filled
    assert torch.allclose(target_mean, (expected.mean(-1) * mask).sum() / mask.sum(), atol=1e-5)


def test_checkpoint_resume_keeps_the_iqn_agent(tmp_path):
    overrides = ["env.name=matrix:monotonic", *QUIET, "run.t_max=160", "run.eval_interval=80",
                 "run.eval_episodes=8", "learner.batch_size=16", "run.checkpoint_interval=5"]
    config = load_config(["config/algos/dmix.yaml"], overrides)
    train(config, tmp_path)
    saved = load_checkpoint(tmp_path)["learner"]
    assert "controller.agent.phi.weight" in saved and "mixer.mean_mixer.hyper_w1.0.weight" in saved
    resumed = Trainer.solo(config, tmp_path).learners.module_for(0)
    assert isinstance(resumed.controller.agent, IQNRNNAgent)
    assert isinstance(resumed.target_controller.agent, IQNRNNAgent)
    for name, value in resumed.controller.state_dict().items():
        assert torch.equal(value, saved[f"controller.{name}"]), name
    for name, value in resumed.target_mixer.state_dict().items():
        assert torch.equal(value, saved[f"target_mixer.{name}"]), name


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dmix", "dmix_da"])
def test_training_smoke_run_at_sight_zero(algo, tmp_path):
    (final,) = run_and_check_training(Trainer.solo(_config(algo, *TINY), tmp_path))
    assert final["algo"] == algo
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["loss"].iloc[1:].notna().all() and (metrics["loss"].iloc[1:] > 0).all()
    if algo == "dmix_da":
        assert any(network(name) == "learners" for name in load_checkpoint(tmp_path)["learner"])
        assert metrics["test_expert_won_mean"].between(0, 1).all()  # the DMIX experts, stepped from Python
        values = pd.read_parquet(tmp_path / "action_values.parquet")
        assert set(values["agents"]) == {"learner", "expert"} and values["value"].notna().all()
