"""Environment names (``backend:scenario``) to batched environments.

Backends are imported lazily so that, for example, the matrix game never loads JAX.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch

from marlrepro.envs.base import BatchedEnv, EnvSpec
from marlrepro.errors import ConfigError, unknown_choice

# backend name -> module implementing ``SCENARIOS``, ``OPTIONS``, ``spec(...)`` and ``Env``
BACKEND_MODULES = {
    "matrix": "marlrepro.envs.matrix",
    "mpe": "marlrepro.envs.mpe",
    "smax": "marlrepro.envs.smax",
    "smacv2": "marlrepro.envs.smacv2",
    "smax_stock": "marlrepro.envs.smax_stock",
    "sc2": "marlrepro.envs.sc2",
}
# backends whose Env offers ``fused_rollout`` (whole episode batches in one compiled call)
FUSED_BACKENDS = frozenset({"smax", "smacv2", "smax_stock"})


def _split(name: str) -> tuple[str, str]:
    if not isinstance(name, str) or ":" not in name:
        raise ConfigError(
            f"env.name: expected 'backend:scenario' (e.g. smax:3m), got {name!r}; "
            f"backends: {', '.join(sorted(BACKEND_MODULES))}"
        )
    backend, scenario = name.split(":", 1)
    if backend not in BACKEND_MODULES:
        raise unknown_choice("env.name (backend)", backend, BACKEND_MODULES)
    return backend, scenario


def _backend(backend: str):
    return importlib.import_module(BACKEND_MODULES[backend])


def validate_env(name: str, options: Mapping[str, Any] | None = None) -> tuple[EnvSpec, dict[str, Any]]:
    """Check ``name`` and ``options`` without building anything heavy.

    Returns the task's static :class:`EnvSpec` and the options completed with defaults.
    Raises :class:`ConfigError` naming the bad field and the valid choices.
    """
    backend, scenario = _split(name)
    module = _backend(backend)
    if scenario not in module.SCENARIOS:
        raise unknown_choice(f"env.name (scenario of {backend})", scenario, module.SCENARIOS)
    from marlrepro.envs.options import check_options

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
    backend, scenario = _split(name)
    return _backend(backend).Env(scenario, num_envs=num_envs, seed=seed, device=torch.device(device), **resolved)
