"""A pack's gradient step captured as CUDA graphs, one per batch shape, and replayed.

The step of :class:`marlrepro.train.Trainer` (the loss of every run's batch under ``vmap``,
backward, per-run gradient clipping, the stacked optimiser step) has few shapes: batches are
padded to one of ``run.length_buckets`` lengths and every run of the pack takes part, masked.
Its kernels are tiny:
the GRU is unrolled over the episode limit for the online and the target agents, forward and
backward, so one update is several thousand launches, and eager execution is bound by the host
launching them, not by the GPU. A CUDA graph records the launches once; each replay is one
launch of the whole update (PyTorch's "whole-network capture", ``torch.cuda.graphs``).
The graphs of the different lengths share one memory pool: they are replayed one at a time on
one stream, and what must outlive a replay (weights, optimiser state, each graph's static
inputs and outputs) is allocated outside the pool or stays referenced.

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
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

Step = Callable[[dict[str, torch.Tensor], torch.Tensor, int | None], torch.Tensor]


class GraphedStep:
    """``step(batch, mask, stage) -> terms`` ([R, ...]: every run's loss and what else the step
    reports), replayed from a CUDA graph captured at the first call with each new stage (a
    Python int or None, the static kind of update step) and set of batch shapes.

    ``step`` must read its inputs only from ``batch`` (name -> tensor) and ``mask`` [R] (bool),
    write only into tensors that outlive it (parameters, gradients, optimiser state),
    synchronise nothing with the host, and leave everything unchanged when ``mask`` is all
    False. It must set the gradients to ``None`` before its backward, so that each capture's
    backward allocates them in the graphs' memory pool.
    """

    def __init__(self, step: Step, warmup: int = 3) -> None:
        self.step = step
        self.warmup = warmup
        self.graphs: dict[tuple, _Captured] = {}
        self.pool: tuple | None = None  # the memory pool the graphs share
        self.eager = False  # set when a capture fails: the step then runs eagerly

    def __call__(self, batch: dict[str, torch.Tensor], mask: torch.Tensor, stage: int | None = None) -> torch.Tensor:
        if self.eager:
            return self.step(batch, mask, stage)
        key = (stage, *((name, tuple(value.shape), value.dtype) for name, value in sorted(batch.items())))
        captured = self.graphs.get(key)
        if captured is None:
            try:
                captured = self.graphs[key] = self._capture(batch, mask, stage)
            except RuntimeError as error:  # torch.AcceleratorError is one
                log.warning("CUDA graph capture of the update failed (%s); this pack updates eagerly",
                            str(error).splitlines()[0])
                self.graphs.clear()
                self.eager = True
                torch.cuda.synchronize()
                return self.step(batch, mask, stage)
        for name, value in batch.items():
            captured.inputs[name].copy_(value)
        captured.mask.copy_(mask)
        captured.graph.replay()
        return captured.terms.clone()

    def _capture(self, batch: dict[str, torch.Tensor], mask: torch.Tensor, stage: int | None) -> _Captured:
        inputs = {name: value.clone() for name, value in batch.items()}
        masked_out = torch.zeros_like(mask)  # all runs masked out: the warm-up changes nothing
        rng = torch.cuda.get_rng_state()  # nor the random numbers the first real step draws
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.step(inputs, masked_out, stage)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.set_rng_state(rng)
        # the JAX rollout shares the GPU from its own threads: quiesce it, and let only this
        # thread's calls invalidate the capture
        torch.cuda.synchronize()
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            terms = self.step(inputs, masked_out, stage)
        log.debug("captured the update (stage %s) for batch shapes %s", stage,
                  {k: tuple(v.shape) for k, v in batch.items()})
        return _Captured(graph, inputs, masked_out, terms)


@dataclass
class _Captured:
    """One captured update: its graph, the static tensors it reads (``inputs``, ``mask``) and
    the one it writes (``terms``)."""

    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]
    mask: torch.Tensor
    terms: torch.Tensor
