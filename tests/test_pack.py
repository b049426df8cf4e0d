"""Packed training: R runs with stacked weights in one process equal the same runs alone."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from run_outputs import assert_packed_run_equals_alone

from marlrepro.config import load_config
from marlrepro.core.optim import StackedAdam, StackedRMSprop, clip_grad_norm_per_run
from marlrepro.errors import ConfigError
from marlrepro.train import PackMember, Trainer, train_pack

WALL_CLOCK = ("wall_time_s", "env_steps_per_s", "pack_size")


def _config(algo: str, seed: int, *extra: str):
    return load_config([f"config/algos/{algo}.yaml"], [
        "env.name=smax:3m", "env.num_envs=4", "run.t_max=1200", "run.eval_interval=400", "run.eval_episodes=8",
        "run.device=cpu", "run.progress=false", "learner.batch_size=8", "learner.updates_per_rollout=2",
        "learner.target_update_interval=12", "run.checkpoint_interval=5", "tracking.uri=", f"run.seed={seed}",
        *extra,
    ])


def _outputs(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    metrics = pd.read_parquet(run_dir / "metrics.parquet").drop(columns="wall_time_s")
    final = {k: v for k, v in json.loads((run_dir / "final.json").read_text()).items() if k not in WALL_CLOCK}
    return metrics, final


def _train_pack_and_alone(root: Path, algo: str, seeds=(0, 1, 2), extra: tuple[str, ...] = ()) -> Path:
    """``seeds`` of ``algo`` trained as one pack (``root/pack/seed<s>``) and each alone
    (``root/alone/seed<s>``), with the ``extra`` settings; returns ``root``."""
    train_pack([PackMember(_config(algo, s, *extra), root / "pack" / f"seed{s}") for s in seeds])
    for s in seeds:
        train_pack([PackMember(_config(algo, s, *extra), root / "alone" / f"seed{s}")])
    return root


@pytest.fixture(scope="module")
def qmix_runs(tmp_path_factory) -> Path:
    """The QMIX runs of seeds 0-2 (:func:`_config`), packed and alone, trained once for this module:
    the pack is the uninterrupted reference of the resume tests, the runs alone that of the
    diverging pack."""
    return _train_pack_and_alone(tmp_path_factory.mktemp("qmix_runs"), "qmix")


@pytest.mark.parametrize("algo", ["qmix", "qmix_da"])
def test_a_packed_run_equals_the_same_run_alone(request, tmp_path, algo):
    """Three seeds packed in one process produce, run by run, exactly the metrics, final summary
    and final weights of the three runs trained alone (CPU); qmix-DA evaluates its learners and
    experts each in one wide rollout (``run.eval_at_once``)."""
    seeds = [0, 1, 2]
    root = request.getfixturevalue("qmix_runs") if algo == "qmix" else \
        _train_pack_and_alone(tmp_path, algo, seeds, ("run.eval_at_once=true",))
    for s in seeds:
        assert_packed_run_equals_alone(root / "pack" / f"seed{s}", root / "alone" / f"seed{s}")
    # the seeds really differ: packing did not make the runs copies of each other
    finals = [_outputs(root / "pack" / f"seed{s}")[0]["loss"].tolist() for s in seeds]
    assert finals[0] != finals[1] != finals[2]


@pytest.mark.parametrize(("at_once", "width", "rollouts"), [(False, 4, 2), (True, 8, 1)])
def test_an_evaluation_at_once_is_one_rollout_of_all_its_episodes(tmp_path, at_once, width, rollouts):
    """``run.eval_at_once``: the 8 evaluation episodes of each run come from one fused rollout of 8
    environments instead of two of the 4 training ones; training still steps 4 per run."""
    trainer = Trainer([PackMember(_config("qmix", s, f"run.eval_at_once={str(at_once).lower()}"), tmp_path / str(s))
                       for s in (0, 1)])
    controller = trainer.eval_policies["test"]
    runner = trainer.eval_runners[controller]
    assert (runner.width, trainer.runner.width) == (width, 4)
    collected = []
    run = runner.run

    def counted(*args, **kwargs):
        episodes, stats = run(*args, **kwargs)
        collected.append(stats)
        return episodes, stats

    runner.run = counted
    results = trainer.evaluate([0, 1], controller)
    assert len(collected) == rollouts
    assert all(stats.lengths.shape == (2, width) for stats in collected)
    lengths = torch.cat([stats.lengths for stats in collected], dim=1)
    assert bool((lengths > 0).all())  # every episode of both runs was played
    won = torch.cat([stats.won for stats in collected], dim=1).float().mean(dim=1)
    assert [results[r][1] for r in (0, 1)] == pytest.approx(won.tolist())


def test_a_stepwise_rollout_evaluates_with_the_training_runner_even_at_once(tmp_path):
    """``run.eval_at_once`` widens only fused rollouts: a stepwise one evaluates ``num_envs`` at a
    time with the training runner itself, not a second runner of its own storage."""
    trainer = Trainer([PackMember(_config("qmix", 0, "run.eval_at_once=true", "run.rollout=stepwise"), tmp_path)])
    assert not trainer.runner.fused
    assert trainer.eval_runners[trainer.eval_policies["test"]] is trainer.runner


def test_pack_rejects_runs_that_differ_in_more_than_seed_and_lr(tmp_path):
    members = [PackMember(_config("qmix", 0), tmp_path / "a"),
               PackMember(_config("qmix", 1, "learner.gamma=0.9"), tmp_path / "b")]
    with pytest.raises(ConfigError, match="differs from .* in learner.gamma"):
        Trainer(members)
    with pytest.raises(ConfigError, match="share a run directory"):
        Trainer([PackMember(_config("qmix", 0), tmp_path / "a"), PackMember(_config("qmix", 1), tmp_path / "a")])


@pytest.mark.parametrize(("stacked", "reference", "kwargs"), [
    (StackedAdam, torch.optim.Adam, {"eps": 1e-8}),
    (StackedRMSprop, torch.optim.RMSprop, {"alpha": 0.99, "eps": 1e-5}),
])
def test_stacked_optimisers_step_each_run_as_torch_does_and_masked_runs_not_at_all(stacked, reference, kwargs):
    torch.manual_seed(0)
    weights = torch.randn(3, 4, 5)
    lrs = torch.tensor([1e-2, 5e-3, 1e-3])
    packed = weights.clone().requires_grad_(True)
    optimiser = stacked([packed], lrs, **kwargs)
    alone = [weights[r].clone().requires_grad_(True) for r in range(3)]
    references = [reference([alone[r]], lr=float(lrs[r]), **kwargs) for r in range(3)]
    masks = [[True, True, True], [True, False, True], [False, True, True]]
    for mask in masks:
        grads = torch.randn(3, 4, 5)
        packed.grad = grads.clone()
        optimiser.step(torch.tensor(mask))
        for r in range(3):
            if mask[r]:
                alone[r].grad = grads[r].clone()
                references[r].step()
    for r in range(3):
        torch.testing.assert_close(packed.detach()[r], alone[r].detach(), rtol=1e-6, atol=1e-7)


def test_gradient_clipping_is_per_run():
    grads = torch.tensor([[3.0, 4.0], [0.3, 0.4]])  # norms 5 and 0.5
    p = torch.zeros(2, 2, requires_grad=True)
    p.grad = grads.clone()
    norms = clip_grad_norm_per_run([p], max_norm=1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5]))
    torch.testing.assert_close(p.grad[0].norm(), torch.tensor(1.0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.grad[1], grads[1])  # under the threshold: untouched


def test_host_buffer_samples_what_the_device_buffer_samples(tmp_path):
    """``learner.buffer_on_host``: the same episodes stored, the same batches drawn."""
    from marlrepro.buffer import EpisodeBuffer, Episodes
    from marlrepro.envs.base import EnvSpec

    spec = EnvSpec(name="t", n_agents=2, n_actions=3, obs_dim=4, state_dim=5, episode_limit=6)
    episodes = Episodes.empty(2 * 4, spec, torch.device("cpu"))
    for value in episodes.tensors().values():
        value.copy_(torch.randint(0, 2, value.shape).to(value.dtype))
    stacked = Episodes(**{k: v.view(2, 4, *v.shape[1:]) for k, v in episodes.tensors().items()})
    batches = []
    for on_host in (False, True):
        buffer = EpisodeBuffer(2, 5, spec, torch.device("cpu"), on_host=on_host)
        buffer.insert(stacked, [0, 1])
        buffer.insert(stacked, [1])
        generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
        batches.append(buffer.sample(3, generators, [True, True]))
    for name, value in batches[0].tensors().items():
        assert torch.equal(value, getattr(batches[1], name)), name


def _pack(tmp_path: Path, name: str, seeds=(0, 1, 2), per_seed: dict | None = None) -> list[PackMember]:
    """QMIX runs of ``seeds`` under ``tmp_path/name``; ``per_seed``: extra overrides by seed."""
    return [PackMember(_config("qmix", s, *(per_seed or {}).get(s, ())), tmp_path / name / f"seed{s}")
            for s in seeds]


@pytest.mark.parametrize("stop", ["sigterm", "crash"])
def test_a_pack_resumed_after_a_stop_equals_an_uninterrupted_pack(tmp_path, monkeypatch, qmix_runs, stop):
    """SIGTERM: every run checkpoints at the rollout boundary. A crash (as SIGKILL, in process): the
    runs resume from their last periodic checkpoints. Either way every run's outputs equal those of
    the uninterrupted pack (``qmix_runs``: the same seeds and config), exactly."""
    from run_outputs import assert_same_outputs

    from marlrepro.train import Interrupted

    train_step, calls = Trainer._train_step, []

    def train_step_then_stop(self, *args):
        train_step(self, *args)
        calls.append(1)
        if len(calls) == 7:
            if stop == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("killed")

    monkeypatch.setattr(Trainer, "_train_step", train_step_then_stop)
    with pytest.raises(Interrupted if stop == "sigterm" else RuntimeError):
        train_pack(_pack(tmp_path, "resumed"))
    monkeypatch.undo()
    resumed = Trainer(_pack(tmp_path, "resumed"))
    assert all(0 < run.progress.t_env < run.config.run.t_max for run in resumed.runs)
    resumed.run()
    for s in (0, 1, 2):
        assert_same_outputs(tmp_path / "resumed" / f"seed{s}", qmix_runs / "pack" / f"seed{s}")


def test_a_diverging_run_stops_alone(tmp_path, qmix_runs):
    """A run whose weights become NaN (here: a NaN learning rate) stops with diverged.json and
    no final.json; the other runs of its pack finish exactly as they would alone (``qmix_runs``),
    and the pack then fails naming the diverged run."""
    from marlrepro.train import Diverged

    with pytest.raises(Diverged, match="seed1"):
        train_pack(_pack(tmp_path, "pack", per_seed={1: ["learner.lr=.nan"]}))
    diverged = tmp_path / "pack" / "seed1"
    assert (diverged / "diverged.json").is_file() and not (diverged / "final.json").exists()
    for s in (0, 2):
        packed_metrics, packed_final = _outputs(tmp_path / "pack" / f"seed{s}")
        alone_metrics, alone_final = _outputs(qmix_runs / "alone" / f"seed{s}")
        pd.testing.assert_frame_equal(packed_metrics, alone_metrics, check_exact=True)
        assert packed_final == alone_final


@pytest.mark.parametrize(("algo", "extra"), [("qmix", ()), ("dmix_da", ()),
                                           ("mappo", ("learner.batch_size=4", "learner.buffer_size=4"))])
def test_a_gradient_step_with_every_run_masked_out_changes_nothing(tmp_path, algo, extra):
    """The CUDA graph's warm-up (``core/graphed.py``) relies on this: a step whose mask is all
    False leaves weights, buffers (MAPPO's value normaliser), optimiser state and step counts
    bitwise as they were."""
    members = [PackMember(_config(algo, s, *extra), tmp_path / f"seed{s}") for s in (0, 1)]
    trainer = Trainer(members)
    episodes, _ = trainer.runner.run([1.0, 1.0], [True, True], [run.generator for run in trainer.runs])
    trainer.buffer.insert(episodes, [0, 1])
    batch = trainer.buffer.sample(4, [run.generator for run in trainer.runs], [True, True])
    batch = trainer.loss_inputs(batch)
    trainer._gradient_step(batch, torch.tensor([True, False]))  # a real step first: non-zero state
    weights = {**trainer.learners.params, **trainer.learners.buffers}
    before = ({k: v.clone() for k, v in weights.items()},
              [{k: v.clone() for k, v in s.items()} for s in trainer.optimizer.state])
    trainer._gradient_step(batch, torch.tensor([False, False]))
    for name, value in before[0].items():
        assert torch.equal(weights[name], value), name
    for saved, state in zip(before[1], trainer.optimizer.state):
        for key, value in saved.items():
            assert torch.equal(state[key], value), key
    assert all(state["step"].flatten().tolist() == [1.0, 0.0] for state in trainer.optimizer.state)


def test_length_buckets_are_evenly_spaced_up_to_the_episode_limit():
    from marlrepro.train import length_buckets, padded_length

    assert length_buckets(100, 4) == [25, 50, 75, 100]
    assert length_buckets(61, 4) == [16, 31, 46, 61]
    assert length_buckets(3, 8) == [1, 2, 3]  # more buckets than steps: one per step
    assert length_buckets(100, 1) == [100]
    assert [padded_length(n, [25, 50, 75, 100]) for n in (1, 25, 26, 99, 100)] == [25, 25, 50, 100, 100]


@pytest.mark.parametrize(("algo", "extra"), [("qmix", ["learner.td_lambda=0.6"]), ("qmix_da", []), ("qplex", [])])
def test_a_batch_cut_to_its_longest_episode_gives_the_same_losses_and_gradients(algo, extra):
    """pymarl's ``max_t_filled`` cut: the steps after every episode's end are masked (and the
    TD(λ) recursion is zero there), so the pack's losses and gradients on the cut batch equal
    those on the batch padded to the episode limit, to float rounding (the sums run over fewer
    zeros, in another order). DMIX is not among these: it draws its quantile fractions per
    step, so a shorter batch draws other ones (the same distribution, other numbers)."""
    trainer = Trainer([PackMember(_config(algo, s, *extra), Path(f"/nonexistent/seed{s}")) for s in (0, 1)])
    runs, generators = [0, 1], [run.generator for run in trainer.runs]
    while not all(trainer.buffer.can_sample(8)):
        episodes, _ = trainer.runner.run([1.0, 1.0], [True, True], generators)
        trainer.buffer.insert(episodes, runs)
    states = [g.get_state() for g in generators]
    full = trainer.buffer.sample(8, generators, [True, True])
    longest = int(full.filled.sum(dim=-1).max())
    limit = trainer.spec.episode_limit
    assert longest < limit  # random play on 3m ends every episode early: the cut is real
    assert full.filled[..., longest:].sum() == 0 and full.filled[..., longest - 1].sum() > 0
    for g, state in zip(generators, states):
        g.set_state(state)
    cut = trainer.buffer.sample(8, generators, [True, True], cut=lambda n: n)  # gathers only the kept steps
    for name, value in cut.tensors().items():
        assert torch.equal(value, getattr(full.trim(longest), name)), name
    results = []
    for batch in (full, cut):
        trainer.optimizer.zero_grad()
        losses = trainer._losses(trainer.loss_inputs(batch))[0]
        losses.sum().backward()
        results.append((losses.detach(), [p.grad.clone() for p in trainer.learners.trainable]))
    (full_losses, full_grads), (cut_losses, cut_grads) = results
    assert full.trim(longest).actions.shape[2] == longest < full.actions.shape[2]
    torch.testing.assert_close(cut_losses, full_losses, rtol=1e-5, atol=1e-7)
    for cut, padded in zip(cut_grads, full_grads):
        torch.testing.assert_close(cut, padded, rtol=1e-4, atol=1e-6)


def test_the_update_sees_batches_cut_to_a_bucket_length(tmp_path):
    """With ``run.length_buckets: 4`` every update's batch is cut to the shortest of the four
    lengths that holds its longest episode (the same for all runs of the pack)."""
    from marlrepro.train import length_buckets

    trainer = Trainer([PackMember(_config("qmix", s, "run.length_buckets=4", "run.t_max=400"), tmp_path / f"s{s}")
                       for s in (0, 1)])
    seen, step = [], trainer._step

    def spy(batch, mask):
        seen.append((batch["actions"].shape[2], int(batch["filled"].sum(dim=-1).max())))
        return step(batch, mask)

    trainer._step = spy
    trainer.run()
    buckets = length_buckets(trainer.spec.episode_limit, 4)
    assert seen and all(t in buckets and t >= longest > (buckets[buckets.index(t) - 1] if t != buckets[0] else 0)
                        for t, longest in seen), seen
    assert min(t for t, _ in seen) < trainer.spec.episode_limit
