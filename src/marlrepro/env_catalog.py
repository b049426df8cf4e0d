"""What each environment backend accepts, as plain data: its scenario names and its options.

The backends themselves (:mod:`marlrepro.envs`) import torch, JAX and the simulators, which takes
seconds; this module imports nothing heavy, so that the Snakemake workflow can check the env name
and options of every planned run while it parses, before any job starts. It mirrors the
``SCENARIOS`` of the backend modules, which come from the simulators themselves
(``tests/test_envs.py`` checks that they agree); the backends take their ``OPTIONS`` from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marlrepro.errors import ConfigError, unknown_choice

SMAC_MAPS = frozenset({"3m", "8m", "5m_vs_6m", "8m_vs_9m", "3s5z", "3s_vs_5z", "MMM2"})
SMACV2_SCENARIOS = frozenset(
    f"{race}_{n}_vs_{m}"
    for race in ("protoss", "terran", "zerg")
    for n, m in ((5, 5), (10, 10), (10, 11), (20, 20), (20, 23))
)
# JaxMARL's SMAX maps (jaxmarl.environments.smax.smax_env.MAP_NAME_TO_SCENARIO, jaxmarl 0.2.0)
SMAX_STOCK_MAPS = frozenset({
    "3m", "2s3z", "25m", "3s5z", "8m", "5m_vs_6m", "10m_vs_11m", "27m_vs_30m", "3s5z_vs_3s6z", "3s_vs_5z",
    "6h_vs_8z", "smacv2_5_units", "smacv2_10_units", "smacv2_20_units",
})  # fmt: skip

# backend -> the scenarios it serves (env names are ``backend:scenario``)
SCENARIOS: dict[str, frozenset[str]] = {
    "matrix": frozenset({"me_igm", "monotonic"}),
    "jaxmpe": frozenset({
        "simple_spread", "simple_spread_6", "simple_spread_hetero", "simple_spread_hetero_6",
        "simple_reference", "simple_reference_3a5l", "simple_speaker_listener",
    }),
    "miner": frozenset({"easy_2_vs_2", "medium_2_vs_2", "hard_2_vs_2"}),
    "mpe": frozenset({"simple_spread", "simple_reference", "simple_speaker_listener"}),
    "overcooked": frozenset({"cramped_room", "asymmetric_advantages"}),
    "smax": SMAC_MAPS,
    "smacv2": SMACV2_SCENARIOS,
    "smax_stock": SMAX_STOCK_MAPS,
    "sc2": SMAC_MAPS | SMACV2_SCENARIOS,
}

# backend -> option name -> (type, default); a default of None makes the option optional
_SMAX_OPTIONS: dict[str, tuple[type, Any]] = {
    "episode_limit": (int, None),  # None: the map's SMAC (or SMACv2) limit
    "reward": (str, "smac"),  # smac: SMAC's normalised reward (max 20); smax: SMAX's own (max ~2)
    "reward_scale": (float, 1.0),  # multiplies the team reward (10 puts SMAX's reward near SMAC's)
    "sight_range": (float, None),  # allies' sight for their observations; None: SMAC's (9; SMACv2 per type)
    "full_sight_obs": (bool, False),  # also return each ally's obs at SMAC's sight (the expert view)
    "attack_mode": (str, "closest"),  # heuristic enemy's target choice; SMAX default
}
OPTIONS: dict[str, dict[str, tuple[type, Any]]] = {
    "matrix": {"payoff": (list, [])},
    "jaxmpe": {
        "max_cycles": (int, 25), "shared_reward": (bool, False),  # the mpe backend's
        "collision_penalty": (bool, False),  # spread, shared reward: also −1 per colliding pair (CESMA)
    },
    "miner": {},
    "mpe": {"max_cycles": (int, 25), "shared_reward": (bool, False)},
    "overcooked": {
        "episode_limit": (int, 400),  # Overcooked's horizon; the episode then ends by truncation
        "shaped_reward": (float, 0.0),  # weight of the shaped reward (0: the delivery reward only)
        "shaped_reward_horizon": (int, 2_500_000),  # env steps over which that weight falls to 0 (JaxMARL's)
    },
    "smax": _SMAX_OPTIONS,
    "smacv2": _SMAX_OPTIONS,
    "smax_stock": {
        "episode_limit": (int, 100),  # SMAX's default max_steps
        "reward_scale": (float, 1.0),
        "see_enemy_actions": (bool, True),  # SMAX default
        "walls_cause_death": (bool, True),  # SMAX default: the map edge kills (smax/smacv2: it stops units)
        "attack_mode": (str, "closest"),  # heuristic enemy's target choice; SMAX default
    },
    "sc2": {
        "sight_range": (float, None),  # allies' sight for their observations; None: SMAC's 9
        "reward_scale": (float, 1.0),  # multiplies SMAC's reward (already normalised to max 20)
    },
}

# backends whose Env offers ``fused_rollout`` (whole episode batches in one compiled call)
FUSED_BACKENDS = frozenset({"smax", "smacv2", "smax_stock", "overcooked", "miner", "jaxmpe"})  # overcooked: without the shaped reward
# backends whose state starts with one block of features per ally (SMAC's ``get_state``:
# ``EnvSpec.unit_dim`` > 0), which MAPPO's agent-specific state reorders (``ppo.critic_input``)
ALLY_STATE_BACKENDS = frozenset({"smax", "smacv2", "sc2"})
# backends whose observations and states are integers in [0, 255], so that a uint8 replay buffer
# (``learner.buffer_dtype: uint8``) stores them exactly (Overcooked's feature grids)
INTEGER_OBS_BACKENDS = frozenset({"overcooked"})


def split_env_name(name: object, field: str = "env.name") -> tuple[str, str]:
    """``backend:scenario`` -> ``(backend, scenario)``, the backend checked (not the scenario)."""
    if not isinstance(name, str) or ":" not in name:
        raise ConfigError(
            f"{field}: expected 'backend:scenario' (e.g. smax:3m), got {name!r}; "
            f"backends: {', '.join(sorted(SCENARIOS))}"
        )
    backend, scenario = name.split(":", 1)
    if backend not in SCENARIOS:
        raise unknown_choice(field, backend, SCENARIOS, what="backend")
    return backend, scenario


def check_env_name(name: object, field: str = "env.name") -> str:
    """Check backend and scenario of the env name ``name``; return its backend."""
    backend, scenario = split_env_name(name, field)
    if scenario not in SCENARIOS[backend]:
        raise unknown_choice(field, scenario, SCENARIOS[backend], what=f"{backend} scenario")
    return backend


def check_options(
    env_name: str, options: Mapping[str, Any], allowed: Mapping[str, tuple[type, Any]]
) -> dict[str, Any]:
    """Return ``options`` completed with defaults, after checking names and types.

    ``allowed`` maps each option name to ``(type, default)``; a default of None makes the option
    optional (None stays None). An int is accepted where a float is expected; a bool is never
    accepted as a number.
    """
    for key in options:
        if key not in allowed:
            raise unknown_choice(f"env.options.{key} ({env_name})", key, allowed, what="option")
    resolved: dict[str, Any] = {}
    for key, (kind, default) in allowed.items():
        value = options.get(key, default)
        if value is None and default is None:
            resolved[key] = None
            continue
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(
                f"env.options.{key}: expected {kind.__name__} for {env_name}, got {type(value).__name__} {value!r}"
            )
        resolved[key] = value
    return resolved


def check_env(name: object, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check the env name and its options as the backend will, without loading the backend;
    return the options completed with the backend's defaults."""
    backend = check_env_name(name)
    return check_options(str(name), options, OPTIONS[backend])
