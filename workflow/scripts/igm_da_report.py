"""Snakemake script: an IGM-DA report item (Table 1, Figs. 3, 4, 5(a, b), 5(c), 7) from the runs' outputs.

Inputs ``finals`` (the runs' final.json; metrics.parquet, config.yaml and action_values.parquet sit
beside them) and ``published`` (config/published/igm_da.yaml); params ``kind`` (table1, curves,
sight_sweep or lossy_decomposition), ``scale``, ``scale_description`` and, for ``kind=curves``,
``title``; outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file.
"""

import logging
from pathlib import Path

from marlrepro.errors import unknown_choice
from marlrepro.report import igm_da

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
common = {
    "run_dirs": [Path(final).parent for final in smk.input.finals],
    "published_path": smk.input.published,
    "scale": smk.params.scale,
    "scale_description": smk.params.scale_description,
    "table_paths": (smk.output.csv, smk.output.md, smk.output.html),
    "figure_paths": (smk.output.png, smk.output.pdf),
}
builders = {
    "table1": lambda: igm_da.table1_report(**common),
    "curves": lambda: igm_da.curves_report(title=smk.params.title, **common),
    "sight_sweep": lambda: igm_da.sight_sweep_report(**common),
    "lossy_decomposition": lambda: igm_da.lossy_decomposition_report(**common),
}
if smk.params.kind not in builders:
    raise unknown_choice("params.kind", smk.params.kind, builders)
table = builders[smk.params.kind]()
logging.info("%s: wrote %s rows to %s\n%s", smk.params.kind, len(table), list(smk.output), table.to_string())
