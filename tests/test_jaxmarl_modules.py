"""Our backends import JaxMARL's SMAX and Overcooked modules alone, and the package stays whole."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
import marlrepro.envs.overcooked, marlrepro.envs.smax, marlrepro.envs.smax_stock
loaded = sorted(m for m in sys.modules if m.startswith("jaxmarl.environments.") and m.count(".") == 2)
print(loaded)
from jaxmarl import make
from jaxmarl.environments import SimpleSpreadMPE
print(type(make("MPE_simple_spread_v3")).__name__, SimpleSpreadMPE.__name__)
"""


def test_backends_import_only_the_jaxmarl_modules_they_use_and_jaxmarl_stays_whole():
    """Importing the three JaxMARL backends runs neither of JaxMARL's package initialisers (no
    Hanabi, STORM, MPE, ... modules, no import-time prints); asking the package for anything else
    afterwards runs them then, quietly."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout.splitlines()
    expected = ["jaxmarl.environments.multi_agent_env", "jaxmarl.environments.overcooked",
                "jaxmarl.environments.smax", "jaxmarl.environments.spaces"]
    assert out == [repr(expected), "SimpleSpreadMPE SimpleSpreadMPE"]
