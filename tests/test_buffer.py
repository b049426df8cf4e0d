"""The episode buffer: per-run rings, insertion, optional full observations, compact checkpoints."""

from __future__ import annotations

import torch

from marlrepro.buffer import EpisodeBuffer, Episodes
from marlrepro.envs.base import EnvSpec

SPEC = EnvSpec(name="t", n_agents=2, obs_dim=3, state_dim=4, n_actions=5, episode_limit=6, full_obs_dim=3)
CPU = torch.device("cpu")


def _episodes(runs: int, batch: int, steps: int, fill: float) -> Episodes:
    """``batch`` episodes of ``steps`` steps for each of ``runs`` runs ([R, B, ...]), all ``fill``."""
    flat = Episodes.empty(runs * batch, SPEC, CPU).trim(steps)
    for value in flat.tensors().values():
        value.fill_(fill if value.dtype != torch.bool else True)
    return Episodes(**{name: value.view(runs, batch, *value.shape[1:]) for name, value in flat.tensors().items()})


def test_full_obs_is_stored_only_where_the_spec_has_it():
    assert Episodes.empty(2, SPEC, CPU).full_obs.shape == (2, 7, 2, 3)
    plain = EnvSpec(name="t", n_agents=2, obs_dim=3, state_dim=4, n_actions=5, episode_limit=6)
    episodes = Episodes.empty(2, plain, CPU)
    assert episodes.full_obs is None and "full_obs" not in episodes.tensors()
    assert EpisodeBuffer(2, 3, plain, CPU).storage.full_obs is None


def test_ring_insert_pads_and_wraps_each_run_on_its_own():
    buffer = EpisodeBuffer(2, 3, SPEC, CPU)
    buffer.insert(_episodes(2, 2, 4, 1.0), [0, 1])
    buffer.insert(_episodes(2, 2, 6, 2.0), [0])  # run 0 wraps: overwrites its slot 0
    assert buffer.size == [3, 2] and buffer.insert_at == [1, 2]
    assert buffer.storage.full_obs[0, 0].eq(2.0).all() and buffer.storage.full_obs[0, 1, :5].eq(1.0).all()
    assert buffer.storage.reward[0, 1, 4:].eq(0).all(), "shorter episodes are zero-padded"
    # run 1 was not listed: its ring is as the first insert left it
    assert buffer.storage.full_obs[1, :2, :5].eq(1.0).all() and buffer.storage.full_obs[1, 2].eq(0).all()
    assert buffer.can_sample(3) == [True, False]


def test_checkpoint_holds_only_the_filled_episodes_of_one_run():
    buffer = EpisodeBuffer(2, 1000, SPEC, CPU)
    buffer.insert(_episodes(2, 2, 6, 1.0), [1])
    state = buffer.run_state(1)
    for value in state["episodes"].values():
        assert value.shape[0] == 2
        assert value.untyped_storage().nbytes() == value.nelement() * value.element_size()
    restored = EpisodeBuffer(2, 1000, SPEC, CPU)
    restored.load_run_state(0, state)  # a run's state restores into any slot of a pack
    assert restored.size == [2, 0] and restored.insert_at == [2, 0]
    assert torch.equal(restored.storage.full_obs[0, :2], buffer.storage.full_obs[1, :2])
    assert restored.storage.full_obs[1].eq(0).all()


def test_float16_storage_halves_observations_and_samples_float32():
    single = EpisodeBuffer(1, 4, SPEC, CPU)
    half = EpisodeBuffer(1, 4, SPEC, CPU, torch.float16)
    for name in ("obs", "state", "full_obs"):
        assert getattr(half.storage, name).nbytes * 2 == getattr(single.storage, name).nbytes
    assert half.storage.reward.dtype == torch.float32 and half.storage.actions.dtype == torch.int64
    episodes = _episodes(1, 4, 6, 1.0)  # all steps filled
    episodes.obs.copy_(torch.linspace(-1, 1, episodes.obs.numel()).view_as(episodes.obs))
    half.insert(episodes, [0])
    batch = half.sample(4, [torch.Generator().manual_seed(0)], [True])
    assert batch.obs.dtype == batch.state.dtype == batch.full_obs.dtype == torch.float32
    # every sampled episode is one of the inserted ones, to float16 precision (2^-11 relative)
    torch.testing.assert_close(batch.obs[0].sort(dim=0).values, episodes.obs[0].sort(dim=0).values,
                               rtol=2**-11, atol=1e-4)


def test_each_run_samples_from_its_own_ring_with_its_own_generator():
    buffer = EpisodeBuffer(2, 8, SPEC, CPU)
    episodes = _episodes(2, 8, 6, 0.0)
    episodes.reward.copy_(torch.arange(16.0).view(2, 8, 1).expand(2, 8, 6))  # episode id as reward
    buffer.insert(episodes, [0, 1])
    generators = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)]
    batch = buffer.sample(4, generators, [True, True])
    ids = batch.reward[:, :, 0]
    assert ids[0].lt(8).all() and ids[1].ge(8).all(), "each run draws from its own ring"
    assert ids[0].unique().numel() == 4, "distinct episodes"
    # a run left out of a sample does not draw from its generator, and the drawn run's sample
    # does not depend on the other runs
    states = [g.get_state() for g in generators]
    again = buffer.sample(4, generators, [False, True])
    assert torch.equal(generators[0].get_state(), states[0])
    assert not torch.equal(generators[1].get_state(), states[1])
    alone = EpisodeBuffer(1, 8, SPEC, CPU)
    alone.insert(Episodes(**{n: v[1:] for n, v in episodes.tensors().items()}), [0])
    generator = torch.Generator().manual_seed(0)
    alone.sample(4, [generator], [True])
    assert torch.equal(alone.sample(4, [generator], [True]).reward[0], again.reward[1])
