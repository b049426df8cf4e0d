"""Snakemake script: our final win rates per (scenario, method) beside a published score table.

Inputs ``finals`` (the runs' final.json), ``published`` and optionally ``references`` (JSON files in
final.json's fields that are ours too: MIFQ's experts, each one's score over its demonstrations);
params ``table`` (a published table's key, or a list of them set side by side), ``built`` (the
published methods marlrepro builds), ``scale``, ``scale_description``, optionally ``groups`` (the
figure's panel of each scenario); outputs ``csv``, ``md``,
``html``, ``png``, ``pdf``; one log file.
"""

import logging
from pathlib import Path

from marlrepro.report.score_table import score_table_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = score_table_report(
    run_dirs=[Path(final).parent for final in smk.input.finals],
    published_path=smk.input.published,
    table_key=smk.params.table,
    built=smk.params.built,
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
    reference_files=list(getattr(smk.input, "references", [])),
    groups=getattr(smk.params, "groups", None),
)
logging.info("wrote %s rows to %s", len(table), list(smk.output))
