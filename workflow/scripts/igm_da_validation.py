"""Snakemake script: the IGM-DA validation table (docs/validation.md) from the validation-scale runs.

Inputs ``finals`` (the runs' final.json; metrics.parquet and config.yaml sit beside them) and
``published`` (config/published/igm_da.yaml); params ``scale`` and ``scale_description``; outputs
``csv`` and ``md``; one log file. The same table as ``marlrepro validation-table``.
"""

import logging
from pathlib import Path

from marlrepro.report.validation import validation_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = validation_report(
    run_dirs=[Path(final).parent for final in smk.input.finals],
    published_path=smk.input.published,
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md),
)
logging.info("wrote %s rows to %s\n%s", len(table), list(smk.output), table.to_string())
