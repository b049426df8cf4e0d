"""Snakemake script: a method's learned Q_tot on a matrix game beside the paper's table.

Inputs ``finals`` (the runs' final.json) and ``published``; params ``table``, ``method``, ``scale``,
``scale_description``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file.
"""

import logging
from pathlib import Path

from marlrepro.report.build import matrix_game_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = matrix_game_report(
    run_dirs=[Path(final).parent for final in smk.input.finals],
    published_path=smk.input.published,
    table_key=smk.params.table,
    method=smk.params.method,
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
