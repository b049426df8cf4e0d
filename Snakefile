"""marlrepro: train every run of the papers' experiments, then tables and figures beside the
published numbers.

    snakemake --cores all                               # paper scale (config/config.yaml)
    snakemake --cores all --config scale=smoke          # the whole DAG in minutes on 2 CPUs
    snakemake --cores all --profile slurm               # one Slurm job per pack of seeds (or run)
    snakemake --report report.html                      # every table and figure in one page

A paper adds config/<paper>.yaml (its experiment grid), config/published/<paper>.yaml (its
numbers and, under claims:, its claims), workflow/rules/<paper>.smk (its aggregate rules), and one
line each to PAPERS, the includes and rule all below (and CLAIM_PAPERS, workflow/rules/claims.smk).
"""

import os
from pathlib import Path

import yaml  # for workflow/rules/igm_da.smk (x-frozenlake of config/igm_da.yaml) and mifq.smk (its tasks)
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from marlrepro.config import read_settings
from marlrepro.config_schema import check_schema, load_checked
from marlrepro.errors import ConfigError, unknown_choice
from marlrepro.experiments import plan_paper, scale_from_dict

min_version("9.0")


configfile: "config/config.yaml"


PAPERS = ("me_igm", "vd", "igm_da", "mifq", "cesma")
SCHEMAS = "workflow/schemas"
DEMOS_CONFIG = "config/demos.yaml"

# Every config file is checked on every invocation, before any job starts: against its schema, then
# names (scales, algorithms, envs), train settings and each planned run (marlrepro.experiments).
try:
    check_schema(config, f"{SCHEMAS}/config.schema.yaml", "config/config.yaml or --config")
    SCALES = {
        path.stem: scale_from_dict(path.stem, load_checked(path, f"{SCHEMAS}/scale.schema.yaml"))
        for path in sorted(Path("config/scales").glob("*.yaml"))
    }
    if config["scale"] not in SCALES:
        raise unknown_choice("config/config.yaml or --config: scale", config["scale"], SCALES, "scale")
    SCALE = SCALES[config["scale"]]
    ALGOS = {path.stem: read_settings(path) for path in sorted(Path("config/algos").glob("*.yaml"))}
    # how `marlrepro collect-demos` plays an expert experiment's demonstrations, and their caps
    DEMOS = load_checked(DEMOS_CONFIG, f"{SCHEMAS}/demos.schema.yaml")
    # EXPERIMENTS[paper][experiment]: the scale merged over config/<paper>.yaml
    EXPERIMENTS = {
        paper: plan_paper(
            paper, load_checked(f"config/{paper}.yaml", f"{SCHEMAS}/paper.schema.yaml"), SCALE, config, SCALES, ALGOS,
            DEMOS,
        )
        for paper in PAPERS
    }
    for path in sorted(Path("config/published").glob("*.yaml")):
        load_checked(path, f"{SCHEMAS}/published.schema.yaml")
except ConfigError as err:
    raise WorkflowError(str(err)) from None

if config["tracking_uri"]:
    # Jobs inherit the environment (on Slurm through sbatch --export=ALL); an environment variable,
    # unlike a rule parameter, never makes Snakemake re-run training when the tracking store moves.
    os.environ["MLFLOW_TRACKING_URI"] = config["tracking_uri"]
if config["jax_cache"]:  # the same way: the jobs' compiled rollouts, shared between jobs
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.abspath(config["jax_cache"])
    # every program, not only those that took JAX's default 1 s to compile: a job's many small
    # programs (its evaluation, its start-up ops) compiled 56 times in 6 s per smoke job before
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


include: "workflow/rules/common.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/me_igm.smk"
include: "workflow/rules/vd.smk"
include: "workflow/rules/igm_da.smk"
include: "workflow/rules/mifq.smk"
include: "workflow/rules/cesma.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        rules.me_igm.input,
        rules.vd_smax_curves.output,
        rules.igm_da.input,
        rules.mifq.input,
        rules.cesma.input,
        rules.claims.input,
