"""Snakemake script: IGM-DA Figure 6 (appendix E), the plain Q-table against the DAgger Q-table on FrozenLake.

Params ``seeds`` (list of ints), ``episodes`` (training episodes per run), ``scale`` (its name) and
``scale_description``; input ``published`` (config/published/igm_da.yaml: the paper's claims);
outputs ``csv``, ``md``, ``html``, ``png``, ``pdf``; one log file. The tabular experiment runs here.
"""

import logging

from marlrepro.report.frozenlake_figure import frozenlake_report

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
table = frozenlake_report(
    seeds=[int(seed) for seed in smk.params.seeds],
    episodes=int(smk.params.episodes),
    scale=smk.params.scale,
    scale_description=smk.params.scale_description,
    table_paths=(smk.output.csv, smk.output.md, smk.output.html),
    figure_paths=(smk.output.png, smk.output.pdf),
    published_path=smk.input.published,
)
logging.info("wrote %s rows to %s\n%s", len(table), list(smk.output), table.to_string())
