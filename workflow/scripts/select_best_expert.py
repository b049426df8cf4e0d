"""Snakemake script: the best expert run of a task (expert_choice best; CESMA's SMAC experiment:
"we decentralize the one with the highest test win percentage").

Inputs ``finals`` (each expert run's final.json) and ``policies`` (their exported policies, in the
same order); outputs ``policy`` (a copy of the best run's) and ``choice`` (JSON: its run directory,
seed and best evaluation, which the figures read); one log file.
"""

import json
import logging
import os
import shutil

from marlrepro.experiments import best_expert_index

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
finals = []
for path in smk.input.finals:
    with open(path) as f:
        finals.append(json.load(f))
best = best_expert_index(finals)
shutil.copyfile(smk.input.policies[best], smk.output.policy)
choice = {"run_dir": os.path.dirname(smk.input.finals[best]), "seed": finals[best]["seed"], "best": finals[best]["best"]}
with open(smk.output.choice, "w") as f:
    json.dump(choice, f, indent=2)
logging.info("best of %d expert runs: %s", len(finals), choice)
