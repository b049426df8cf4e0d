"""The extended SMAX: SMAC and SMACv2 scenarios as the papers define them, in pure JAX.

Built on JaxMARL's SMAX, it adds a per-team sight range (with an optional full-sight "expert"
view), SC2's Medivac, Colossus and Baneling, Protoss shields, SMAC's per-map episode limits,
SMACv2's race scenarios, SMAC's reward, and a ``won`` flag. Entry point: :func:`make_extended_smax`.
"""

from marlrepro.envs.smacx.env import FULL_SIGHT_KEY, ExtendedSMAX, make_extended_smax
from marlrepro.envs.smacx.heuristic import ATTACK_MODES
from marlrepro.envs.smacx.reward import REWARDS
from marlrepro.envs.smacx.scenarios import SCENARIOS, SMAC_MAPS, SMACV2_SCENARIOS
from marlrepro.envs.smacx.state import EnvState, UnitState

__all__ = [
    "ATTACK_MODES",
    "FULL_SIGHT_KEY",
    "REWARDS",
    "SCENARIOS",
    "SMACV2_SCENARIOS",
    "SMAC_MAPS",
    "EnvState",
    "ExtendedSMAX",
    "UnitState",
    "make_extended_smax",
]
