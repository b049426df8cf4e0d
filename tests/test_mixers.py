"""Defining properties of the mixing networks."""

from __future__ import annotations

import pytest
import torch

from marlrepro.config import MixerConfig
from marlrepro.errors import ConfigError
from marlrepro.nets.mixers import QMixer, VDNMixer, build_mixer
from marlrepro.nets.qplex import QPLEXMixer


def test_vdn_is_the_sum():
    qs = torch.randn(4, 5, 3)
    assert torch.allclose(VDNMixer()(qs, torch.randn(4, 5, 7)), qs.sum(-1, keepdim=True))


def test_qmix_is_monotone_in_every_agent_value():
    """∂Q_tot/∂Q_i ≥ 0 for random states and agent values (QMIX Eq. 5)."""
    torch.manual_seed(0)
    mixer = QMixer(n_agents=4, state_dim=6, config=MixerConfig())
    for p in mixer.parameters():  # random, far-from-init weights too
        p.data.normal_(0, 1)
    qs = torch.randn(16, 8, 4, requires_grad=True)
    states = torch.randn(16, 8, 6)
    mixer(qs, states).sum().backward()
    assert (qs.grad >= 0).all()
    # and raising one agent's value never lowers Q_tot
    bumped = qs.detach().clone()
    bumped[..., 2] += torch.rand(16, 8) * 5
    assert (mixer(bumped, states) >= mixer(qs.detach(), states) - 1e-5).all()


def test_qmix_greedy_local_actions_maximise_q_tot():
    """IGM: per-agent argmax of Q_i gives the argmax of Q_tot over all joint actions."""
    torch.manual_seed(1)
    n, a = 3, 4
    mixer = QMixer(n, 5, MixerConfig())
    for _ in range(20):
        q = torch.randn(n, a)
        state = torch.randn(5)
        joint = torch.cartesian_prod(*[torch.arange(a)] * n)
        q_tot = mixer(q[torch.arange(n), joint].unsqueeze(0), state.expand(1, len(joint), 5)).view(-1)
        greedy = (joint == q.argmax(-1)).all(-1)
        assert q_tot[greedy].item() >= q_tot.max().item() - 1e-5


def test_iql_has_no_mixer():
    assert build_mixer("iql", 3, 4, 5, MixerConfig()) is None


def test_hypernetwork_depths_outside_the_references_are_config_errors():
    """pymarl's QMixer has 1 or 2 hypernetwork layers; QPLEX's attention heads 1 to 3."""
    with pytest.raises(ConfigError, match=r"mixer.hypernet_layers: unknown value 3; valid choices are: 1, 2"):
        QMixer(3, 5, MixerConfig(hypernet_layers=3))
    with pytest.raises(ConfigError, match=r"mixer.adv_hypernet_layers: unknown value 4; valid choices are: 1, 2, 3"):
        QPLEXMixer(3, 4, 5, MixerConfig(), adv_hypernet_layers=4)
    with pytest.raises(ConfigError, match="mixer.num_kernel: must be >= 1"):
        QPLEXMixer(3, 4, 5, MixerConfig(), num_kernel=0)
