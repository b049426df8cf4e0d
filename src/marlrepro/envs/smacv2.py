"""SMACv2 race scenarios on the extended SMAX: ``smacv2:{protoss,terran,zerg}_{5_vs_5,10_vs_10,
10_vs_11,20_vs_20,20_vs_23}``.

Unit types are drawn per episode from SMACv2's race sets with weights 0.45/0.45/0.1, enemies
mirror the allies (extra enemies drawn from the same distribution), start positions are
"surround" or "reflect" with equal probability (:mod:`marlrepro.envs.smacx.sampling`). Options
and semantics are those of :mod:`marlrepro.envs.smax`.
"""

from __future__ import annotations

from typing import Any

from marlrepro.envs import smax
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.smacx import SMACV2_SCENARIOS

SCENARIOS = SMACV2_SCENARIOS
OPTIONS = smax.OPTIONS


def spec(scenario: str, **options: Any) -> EnvSpec:
    """Static spec: builds the lightweight env object, compiles and runs nothing."""
    return smax.spec(scenario, backend="smacv2", **options)


class Env(smax.Env):
    """``num_envs`` vmapped SMACv2 battles of one scenario."""

    BACKEND = "smacv2"
