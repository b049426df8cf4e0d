"""Snakemake script: learning curves in panels beside the paper's words (marlrepro.report.curve_panels).

Inputs ``finals`` (the runs' final.json; metrics.parquet and config.yaml sit beside them) and
``published``; params ``panels`` (each: title, metric, ylabel, series label -> run directories,
optional limits), ``title``, ``figure`` (its key under ``figures:`` of the published file),
``scale``, ``scale_description``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file.
"""

import logging

from marlrepro.report.curve_panels import Panel, curve_panels_report
from marlrepro.report.published import figure_claims

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = curve_panels_report(
    panels=[Panel.from_dict(spec) for spec in smk.params.panels],
    title=smk.params.title,
    claims=figure_claims(smk.input.published, smk.params.figure),
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
