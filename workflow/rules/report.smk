"""What `snakemake --report results/report.html` shows: the workflow description (workflow.rst), then
the results, one category per paper (REPORT_CATEGORIES) and one subcategory per table or figure.

Each result puts two files in the report (report_outputs): its table as a standalone HTML page
(ours, published and the difference side by side; Snakemake shows HTML inline but only offers a
csv for download) and its figure (png). The captions, workflow/report/<target>.rst, are Jinja
templates over the rule's job: they read params.scale (a smoke result carries a banner),
params.scale_description and params.setting (run_setting: the runs behind the result), and the
paper's numbers only through params read from config/published/ (e.g. matrix_game_published), never
written into the caption.
"""

from marlrepro.report.captions import matrix_game_published, run_setting


report: "../report/workflow.rst"


REPORT_CATEGORIES = {
    "me_igm": "ME-IGM — maximum-entropy IGM (Tables 1–4, Figures 2 and 4–6)",
    "vd": "Foundation — value decomposition on SMAX",
    "igm_da": "IGM-DA — Rethinking IGM (Table 1, Figures 3–7)",
    "mifq": "MIFQ — inverse factorized Q-learning from demonstrations (Tables 1, 3–22 and Figures 2, 3)",
    # every category sorts after the claim ledger's ("Claim ledger ..."), which the menu lists first: "CESMA" would not
    "cesma": "Decentralised imitation (CESMA) — a centralised expert decentralised by DAgger (Figures 4 to 9)",
}


def report_outputs(paper: str, target: str, subcategory: str, figure_caption: str | None = None,
                   caption: str | None = None) -> dict:
    """The outputs of a table-and-figure target: results/tables/<target>.{csv,md,html} and
    results/figures/<target>.{png,pdf}, the html and png registered in the report under ``paper``'s
    category. Both use workflow/report/<target>.rst (or ``caption``.rst, shared by targets of one
    kind) unless the figure has ``figure_caption``."""

    def item(path: str, caption: str, what: str) -> str:
        return report(
            path, caption=f"../report/{caption}.rst", category=REPORT_CATEGORIES[paper], subcategory=subcategory,
            labels={"result": f"{subcategory}: {what}"},
        )

    return {
        "csv": f"results/tables/{target}.csv",
        "md": f"results/tables/{target}.md",
        "html": item(f"results/tables/{target}.html", caption or target, "table, ours beside the paper"),
        "png": item(f"results/figures/{target}.png", figure_caption or caption or target, "figure"),
        "pdf": f"results/figures/{target}.pdf",
    }
