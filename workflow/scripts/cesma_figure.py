"""Snakemake script: CESMA's Figure 4, 5, 6, 7 or 8 (marlrepro.report.cesma).

Inputs ``finals`` (the runs' final.json; metrics.parquet and config.yaml sit beside them) and
``published``; params ``settings`` (each: title, students, experts, baselines: label -> run
directories, label, expert), ``title``, ``figure`` (its key under ``figures:`` of the published
file), ``chained`` (Figures 4, 5 and 7: the expert's curve, then the decentralised agents' after it),
``levels`` (Figure 6: the baselines as final levels; Figure 8: as curves), ``not_planned`` (the
panels this scale plans no run of), ``metric`` (the curves' ``metrics.parquet`` column), ``scale``,
``scale_description``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file.
"""

import logging

from marlrepro.report.cesma import cesma_report
from marlrepro.report.cesma_plan import Setting
from marlrepro.report.published import figure_claims

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = cesma_report(
    settings=[Setting.from_dict(spec) for spec in smk.params.settings],
    title=smk.params.title,
    chained=smk.params.chained,
    levels=smk.params.levels,
    not_planned=smk.params.not_planned,
    metric=smk.params.metric,
    claims=figure_claims(smk.input.published, smk.params.figure),
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
