"""The claim ledger (marlrepro.report.claims, docs/claims.md): each paper's claims, judged from our tables.

The claims (config/published/<paper>.yaml, under claims:) are parsed and checked here, when
Snakemake reads the workflow: a criterion naming an unknown table, row or column stops the
workflow with the file, the claim and the key. <paper>_claims writes
results/tables/<paper>_claims.{csv,md,html}; `claims` writes every paper's. A table that a claim
names but no rule makes at this scale is not an input: its claims
read "not judged: target not built".
"""

from marlrepro.report.claims import domains, parse_claims
from marlrepro.report.published import matrix_game, published_table1


localrules:
    claims,


CLAIMS_CATEGORY = "Claim ledger — does each paper's claim hold here?"  # sorts first in the report's menu
CLAIM_PAPERS = {"igm_da": "IGM-DA", "me_igm": "ME-IGM", "mifq": "MIFQ", "cesma": "CESMA"}
# target -> the rule that builds it at this scale (its csv and, for the report's links, its html and png)
LEDGER_TARGETS = {
    "igm_da_table1": rules.igm_da_table1,
    "igm_da_fig4": rules.igm_da_fig4,
    "igm_da_fig5ab": rules.igm_da_fig5ab,
    "igm_da_fig5c": rules.igm_da_fig5c,
    "igm_da_fig6": rules.igm_da_fig6,
    "igm_da_fig7": rules.igm_da_fig7,
    "me_igm_table1_qmix": rules.me_igm_table1_qmix,
    "me_igm_table1_fop": rules.me_igm_table1_fop,
    "me_igm_table1_me_qmix": rules.me_igm_table1_me_qmix,
    "me_igm_table2": rules.me_igm_table2,
    "me_igm_table3": rules.me_igm_table3,
    "me_igm_table4": rules.me_igm_table4,
    "me_igm_fig2": rules.me_igm_fig2,
    "me_igm_fig4": rules.me_igm_fig4,
    "me_igm_fig5": rules.me_igm_fig5,
    "me_igm_fig6": rules.me_igm_fig6,
    "mifq_table1": rules.mifq_table1,
    "mifq_fig3": rules.mifq_fig3,
    # CESMA's figures that this scale builds (cesma.smk; one of panels not planned alone has no rows,
    # its claims not judged)
    **{target: getattr(rules, target) for target, (settings, _, _, not_planned, _) in CESMA_FIGURES.items()
       if settings or not_planned},
    **({"cesma_fig9": rules.cesma_fig9} if CESMA_FIG9 else {}),
}
try:
    _DOMAINS = domains(
        ALGOS, published_table1("config/published/igm_da.yaml").maps,
        matrix_game("config/published/me_igm.yaml", "table1").actions,
        [scenario for key in MIFQ_TABLE1_KEYS for scenario in score_table(MIFQ_PUBLISHED, key).scenarios],
    )
    CLAIMS = {
        paper: parse_claims(
            paper, load_checked(f"config/published/{paper}.yaml", f"{SCHEMAS}/published.schema.yaml"),
            f"config/published/{paper}.yaml", _DOMAINS,
        )
        for paper in CLAIM_PAPERS
    }
except ConfigError as err:
    raise WorkflowError(str(err)) from None


def claim_tables(paper: str) -> dict[str, str]:
    """Target -> csv of every table ``paper``'s claims read that a rule builds at this scale."""
    names = dict.fromkeys(name for claim in CLAIMS[paper] for name in claim.tables())
    return {name: LEDGER_TARGETS[name].output.csv for name in names if name in LEDGER_TARGETS}


def claim_links(paper: str) -> list[dict]:
    """Per claim, for the caption: id, statement, source and ``refs``, one line of rst: a link to its
    built targets' table and figure (an rst link in a caption is the file's name), and the targets
    not built."""
    return [
        {"id": claim.id, "statement": claim.statement, "source": claim.source,
         "refs": " ".join([f"`{Path(output).name}`_" for target in claim.targets if target in LEDGER_TARGETS
                           for output in (LEDGER_TARGETS[target].output.html, LEDGER_TARGETS[target].output.png)]
                          + [f"({target}: not built)" for target in claim.targets if target not in LEDGER_TARGETS])}
        for claim in CLAIMS[paper]
    ]  # fmt: skip


for _paper, _label in CLAIM_PAPERS.items():

    rule:
        name:
            f"{_paper}_claims"
        input:
            published=f"config/published/{_paper}.yaml",
            **claim_tables(_paper),
        output:
            csv=f"results/tables/{_paper}_claims.csv",
            md=f"results/tables/{_paper}_claims.md",
            html=report(
                f"results/tables/{_paper}_claims.html", caption="../report/claims.rst",
                category=CLAIMS_CATEGORY, subcategory=_label, labels={"result": f"{_label}: claim ledger"},
            ),
        params:
            paper=_paper,
            label=_label,
            tables=list(claim_tables(_paper)),
            claims=claim_links(_paper),
            scale=SCALE.name,
            scale_description=SCALE.description,
        log:
            f"results/logs/report/{_paper}_claims.log",
        localrule: True
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/claims_ledger.py"


rule claims:
    """Every paper's claim ledger."""
    input:
        [f"results/tables/{paper}_claims.{ext}" for paper in CLAIM_PAPERS for ext in ("csv", "md", "html")],
