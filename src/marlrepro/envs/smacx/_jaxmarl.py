"""The JaxMARL names this package builds on, imported without JaxMARL's import-time side effects.

Importing ``jaxmarl.environments`` (jaxmarl 0.2.0) prints two lines and its MABrax module rebinds
``sys.stdout``/``sys.stderr`` to the interpreter's original streams. The import below sends the
prints to a throw-away buffer and restores all four stream attributes afterwards.
"""

from __future__ import annotations

import io
import sys

_streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
sys.stdout = sys.__stdout__ = io.StringIO()
sys.__stderr__ = sys.stderr
try:
    from jaxmarl.environments.smax.smax_env import SMAX
    from jaxmarl.environments.smax.smax_env import State as SMAXState
    from jaxmarl.environments.spaces import Box, Discrete
finally:
    sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = _streams

__all__ = ["SMAX", "Box", "Discrete", "SMAXState"]
