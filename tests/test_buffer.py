"""The episode buffer: ring insertion, optional full observations, compact checkpoints."""

from __future__ import annotations

import torch

from marlrepro.buffer import EpisodeBuffer, Episodes
from marlrepro.envs.base import EnvSpec

SPEC = EnvSpec(name="t", n_agents=2, obs_dim=3, state_dim=4, n_actions=5, episode_limit=6, full_obs_dim=3)


def _episodes(batch: int, steps: int, fill: float) -> Episodes:
    full = Episodes.empty(batch, SPEC, torch.device("cpu")).trim(steps)
    for value in full.tensors().values():
        value.fill_(fill if value.dtype != torch.bool else True)
    return full


def test_full_obs_is_stored_only_where_the_spec_has_it():
    assert Episodes.empty(2, SPEC, torch.device("cpu")).full_obs.shape == (2, 7, 2, 3)
    plain = EnvSpec(name="t", n_agents=2, obs_dim=3, state_dim=4, n_actions=5, episode_limit=6)
    episodes = Episodes.empty(2, plain, torch.device("cpu"))
    assert episodes.full_obs is None and "full_obs" not in episodes.tensors()


def test_ring_insert_pads_and_wraps():
    buffer = EpisodeBuffer(3, SPEC, torch.device("cpu"))
    buffer.insert(_episodes(2, 4, 1.0))
    buffer.insert(_episodes(2, 6, 2.0))  # wraps: overwrites slot 0
    assert buffer.size == 3 and buffer.insert_at == 1
    assert buffer.storage.full_obs[0].eq(2.0).all() and buffer.storage.full_obs[1, :5].eq(1.0).all()
    assert buffer.storage.reward[1, 4:].eq(0).all(), "shorter episodes are zero-padded"


def test_checkpoint_holds_only_the_filled_episodes():
    buffer = EpisodeBuffer(1000, SPEC, torch.device("cpu"))
    buffer.insert(_episodes(2, 6, 1.0))
    state = buffer.state_dict()
    for value in state["episodes"].values():
        assert value.shape[0] == 2
        assert value.untyped_storage().nbytes() == value.nelement() * value.element_size()
    restored = EpisodeBuffer(1000, SPEC, torch.device("cpu"))
    restored.load_state_dict(state)
    assert torch.equal(restored.storage.full_obs[:2], buffer.storage.full_obs[:2])


def test_float16_storage_halves_observations_and_samples_float32():
    single = EpisodeBuffer(4, SPEC, torch.device("cpu"))
    half = EpisodeBuffer(4, SPEC, torch.device("cpu"), torch.float16)
    for name in ("obs", "state", "full_obs"):
        assert getattr(half.storage, name).nbytes * 2 == getattr(single.storage, name).nbytes
    assert half.storage.reward.dtype == torch.float32 and half.storage.actions.dtype == torch.int64
    episodes = _episodes(4, 6, 1.0)  # all steps filled
    episodes.obs.copy_(torch.linspace(-1, 1, episodes.obs.numel()).view_as(episodes.obs))
    half.insert(episodes)
    batch = half.sample(4)
    assert batch.obs.dtype == batch.state.dtype == batch.full_obs.dtype == torch.float32
    # every sampled episode is one of the inserted ones, to float16 precision (2^-11 relative)
    torch.testing.assert_close(batch.obs.sort(dim=0).values, episodes.obs.sort(dim=0).values,
                               rtol=2**-11, atol=1e-4)
