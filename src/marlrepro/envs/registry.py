"""Environment names (``backend:scenario``) to batched environments.

Backends are imported lazily so that, for example, the matrix game never loads JAX.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

import torch

from marlrepro.env_catalog import check_options, split_env_name
from marlrepro.envs.base import BatchedEnv, EnvSpec
from marlrepro.errors import ConfigError, unknown_choice

# backend name -> module implementing ``SCENARIOS``, ``OPTIONS``, ``spec(...)`` and ``Env``
BACKEND_MODULES = {
    "jaxmpe": "marlrepro.envs.jax_mpe",
    "matrix": "marlrepro.envs.matrix",
    "miner": "marlrepro.envs.miner",
    "mpe": "marlrepro.envs.mpe",
    "overcooked": "marlrepro.envs.overcooked",
    "smax": "marlrepro.envs.smax",
    "smacv2": "marlrepro.envs.smacv2",
    "smax_stock": "marlrepro.envs.smax_stock",
    "sc2": "marlrepro.envs.sc2",
}


def _backend(backend: str):
    return importlib.import_module(BACKEND_MODULES[backend])


def validate_env(name: str, options: Mapping[str, Any] | None = None) -> tuple[EnvSpec, dict[str, Any]]:
    """Check ``name`` and ``options`` without building anything heavy.

    Returns the task's static :class:`EnvSpec` and the options completed with defaults.
    Raises :class:`ConfigError` naming the bad field and the valid choices.
    """
    backend, scenario = split_env_name(name)
    module = _backend(backend)
    if scenario not in module.SCENARIOS:
        raise unknown_choice("env.name", scenario, module.SCENARIOS, what=f"{backend} scenario")
    resolved = check_options(name, dict(options or {}), module.OPTIONS)
    return module.spec(scenario, **resolved), resolved


def make(
    name: str,
    num_envs: int,
    seed: int,
    device: str | torch.device = "cpu",
    **options: Any,
) -> BatchedEnv:
    """Build ``num_envs`` parallel copies of task ``name`` on ``device``."""
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"env.num_envs: expected a positive int, got {num_envs!r}")
    _, resolved = validate_env(name, options)
    backend, scenario = split_env_name(name)
    env = _backend(backend).Env(scenario, num_envs=num_envs, seed=seed, device=torch.device(device), **resolved)
    # what fixes the env's pure functions (not its seed, which only starts its key stream): a
    # compiled rollout of one env serves every env of the same key in the process (jax_rollout)
    env.program_key = (name, json.dumps(resolved, sort_keys=True, default=str), str(torch.device(device)))
    return env
