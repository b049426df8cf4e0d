"""Test hook: kill a run at a named phase boundary, as a node failure would.

``MARLREPRO_FAULT=<phase>`` makes :func:`maybe_crash` send SIGKILL to the whole process group of
the caller when the run reaches that phase (under Snakemake the group holds Snakemake itself, so
this is ``kill -9`` of the workflow, as when a node dies). Only ``tests/test_faults.py`` sets it;
unset, :func:`maybe_crash` does nothing. The phases, in the order a run meets them:

* ``mid_training``: just after the first periodic checkpoint of the training loop;
* ``after_last_checkpoint``: after the checkpoint of the final state, before any final output;
* ``after_final``: after ``final.json`` is written, before MLflow logging;
* ``during_tracking``: in the middle of MLflow logging, after the run's metrics are sent and before
  its artifacts and its end (the store is left with a half-logged ``RUNNING`` run).
"""

from __future__ import annotations

import os
import signal

from marlrepro.errors import unknown_choice

FAULT_ENV = "MARLREPRO_FAULT"
PHASES = ("mid_training", "after_last_checkpoint", "after_final", "during_tracking")


def maybe_crash(phase: str) -> None:
    """SIGKILL this process group if ``MARLREPRO_FAULT`` names ``phase``; otherwise return."""
    wanted = os.environ.get(FAULT_ENV, "")
    if wanted and wanted not in PHASES:
        raise unknown_choice(FAULT_ENV, wanted, PHASES, "phase")
    if wanted == phase:
        os.killpg(os.getpgrp(), signal.SIGKILL)
