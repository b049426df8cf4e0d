"""The JaxMARL names this package builds on (:mod:`marlrepro.envs.jaxmarl_modules`: imported
without JaxMARL's package initialisers, their import time and their import-time prints)."""

from __future__ import annotations

from marlrepro.envs.jaxmarl_modules import jaxmarl_module

_smax_env = jaxmarl_module("jaxmarl.environments.smax.smax_env")
_spaces = jaxmarl_module("jaxmarl.environments.spaces")
SMAX = _smax_env.SMAX
SMAXState = _smax_env.State
Box, Discrete = _spaces.Box, _spaces.Discrete

__all__ = ["SMAX", "Box", "Discrete", "SMAXState"]
