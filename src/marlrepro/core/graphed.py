"""A pack's gradient step captured once as a CUDA graph and replayed.

The step of :class:`marlrepro.train.Trainer` (the loss of every run's batch under ``vmap``,
backward, per-run gradient clipping, the stacked optimiser step) has fixed shapes: batches are
padded to the episode limit and every run of the pack takes part, masked. Its kernels are tiny:
the GRU is unrolled over the episode limit for the online and the target agents, forward and
backward, so one update is several thousand launches, and eager execution is bound by the host
launching them, not by the GPU. A CUDA graph records the launches once; each replay is one
launch of the whole update (PyTorch's "whole-network capture", ``torch.cuda.graphs``).

Capture needs a few eager warm-up calls (lazy cuBLAS and autograd allocations). They run with
every run masked out, which the stacked optimisers define as leaving parameters, optimiser state
and step counts exactly as they were, so the warm-up does not change the training it prepares.
Replay executes the same kernels on the same inputs as eager execution, so a graphed run matches
an eager one up to the nondeterminism of CUDA's atomic reductions (tested on the GPU,
``tests/test_cuda_graph.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

Step = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


class GraphedStep:
    """``step(batch, mask) -> losses`` [R], replayed from a CUDA graph after its first call.

    ``step`` must read its inputs only from ``batch`` (name -> tensor, fixed shapes) and
    ``mask`` [R] (bool), write only into tensors that outlive it (parameters, gradients,
    optimiser state), synchronise nothing with the host, and leave everything unchanged when
    ``mask`` is all False. Its gradients must be ``None`` before the capture, so that backward
    allocates them in the graph's memory pool.
    """

    def __init__(self, step: Step, warmup: int = 3) -> None:
        self.step = step
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: dict[str, torch.Tensor] = {}
        self.mask: torch.Tensor | None = None
        self.losses: torch.Tensor | None = None
        self.eager = False  # set when a capture fails: the step then runs eagerly

    def __call__(self, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        if self.eager:
            return self.step(batch, mask)
        if self.graph is None:
            try:
                self._capture(batch, mask)
            except RuntimeError as error:  # torch.AcceleratorError is one
                log.warning("CUDA graph capture of the update failed (%s); this pack updates eagerly",
                            str(error).splitlines()[0])
                self.graph, self.eager = None, True
                torch.cuda.synchronize()
                return self.step(batch, mask)
        elif set(batch) != set(self.inputs) or any(
                batch[k].shape != v.shape or batch[k].dtype != v.dtype for k, v in self.inputs.items()):
            raise ValueError("a graphed step was called with inputs of other shapes than at its capture: "
                             + ", ".join(f"{k} {tuple(batch[k].shape)} vs {tuple(v.shape)}"
                                         for k, v in self.inputs.items() if k in batch))
        for name, value in batch.items():
            self.inputs[name].copy_(value)
        self.mask.copy_(mask)
        self.graph.replay()
        return self.losses.clone()

    def _capture(self, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        self.inputs = {name: value.clone() for name, value in batch.items()}
        self.mask = torch.zeros_like(mask)  # all runs masked out: the warm-up changes nothing
        rng = torch.cuda.get_rng_state()  # nor the random numbers the first real step draws
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.step(self.inputs, self.mask)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.set_rng_state(rng)
        # the JAX rollout shares the GPU from its own threads: quiesce it, and let only this
        # thread's calls invalidate the capture
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.losses = self.step(self.inputs, self.mask)
