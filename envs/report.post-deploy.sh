#!/usr/bin/env bash
# Run by Snakemake inside the new conda env, once, from the workflow's working directory (the
# repository root): install marlrepro itself; the env file already holds its dependencies.
set -euo pipefail
python -m pip install --no-deps --editable .
