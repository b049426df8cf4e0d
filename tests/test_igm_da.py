"""IGM-DA: the imitation loss of Proposition 5, who acts and who is evaluated, and a training smoke run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from training_checks import run_and_check_training

from marlrepro.checkpoint import load_checkpoint
from marlrepro.config import load_config
from marlrepro.envs import validate_env
from marlrepro.errors import ConfigError
from marlrepro.learners.igm_da import IGMDALearner, build_learner, imitation_loss
from marlrepro.learners.value_decomposition import ValueDecompositionLearner
from marlrepro.train import Trainer

BLIND_3M = ["env.name=smax:3m", "env.options.sight_range=0", "env.options.full_sight_obs=true"]


def _config(*overrides: str):
    return load_config(["config/algos/qmix.yaml"], [*BLIND_3M, "run.device=cpu", "run.progress=false",
                                                    "tracking.uri=", *overrides])


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
def test_dagger_lets_the_learners_act_and_bc_the_experts(mode, acting):
    config = _config(f"imitation.mode={mode}")
    spec, _ = validate_env(config.env.name, config.env.options)
    learner = build_learner(spec, config, torch.device("cpu"))
    assert isinstance(learner, IGMDALearner)
    assert learner.controller.source == "full_obs" and learner.learners.source == "obs"
    assert learner.learners.config.obs_avail_actions
    expected = learner.learners if acting == "learners" else learner.controller
    assert learner.acting_controller is expected and learner.eval_controller is learner.learners
    optimised = {id(p) for group in learner.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in learner.learners.parameters()} <= optimised
    assert {id(p) for p in learner.mixer.parameters()} <= optimised


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
    run_and_check_training(Trainer(config, tmp_path))  # the experts and the learners trained
    assert "learners" in load_checkpoint(tmp_path)["learner"]  # a resumed run restores the learners too
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["test_expert_won_mean"].between(0, 1).all()  # the experts' target_mean
    values = pd.read_parquet(tmp_path / "action_values.parquet")
    assert set(values["agents"]) == {"learner", "expert"} and values["value"].notna().all()
