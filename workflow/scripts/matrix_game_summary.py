"""Snakemake script: the whole matrix-game table from the per-method tables, beside the paper's.

Inputs: one csv per method (named by method, in the paper's row order) and ``published``; params
``table``, ``scale``, ``scale_description``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``;
one log file.
"""

import logging

from marlrepro.report.build import matrix_game_summary_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = matrix_game_summary_report(
    method_tables={method: smk.input[method] for method in smk.params.methods},
    published_path=smk.input.published,
    table_key=smk.params.table,
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
