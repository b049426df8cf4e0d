"""The gradient step replayed from a CUDA graph equals the eager step (GPU only).

Skipped without CUDA: the CPU suite pins the eager step (``test_pack.py``), and this file is run
on the GPU machine (``docs/validation.md``, BENCHMARKS.md section 6) with ``JAX_PLATFORMS=cuda``:
``conftest.py`` pins JAX to the CPU unless the variable is set, and the SMAX runs here need JAX
on the GPU beside torch."""

from __future__ import annotations

import json

import pytest
import torch

from marlrepro.config import load_config
from marlrepro.core.graphed import GraphedStep
from marlrepro.core.optim import StackedAdam, clip_grad_norm_per_run
from marlrepro.train import PackMember, train_pack

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


def test_graphed_steps_of_several_shapes_and_stages_equal_the_eager_step_and_leave_masked_runs_alone():
    torch.manual_seed(0)
    runs, dim = 3, 16
    weights = {mode: torch.randn(runs, dim, dim, device="cuda").requires_grad_() for mode in ("eager", "graph")}
    weights["graph"].data.copy_(weights["eager"].data)
    optimisers = {mode: StackedAdam([w], torch.full((runs,), 1e-2, device="cuda"), 1e-8)
                  for mode, w in weights.items()}

    def step_for(mode):
        def step(batch, mask, stage=None):
            w, opt = weights[mode], optimisers[mode]
            scale = 1.0 if stage is None else 2.0 + stage  # a stage is a static branch of the step
            losses = (torch.bmm(batch["x"], w).tanh() * scale - batch["y"]).pow(2).mean(dim=(1, 2))
            opt.zero_grad()
            losses.sum().backward()
            clip_grad_norm_per_run([w], 0.5)
            opt.step(mask)
            return losses.detach()
        return step

    eager, graphed = step_for("eager"), GraphedStep(step_for("graph"))
    for i in range(6):
        rows = (8, 5, 8, 5, 3, 8)[i]  # three batch lengths and, at 8, a second stage: four graphs
        stage = (None, None, 1, None, None, 1)[i]
        batch = {"x": torch.randn(runs, rows, dim, device="cuda"), "y": torch.randn(runs, rows, dim, device="cuda")}
        mask = torch.tensor([True, i % 2 == 0, False], device="cuda")
        frozen = weights["graph"][2].detach().clone()
        torch.testing.assert_close(graphed(batch, mask, stage), eager(batch, mask, stage))
        torch.testing.assert_close(weights["graph"], weights["eager"])
        assert torch.equal(weights["graph"][2], frozen)  # run 2 never updates
    assert len(graphed.graphs) == 4 and not graphed.eager
    assert optimisers["graph"].state[0]["step"].flatten().tolist() == [6.0, 3.0, 0.0]


@pytest.mark.parametrize(("algo", "extra"), [("qmix", []), ("qmix_da", []), ("dmix", []),
                                           ("mappo", ["learner.buffer_size=4", "ppo.huber_delta=1"])])
def test_a_graphed_pack_trains_as_the_eager_pack(tmp_path, algo, extra):
    """Two seeds on the GPU, with and without the graph: the same weights after a few
    updates, to float tolerance (atomic reductions make CUDA itself nondeterministic, and the
    episodes that follow drift once a greedy action flips, so the run is kept short). MAPPO's
    recipe (ValueNorm, the agent-specific state) also compares the value normaliser's statistics,
    which the graph writes back (``LossTerms.buffers``)."""
    outputs = {}
    for graph in (False, True):
        members = [PackMember(load_config([f"config/algos/{algo}.yaml"], [
            "env.name=smax:3m", "env.num_envs=4", "run.t_max=300", "run.eval_interval=100000",
            "run.eval_episodes=4", "run.device=cuda", "run.progress=false", "learner.batch_size=4",
            "learner.updates_per_rollout=3", "run.checkpoint_interval=1000", "tracking.uri=",
            f"run.seed={s}", f"run.cuda_graph={str(graph).lower()}", *extra]), tmp_path / f"{graph}" / f"s{s}")
            for s in (0, 1)]
        train_pack(members)
        outputs[graph] = [json.loads((m.run_dir / "final.json").read_text())["updates"] for m in members]
        outputs[graph, "weights"] = [torch.load(m.run_dir / "checkpoint/state.pt", weights_only=False)["learner"]
                                     for m in members]
    assert outputs[False] == outputs[True] and min(outputs[True]) > 0
    for eager, graphed in zip(outputs[False, "weights"], outputs[True, "weights"]):
        for name, value in eager.items():
            torch.testing.assert_close(graphed[name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("algo", ["me_qmix", "fop", "hasac"])
def test_the_stochastic_losses_capture_and_train_as_graphs(tmp_path, algo):
    """ME-IGM's, FOP's and HASAC's losses draw random numbers (their bootstrap actions), FOP's
    reads the run's t_env and HASAC's its update phase and stage: all are captured (no eager fallback) and
    train, losses finite, weights moving. Their draws differ between graph replays and eager
    calls, so they are not compared bitwise."""
    from training_checks import run_and_check_training

    from marlrepro.train import Trainer

    members = [PackMember(load_config([f"config/algos/{algo}.yaml"], [
        "env.name=smax:3m", "env.num_envs=4", "run.t_max=400", "run.eval_interval=200", "run.eval_episodes=4",
        "run.device=cuda", "run.progress=false", "learner.batch_size=4", "run.checkpoint_interval=1000",
        "tracking.uri=", f"run.seed={s}"]), tmp_path / f"s{s}") for s in (0, 1)]
    trainer = Trainer(members)
    run_and_check_training(trainer)
    assert trainer._step.graphs and not trainer._step.eager
    # HASAC's two update stages (the critic's phase, an agent's) are graphs of their own
    assert {key[0] for key in trainer._step.graphs} == ({0, 1} if algo == "hasac" else {None})


@pytest.mark.parametrize("algo", ["maddpg", "ddpg", "ddpg_central"])
def test_the_ddpg_family_captures_and_trains_as_the_eager_pack(tmp_path, algo):
    """MADDPG, independent DDPG and CESMA's centralised expert on the JAX MPE: both update stages
    (the critics', the actors') are captured (no eager fallback), and their hashed Gumbel noise is
    a function of each run's key, so the graphed pack ends with the eager pack's weights, to float
    tolerance. (A key increment copied from the host once broke the capture: every DDPG-family
    pack then updated eagerly.)"""
    from marlrepro.train import Trainer

    weights = {}
    for graph in (False, True):
        members = [PackMember(load_config([f"config/algos/{algo}.yaml"], [
            "env.name=jaxmpe:simple_spread", "env.options.shared_reward=true", "env.options.max_cycles=10",
            "env.num_envs=4", "learner.batch_size=4", "learner.learning_starts=8", "agent.hidden_dim=16",
            "learner.updates_per_env_step=0.05", "run.t_max=400", "run.eval_interval=100000", "run.eval_episodes=4",
            "run.device=cuda", "run.progress=false", "run.checkpoint_interval=1000", "tracking.uri=",
            f"run.seed={s}", f"run.cuda_graph={str(graph).lower()}"]), tmp_path / f"{graph}" / f"s{s}")
            for s in (0, 1)]
        trainer = Trainer(members)
        trainer.run()
        if graph:
            assert {key[0] for key in trainer._step.graphs} == {0, 1} and not trainer._step.eager
        weights[graph] = [torch.load(m.run_dir / "checkpoint/state.pt", weights_only=False)["learner"] for m in members]
    for eager, graphed in zip(weights[False], weights[True]):
        for name, value in eager.items():
            torch.testing.assert_close(graphed[name], value, rtol=1e-4, atol=1e-5, msg=name)
