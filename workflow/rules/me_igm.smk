"""ME-IGM (config/me_igm.yaml): Table 1, the matrix game, beside config/published/me_igm.yaml."""


localrules:
    me_igm_table1_qmix,


rule me_igm_table1_qmix:
    """QMIX's learned Q_tot and greedy joint action per seed, their mean, and the published row."""
    input:
        finals=run_outputs("me_igm", "table1_qmix"),
        published="config/published/me_igm.yaml",
    output:
        csv=report(
            "results/tables/me_igm_table1_qmix.csv",
            caption="../report/me_igm_table1_qmix.rst",
            category="ME-IGM",
            subcategory="Table 1: matrix game",
        ),
        md="results/tables/me_igm_table1_qmix.md",
        png=report(
            "results/figures/me_igm_table1_qmix.png",
            caption="../report/me_igm_table1_qmix_figure.rst",
            category="ME-IGM",
            subcategory="Table 1: matrix game",
        ),
        pdf="results/figures/me_igm_table1_qmix.pdf",
    params:
        table="table1",
        method="qmix",
        scale=SCALE.name,
        scale_description=SCALE.description,
    log:
        "results/logs/report/me_igm_table1_qmix.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/matrix_game_table.py"
