"""The memory a pack of training runs needs, checked against its device before training starts.

Replay buffers dominate: every run allocates its whole buffer up front, ``learner.buffer_size``
episodes of ``episode_limit`` steps (:meth:`marlrepro.buffer.Episodes.empty`), on the training
device. On MMM2 with the full-sight observations of IGM-DA's experts, 5000 episodes take 14.1 GB in
float32 and 7.2 GB with ``learner.buffer_dtype: float16``. The rest of a run (networks, optimiser
state, sampled batches and the activations of an update) is small beside it and only estimated
(:func:`run_overhead_bytes`).

:func:`check_pack_fits` adds them up for every run of a pack and compares the sum with the memory
free on the device (``torch.cuda.mem_get_info``; on the CPU, the host's available memory), less a
safety margin; a pack that cannot fit stops with a :class:`~marlrepro.errors.ConfigError` that
names the sizes and what to change, before anything is allocated.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import psutil
import torch

from marlrepro.config import LearnerConfig, TrainConfig
from marlrepro.env_catalog import INTEGER_OBS_BACKENDS, split_env_name
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError

log = logging.getLogger(__name__)

# Bytes per element of the buffer's observation-sized fields, by ``learner.buffer_dtype``, and of
# the other fields (as Episodes.empty allocates them).
OBSERVATION_BYTES = {"float32": 4, "float16": 2, "uint8": 1}
BOOL_BYTES, INT64_BYTES, FLOAT32_BYTES = 1, 8, 4

# The estimate of a run's memory beside its replay buffer (run_overhead_bytes): a fixed part for
# the networks, their target copies, the optimiser state and the caching allocator's rounding, and
# BATCH_COPIES sampled batches in float32 (the gathered batch, its float32 copy, the CUDA graph's
# static copy of it (core/graphed.py), and the activations an update keeps for the backward
# pass), plus the static copies of the other bucket lengths' graphs (run.length_buckets > 1:
# one per length, of that length). BENCHMARKS.md §4's MMM2 qmix-DA rows (peak 27.9 GB with a
# float32 buffer, 14.3 GB with float16) put a run's peak beyond its buffer near 0.5 GB; this
# estimate gives 1.0 GB for that run.
RUN_FIXED_BYTES = 512 * 2**20
BATCH_COPIES = 5
# The share of the free memory a pack may plan to fill: the allocator fragments, and the JAX
# environments allocate beside torch.
USABLE_FRACTION = 0.9


def episode_bytes(spec: EnvSpec, learner: LearnerConfig) -> int:
    """Bytes of one episode slot of the replay buffer, exactly as ``Episodes.empty`` allocates it:
    ``obs``, ``state`` and (where the env provides it) ``full_obs`` over ``T + 1`` steps in
    ``learner.buffer_dtype``; ``avail_actions`` over ``T + 1`` steps as bool; ``actions`` over
    ``T`` steps as int64; ``reward``, ``terminated`` and ``filled`` over ``T`` steps as float32."""
    steps, agents = spec.episode_limit, spec.n_agents
    observation_sized = (steps + 1) * (agents * spec.obs_dim + spec.state_dim + agents * spec.full_obs_dim)
    return (
        observation_sized * OBSERVATION_BYTES[learner.buffer_dtype]
        + (steps + 1) * agents * spec.n_actions * BOOL_BYTES
        + steps * agents * INT64_BYTES
        + 3 * steps * FLOAT32_BYTES
    )


def buffer_bytes(spec: EnvSpec, config: TrainConfig) -> int:
    """Bytes of a run's whole replay buffer (``learner.buffer_size`` episodes)."""
    return config.learner.buffer_size * episode_bytes(spec, config.learner)


def run_overhead_bytes(spec: EnvSpec, config: TrainConfig) -> int:
    """The estimate of a run's memory beside its buffer: :data:`RUN_FIXED_BYTES` plus
    :data:`BATCH_COPIES` float32 batches of ``learner.batch_size`` episodes, plus, with
    ``run.length_buckets`` K > 1, the graphs' static copies of the K − 1 shorter lengths
    (``Σ_{k<K} k / K`` full batches)."""
    batch = config.learner.batch_size * episode_bytes(spec, dataclasses.replace(config.learner, buffer_dtype="float32"))
    k = config.run.length_buckets
    return RUN_FIXED_BYTES + int((BATCH_COPIES + (k - 1) / 2) * batch)


def demo_bytes(spec: EnvSpec, configs: Sequence[TrainConfig]) -> int:
    """Bytes of a pack's demonstrations on its device (one copy for the pack, the largest
    ``demos.count`` of its runs, stored as a replay buffer's episodes; none without ``demos.path``)."""
    with_demos = [config for config in configs if config.demos.path]
    if not with_demos:
        return 0
    return max(config.demos.count for config in with_demos) * episode_bytes(spec, with_demos[0].learner)


def pack_bytes(spec: EnvSpec, configs: Sequence[TrainConfig], device: torch.device | None = None) -> int:
    """Bytes a pack of runs on ``spec`` needs on ``device``: every run's buffer (unless a GPU pack
    keeps it in host memory, ``learner.buffer_on_host``) plus its overhead estimate, and the
    pack's demonstrations (:func:`demo_bytes`)."""
    def buffer_here(config: TrainConfig) -> int:
        on_host = device is not None and device.type == "cuda" and config.learner.buffer_on_host
        return 0 if on_host else buffer_bytes(spec, config)

    return sum(buffer_here(config) + run_overhead_bytes(spec, config) for config in configs) + demo_bytes(spec, configs)


def free_bytes(device: torch.device) -> int:
    """Memory free for a pack on ``device``: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    return psutil.virtual_memory().available


def check_pack_fits(
    spec: EnvSpec, configs: Sequence[TrainConfig], device: torch.device | str, free: int | None = None
) -> None:
    """Raise :class:`ConfigError` unless the runs ``configs`` (all on ``spec``) fit together on
    ``device``: :func:`pack_bytes` against :data:`USABLE_FRACTION` of its free memory (``free``
    bytes, else measured by :func:`free_bytes`). Call it before allocating anything."""
    device = torch.device(device)
    free = free_bytes(device) if free is None else free
    usable = int(free * USABLE_FRACTION)
    buffers = [buffer_bytes(spec, config) for config in configs]
    needed = pack_bytes(spec, configs, device)
    log.info("%s: a pack of %d runs needs %s of the %s free on %s", spec.name, len(configs), _gb(needed),
             _gb(free), device)
    if needed <= usable:
        return
    per_run = _gb(buffers[0]) if min(buffers) == max(buffers) else f"{_gb(min(buffers))} to {_gb(max(buffers))}"
    where = "host memory available" if device.type == "cpu" else "free"
    fit = math.floor(usable / (needed / len(configs)))
    advice = [(f"a smaller pack (at most {fit} of these runs fit: `--config pack_size={fit}` in the workflow, "
               f"fewer --pack values by hand)")] if fit > 0 else []
    sizes = ", ".join(map(str, sorted({config.learner.buffer_size for config in configs})))
    advice.append(f"a smaller learner.buffer_size (now {sizes} episodes)")
    if split_env_name(spec.name)[0] in INTEGER_OBS_BACKENDS and any(c.learner.buffer_dtype != "uint8" for c in configs):
        advice.append("learner.buffer_dtype=uint8 (a quarter of float32, exact for this env's integer observations)")
    elif any(config.learner.buffer_dtype == "float32" for config in configs):
        advice.append("learner.buffer_dtype=float16 (halves the observations and states)")
    if device.type == "cuda" and not all(config.learner.buffer_on_host for config in configs):
        advice.append("learner.buffer_on_host=true (the buffer in pinned host memory)")
    raise ConfigError(
        f"{spec.name}: a pack of {len(configs)} runs needs {_gb(needed)} on {device}, which has {_gb(free)} "
        f"{where} ({_gb(usable)} usable, keeping a {1 - USABLE_FRACTION:.0%} margin): replay buffers of "
        f"{per_run} per run ({_gb(sum(buffers))} in all) plus an estimated {_gb(needed - sum(buffers))} for "
        f"networks, optimiser state{', batches and demonstrations' if demo_bytes(spec, configs) else ' and batches'}. "
        f"{'Not even one run fits. ' if fit == 0 else ''}"
        f"Use {', or '.join(advice)}."
    )


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB"
