"""Snakemake script: a paper's claim ledger (marlrepro.report.claims) from the tables its claims read.

Inputs: ``published`` (config/published/<paper>.yaml, whose claims were checked when the workflow
was parsed) and one csv per built table, named by target; params ``paper``, ``label``, ``tables`` (the
input names), ``scale``, ``scale_description``; outputs ``csv``, ``md``, ``html``; one log file.
"""

import logging

from marlrepro.config_schema import load_checked
from marlrepro.report.claims import TABLE_FORMATS, claims_report, parse_claims

smk = snakemake  # noqa: F821 -- injected by Snakemake
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
paper = smk.params.paper
path = smk.input.published
claims = parse_claims(paper, load_checked(path, "workflow/schemas/published.schema.yaml"), path)
built = {name: smk.input[name] for name in smk.params.tables}
table = claims_report(
    claims, {name: built.get(name) for name in TABLE_FORMATS},
    f"{smk.params.label}: claim ledger, each claim judged from our tables",
    smk.params.scale, smk.params.scale_description, (smk.output.csv, smk.output.md, smk.output.html),
)  # fmt: skip
logging.info("wrote %s claims to %s\n%s", len(table), list(smk.output), table[["claim", "verdict"]].to_string())
