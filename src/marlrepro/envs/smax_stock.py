"""JaxMARL's unmodified SMAX (``HeuristicEnemySMAX``), as ``smax_stock:<map>``.

Kept for comparisons with JaxMARL's published figures (its pure-JAX QMIX anchor) and as the
baseline of the extended env's throughput ratio. Semantics, checked against the jaxmarl 0.2.0
source:

* Win rule: SMAX pays ``won_battle_bonus`` (1.0) when, after a step, every enemy is dead and at
  least one ally is alive (both teams dying in the same step is a draw); :class:`StockRules`
  uses exactly that rule, and a battle is over when one side is wiped out.
* Team reward: one reward per team (normalised enemy-health loss plus the win bonus), the same
  for every ally.
* Time limit: SMAX checks ``step >= max_steps`` *before* incrementing the step counter, so its
  own episodes last ``max_steps + 1`` steps. The batch wrapper ends episodes itself after exactly
  ``episode_limit`` steps (``truncated``), so SMAX's own time-out never fires first.
* Map edge: SMAX kills a unit that touches it (``walls_cause_death``, on by default as in SMAX;
  the option turns it off). The extended env (``smax:``/``smacv2:``) stops units at the edge
  instead, as StarCraft II does.
* Clock: 0.5 s per step (8 world steps of 1/16 s); the extended env uses SMAC's 8/22.4 s.
"""

from __future__ import annotations

from typing import Any

import jax
import torch

from marlrepro import env_catalog
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.jax_smax import SMAXBatch, spec_of
from marlrepro.envs.jaxmarl_modules import jaxmarl_module
from marlrepro.errors import ConfigError, unknown_choice

_smax = jaxmarl_module("jaxmarl.environments.smax")
HeuristicEnemySMAX, map_name_to_scenario = _smax.HeuristicEnemySMAX, _smax.map_name_to_scenario
MAP_NAME_TO_SCENARIO = jaxmarl_module("jaxmarl.environments.smax.smax_env").MAP_NAME_TO_SCENARIO

SCENARIOS = frozenset(MAP_NAME_TO_SCENARIO)
ATTACK_MODES = ("closest", "random")
OPTIONS = env_catalog.OPTIONS["smax_stock"]  # option -> (type, default)


def build_env(
    scenario: str,
    *,
    episode_limit: int,
    reward_scale: float,
    see_enemy_actions: bool,
    walls_cause_death: bool,
    attack_mode: str,
) -> HeuristicEnemySMAX:
    """Validate the options and build the (never jitted here) jaxmarl environment.

    ``reward_scale`` is applied by the batch wrapper; it is accepted here so that callers can
    pass the resolved options unchanged.
    """
    if attack_mode not in ATTACK_MODES:
        raise unknown_choice("env.options.attack_mode", attack_mode, ATTACK_MODES)
    if episode_limit < 1:
        raise ConfigError(f"env.options.episode_limit: expected a positive int, got {episode_limit}")
    return HeuristicEnemySMAX(
        scenario=map_name_to_scenario(scenario),
        attack_mode=attack_mode,
        see_enemy_actions=see_enemy_actions,
        walls_cause_death=walls_cause_death,
        max_steps=episode_limit,
    )


def spec(scenario: str, **options: Any) -> EnvSpec:
    """Static spec: builds the lightweight jaxmarl object, compiles and runs nothing."""
    return spec_of(f"smax_stock:{scenario}", build_env(scenario, **options))


class StockRules:
    """SMAX's battle end and win rule, read from which units are alive."""

    def __init__(self, num_allies: int) -> None:
        self.num_allies = num_allies

    def _sides_alive(self, state: Any) -> tuple[jax.Array, jax.Array]:
        alive = state.state.unit_alive
        return alive[: self.num_allies].any(), alive[self.num_allies :].any()

    def battle_over(self, state: Any) -> jax.Array:
        allies, enemies = self._sides_alive(state)
        return ~(allies & enemies)

    def won(self, state: Any) -> jax.Array:
        allies, enemies = self._sides_alive(state)
        return allies & ~enemies


class Env(SMAXBatch):
    """``num_envs`` vmapped stock SMAX battles."""

    def __init__(self, scenario: str, *, num_envs: int, seed: int, device: torch.device, **options: Any) -> None:
        env = build_env(scenario, **options)
        super().__init__(env, StockRules(env.num_allies), f"smax_stock:{scenario}", num_envs=num_envs,
                         seed=seed, device=device, reward_scale=options["reward_scale"])
