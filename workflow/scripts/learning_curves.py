"""Snakemake script: learning curves (median, 25-75 % band over seeds) and final values per algorithm.

Input ``finals`` (the runs' final.json; metrics.parquet and config.yaml sit beside them); params
``metric``, ``label``, ``limits`` (the metric's range), ``scale``, ``scale_description``; outputs
``csv``, ``md``, ``html``, ``png``, ``pdf``.
"""

import logging
from pathlib import Path

from marlrepro.report.build import learning_curve_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = learning_curve_report(
    run_dirs=[Path(final).parent for final in smk.input.finals],
    metric=smk.params.metric,
    label=smk.params.label,
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
    limits=tuple(smk.params.limits),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
