"""Snakemake script: CESMA's Figure 9 (appendix A.2; marlrepro.report.cesma_loss).

Inputs ``finals`` and ``metrics`` (the DAgger runs' final.json and metrics.parquet) and
``published``; params ``settings`` (each: title, students, agents: each agent's series name, or none
where the agents are alike), ``title``, ``not_planned`` (the tasks this scale plans no run of),
``scale``, ``scale_description``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file.
"""

import logging

from marlrepro.report.cesma_loss import LossSetting, loss_report
from marlrepro.report.published import figure_claims

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = loss_report(
    settings=[LossSetting.from_dict(spec) for spec in smk.params.settings],
    title=smk.params.title,
    not_planned=smk.params.not_planned,
    claims=figure_claims(smk.input.published, "fig9"),
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
