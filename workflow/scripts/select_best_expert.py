"""Snakemake script: the best expert run of a task (expert_choice best; CESMA's SMAC experiment:
"we decentralize the one with the highest test win percentage").

Inputs ``finals`` (each expert run's final.json) and ``policies`` (their exported policies, in the
same order); outputs ``policy`` (a copy of the best run's) and ``choice`` (JSON: its run directory,
seed and best evaluation, which the figures read); one log file.
"""

import logging
import os
import shutil

from marlrepro.experiments import best_expert_index
from marlrepro.io_utils import atomic_write, write_json
from marlrepro.report.runs import read_final

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
run_dirs = [os.path.dirname(path) for path in smk.input.finals]
finals = [read_final(run_dir) for run_dir in run_dirs]
best = best_expert_index(finals)
atomic_write(smk.output.policy, lambda tmp: shutil.copyfile(smk.input.policies[best], tmp))
choice = {"run_dir": run_dirs[best], "seed": finals[best]["seed"], "best": finals[best]["best"]}
write_json(smk.output.choice, choice)
logging.info("best of %d expert runs: %s", len(finals), choice)
