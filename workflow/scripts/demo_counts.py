"""Snakemake script: MIFQ Figure 3, final scores by number of demonstrations (marlrepro.report.demo_counts).

Inputs ``finals`` (the runs' final.json; config.yaml, holding demos.count, sits beside each; none at
a scale that plans no run of the figure), ``references`` (the tasks' expert.json) and ``published``;
params ``tables`` (the published tables by number of demonstrations), ``methods``, ``scale``,
``scale_description``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file.
"""

import logging
from pathlib import Path

from marlrepro.report.demo_counts import demo_counts_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = demo_counts_report(
    run_dirs=[Path(final).parent for final in smk.input.finals],
    published_path=smk.input.published,
    table_keys=smk.params.tables,
    methods=smk.params.methods,
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
    reference_files=list(smk.input.references),
)
logging.info("wrote %s rows (%s of ours) to %s", len(table), int((table["n_seeds"] > 0).sum()), list(smk.output))
