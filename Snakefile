"""marlrepro: train every run of the papers' experiments, then tables and figures beside the
published numbers.

    snakemake --cores all                               # paper scale (config/config.yaml)
    snakemake --cores all --config scale=smoke          # the whole DAG in minutes on 2 CPUs
    snakemake --cores all --profile slurm               # one Slurm job per training run
    snakemake --report report.html                      # every table and figure in one page

A paper adds config/<paper>.yaml (its experiment grid), config/published/<paper>.yaml (its
numbers), workflow/rules/<paper>.smk (its aggregate rules), and one line each to PAPERS, the
includes and rule all below.
"""

import os
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from marlrepro.errors import ConfigError
from marlrepro.experiments import plan_paper, scale_from_dict

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")

PAPERS = ("me_igm", "vd", "igm_da")
SCALES = sorted(path.stem for path in Path("config/scales").glob("*.yaml"))


def load_validated(path: str, schema: str) -> dict:
    """Read the YAML file ``path`` and validate it (filling defaults) against ``schema``."""
    if not Path(path).is_file():
        raise WorkflowError(f"{path}: no such file")
    data = yaml.safe_load(Path(path).read_text()) or {}
    validate(data, schema)
    return data


if config["scale"] not in SCALES:
    raise WorkflowError(f"scale {config['scale']!r}: valid scales are {', '.join(SCALES)} (config/scales/*.yaml)")
try:
    SCALE = scale_from_dict(
        config["scale"], load_validated(f"config/scales/{config['scale']}.yaml", "workflow/schemas/scale.schema.yaml")
    )
    # EXPERIMENTS[paper][experiment]: the scale merged over config/<paper>.yaml
    EXPERIMENTS = {
        paper: plan_paper(
            paper, load_validated(f"config/{paper}.yaml", "workflow/schemas/paper.schema.yaml"), SCALE, config, SCALES
        )
        for paper in PAPERS
    }
except ConfigError as err:
    raise WorkflowError(str(err)) from None

if config["tracking_uri"]:
    # Jobs inherit the environment (on Slurm through sbatch --export=ALL); an environment variable,
    # unlike a rule parameter, never makes Snakemake re-run training when the tracking store moves.
    os.environ["MLFLOW_TRACKING_URI"] = config["tracking_uri"]


include: "workflow/rules/common.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/me_igm.smk"
include: "workflow/rules/vd.smk"
include: "workflow/rules/igm_da.smk"


rule all:
    default_target: True
    input:
        rules.me_igm_table1_qmix.output,
        rules.vd_smax_curves.output,
        rules.igm_da.input,
