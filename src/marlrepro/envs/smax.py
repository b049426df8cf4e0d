"""SMAC maps on the extended SMAX (the default simulator of the SMAC maps; no StarCraft II).

``smax:<map>`` serves 3m, 8m, 5m_vs_6m, 8m_vs_9m, 3s5z, 3s_vs_5z and MMM2 from
:mod:`marlrepro.envs.smacx`, with SMAC's per-map episode limits, SMAC's reward (maximum episode
return 20) and an ally-only ``sight_range`` (IGM-DA's zero-sight view is ``sight_range=0``). The
SMACv2 race scenarios live in :mod:`marlrepro.envs.smacv2`; JaxMARL's unmodified env in
:mod:`marlrepro.envs.smax_stock`. Battle ends and wins follow SMAC's rules as the env implements
them (e.g. a team of only Medivacs has lost). Observations and state have SMAC's features, order
and widths (:mod:`marlrepro.envs.smacx.observations`), as the ``sc2:`` backend for the same map.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from marlrepro import env_catalog
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.jax_smax import SMAXBatch, spec_of
from marlrepro.envs.smacx import (
    FULL_SIGHT_KEY,
    SMAC_MAPS,
    ExtendedSMAX,
    make_extended_smax,
)

SCENARIOS = SMAC_MAPS
OPTIONS = env_catalog.OPTIONS["smax"]  # option -> (type, default)


def build_env(scenario: str, *, reward_scale: float, **options: Any) -> ExtendedSMAX:
    """Validate the options and build the (never jitted here) extended SMAX env.

    ``reward_scale`` is applied by the batch wrapper; it is accepted here so that callers can
    pass the resolved options unchanged.
    """
    return make_extended_smax(scenario, **options)


_SPECS: dict[str, EnvSpec] = {}


def spec(scenario: str, *, backend: str = "smax", **options: Any) -> EnvSpec:
    """Static spec: builds the lightweight env object, compiles nothing. Kept per scenario and
    options for the process: building the env runs small JAX operations one by one, and planning
    a scale validates the env of every run."""
    key = json.dumps([backend, scenario, options], sort_keys=True, default=str)
    if key not in _SPECS:
        _SPECS[key] = spec_of(f"{backend}:{scenario}", build_env(scenario, **options))
    return _SPECS[key]


class Env(SMAXBatch):
    """``num_envs`` vmapped extended-SMAX battles of one scenario."""

    BACKEND = "smax"

    def __init__(self, scenario: str, *, num_envs: int, seed: int, device: torch.device, **options: Any) -> None:
        env = build_env(scenario, **options)
        super().__init__(env, env, f"{self.BACKEND}:{scenario}", num_envs=num_envs, seed=seed, device=device,
                         reward_scale=options["reward_scale"], full_obs_key=FULL_SIGHT_KEY)
