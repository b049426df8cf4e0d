"""The acting path (one step at a time) and the learning path (whole sequences) agree."""

from __future__ import annotations

import torch

from marlrepro.config import AgentConfig
from marlrepro.controller import AgentController
from marlrepro.envs.base import EnvSpec


def test_step_by_step_equals_sequence_unroll():
    torch.manual_seed(0)
    spec = EnvSpec("toy", n_agents=3, obs_dim=5, state_dim=4, n_actions=6, episode_limit=7)
    controller = AgentController(spec, AgentConfig(hidden_dim=16))
    obs = torch.randn(2, 8, 3, 5)
    actions = torch.randint(0, 6, (2, 7, 3))
    with torch.no_grad():
        whole = controller.sequence(obs, actions)
        hidden = controller.initial_hidden(2)
        last = torch.full((2, 3), -1)
        for t in range(8):
            q, hidden = controller.step(obs[:, t], last, hidden)
            assert torch.allclose(q, whole[:, t], atol=1e-5)
            if t < 7:
                last = actions[:, t]


def test_inputs_carry_last_action_and_agent_id():
    spec = EnvSpec("toy", n_agents=2, obs_dim=1, state_dim=1, n_actions=3, episode_limit=1)
    controller = AgentController(spec, AgentConfig())
    x = controller.build_inputs(torch.zeros(1, 1, 2, 1), torch.tensor([[[-1, 2]]]))
    assert x.shape == (1, 1, 2, 1 + 3 + 2)
    assert x[0, 0, 0, 1:4].sum() == 0  # no previous action
    assert x[0, 0, 1, 1:4].tolist() == [0, 0, 1]
    assert x[0, 0, :, 4:].tolist() == [[1, 0], [0, 1]]


def _backward_nodes(tensor: torch.Tensor) -> list:
    """Every autograd node behind ``tensor``."""
    seen, stack, nodes = set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nodes.append(node)
        stack += [child for child, _ in node.next_functions]
    return nodes


def test_the_unrolled_gru_equals_torchs_and_reads_each_step_once():
    """``gru_sequence`` gives ``nn.GRU``'s outputs and gradients, and takes each step's input gates
    by one ``unbind``: no per-step indexing of the whole gate tensor, whose backward would fill a
    zero tensor of its full size at every step (BENCHMARKS.md section 6)."""
    from torch import nn

    from marlrepro.nets.agent import gru_sequence

    torch.manual_seed(0)
    rnn = nn.GRU(6, 5, batch_first=True)
    x = torch.randn(4, 7, 6, requires_grad=True)
    h0 = torch.randn(1, 4, 5)
    ours, ours_h = gru_sequence(x, h0, rnn)
    theirs, theirs_h = rnn(x, h0)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_h, theirs_h)
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), x)
    (grad_theirs,) = torch.autograd.grad(theirs.square().sum(), x)
    torch.testing.assert_close(grad_ours, grad_theirs)
    nodes = _backward_nodes(ours)
    assert [type(node).__name__ for node in nodes].count("UnbindBackward0") == 1
    # indexing nodes only ever see one step's gates [M, 3H], never the whole sequence [M, T, 3H]
    indexing = [node for node in nodes if type(node).__name__ in (
        "SelectBackward0", "SliceBackward0", "IndexBackward0", "AsStridedBackward0")]
    assert all(len(node._saved_self_sym_sizes) == 2 for node in indexing)
