"""The GRU recurrence with its hand-written backward (``nets.gru_recurrence``) against torch's GRU."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from marlrepro.nets.agent import gru_sequence
from marlrepro.nets.gru_recurrence import GRURecurrence, cell_backward, cell_forward


def _backward_nodes(tensor: torch.Tensor) -> list[str]:
    """The type names of every autograd node behind ``tensor``."""
    seen, stack, names = set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack += [child for child, _ in node.next_functions]
    return names


def test_the_sequence_equals_torchs_gru_in_outputs_and_every_gradient():
    torch.manual_seed(0)
    rnn = nn.GRU(6, 5, batch_first=True).double()
    x = torch.randn(4, 9, 6, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 4, 5, dtype=torch.double, requires_grad=True)
    ours, ours_h = gru_sequence(x, h0, rnn)
    theirs, theirs_h = rnn(x, h0)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_h, theirs_h)
    weights = torch.randn_like(ours)  # a loss that weighs every step and the final state
    leaves = [x, h0, *rnn.parameters()]
    grads_ours = torch.autograd.grad((ours * weights).sum() + ours_h.square().sum(), leaves)
    grads_theirs = torch.autograd.grad((theirs * weights).sum() + theirs_h.square().sum(), leaves)
    for name, a, b in zip(["x", "h0", *dict(rnn.named_parameters())], grads_ours, grads_theirs, strict=True):
        torch.testing.assert_close(a, b, msg=f"gradient of {name}")


def test_the_hand_written_backward_passes_gradcheck():
    torch.manual_seed(1)
    runs, rows, steps, width = 2, 3, 5, 4
    inputs = (torch.randn(runs, rows, steps, 3 * width), torch.randn(runs, rows, width),
              torch.randn(runs, 3 * width, width), torch.randn(runs, width))
    inputs = tuple(t.double().requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(lambda *a: GRURecurrence.apply(*a)[0], inputs)


def test_the_whole_recurrence_is_one_autograd_node_whatever_the_length():
    """The backward is one node, not ~20 per step: the update's kernel count (which bounds a pack's
    update on the GPU, BENCHMARKS.md §6) no longer follows autograd's per-op graph."""
    rnn = nn.GRU(3, 4, batch_first=True)
    short, _ = gru_sequence(torch.randn(2, 3, 3, requires_grad=True), torch.zeros(1, 2, 4), rnn)
    long, _ = gru_sequence(torch.randn(2, 60, 3, requires_grad=True), torch.zeros(1, 2, 4), rnn)
    assert _backward_nodes(short).count("GRURecurrenceBackward") == 1
    assert len(_backward_nodes(long)) == len(_backward_nodes(short))


def test_vmapped_over_stacked_weights_each_run_equals_its_own_gru():
    """A pack's call (``vmap`` of ``functional_call`` over stacked weights) folds the vmapped axis
    into the recurrence's run axis: each run's outputs and weight gradients are its GRU's."""
    torch.manual_seed(2)
    rnns = [nn.GRU(5, 4, batch_first=True).double() for _ in range(3)]
    params, _ = stack_module_state(rnns)
    xs = torch.randn(3, 2, 6, 5, dtype=torch.double)
    agent = _Sequence(copy.deepcopy(rnns[0]))

    def one_run(weights: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(agent, {f"rnn.{name}": w for name, w in weights.items()}, (x,))

    out = vmap(one_run)(params, xs)
    grads = torch.autograd.grad(out.square().sum(), list(params.values()))
    for r, rnn in enumerate(rnns):
        theirs, _ = rnn(xs[r], torch.zeros(1, 2, 4, dtype=torch.double))
        torch.testing.assert_close(out[r], theirs)
        for a, b in zip(grads, torch.autograd.grad(theirs.square().sum(), list(rnn.parameters())), strict=True):
            torch.testing.assert_close(a[r], b)


class _Sequence(nn.Module):
    """``gru_sequence`` from a zero state that is not batched (the ``vmap`` rule expands it)."""

    def __init__(self, rnn: nn.GRU) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gru_sequence(x, torch.zeros(1, x.shape[0], self.rnn.hidden_size, dtype=x.dtype), self.rnn)[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused cells are CUDA kernels")
def test_the_fused_cuda_cells_equal_the_reference_equations():
    torch.manual_seed(3)
    forward_in = [torch.randn(8, 64, device="cuda") for _ in range(8)]
    backward_in = [torch.randn(8, 64, device="cuda") for _ in range(3)]
    backward_in += [torch.rand(8, 64, device="cuda") for _ in range(3)]  # r, z, n-like gates
    backward_in += [torch.randn(8, 64, device="cuda") for _ in range(2)]
    for cell, inputs in ((cell_forward, forward_in), (cell_backward, backward_in)):
        fused = cell(*inputs)
        reference = cell(*(t.cpu() for t in inputs))
        for a, b in zip(fused, reference, strict=True):
            torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-6)
