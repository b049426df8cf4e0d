"""ME-IGM (config/me_igm.yaml): Table 1, the matrix game, beside config/published/me_igm.yaml: one
target per method (its runs, notes and heatmaps) and `me_igm_table1`, the whole table; Tables 2-4,
the SMACv2 win rates, each from its experiments' runs."""

TABLE2_EXPERIMENTS = ("table2_protoss", "table2_terran", "table2_zerg")


localrules:
    me_igm,
    me_igm_table1,
    me_igm_table2,
    me_igm_table3,
    me_igm_table4,
    me_igm_table1_qmix,
    me_igm_table1_fop,
    me_igm_table1_me_qmix,


rule me_igm_table1_qmix:
    """QMIX's learned Q_tot and greedy joint action per seed, their mean, and the published row."""
    input:
        finals=run_outputs("me_igm", "table1_qmix"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs(
            "me_igm", "me_igm_table1_qmix", "Table 1 (QMIX row)", "me_igm_table1_qmix_figure"
        ),
    params:
        table="table1",
        method="qmix",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(experiment("me_igm", "table1_qmix").runs()),
        published=matrix_game_published("config/published/me_igm.yaml", "table1", "qmix"),
    log:
        "results/logs/report/me_igm_table1_qmix.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/matrix_game_table.py"


rule me_igm_table1_fop:
    """FOP's learned Q_tot, local policies and most probable joint action per seed, beside the
    published row."""
    input:
        finals=run_outputs("me_igm", "table1_fop"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs(
            "me_igm", "me_igm_table1_fop", "Table 1 (FOP row)", "me_igm_table1_fop_figure"
        ),
    params:
        table="table1",
        method="fop",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(experiment("me_igm", "table1_fop").runs()),
        published=matrix_game_published("config/published/me_igm.yaml", "table1", "fop"),
    log:
        "results/logs/report/me_igm_table1_fop.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/matrix_game_table.py"


rule me_igm_table1_me_qmix:
    """ME-QMIX's learned Q_tot, local policies and most probable joint action per seed, beside the
    published row."""
    input:
        finals=run_outputs("me_igm", "table1_me_qmix"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs(
            "me_igm", "me_igm_table1_me_qmix", "Table 1 (ME-QMIX row)", "me_igm_table1_me_qmix_figure"
        ),
    params:
        table="table1",
        method="me_qmix",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(experiment("me_igm", "table1_me_qmix").runs()),
        published=matrix_game_published("config/published/me_igm.yaml", "table1", "me_qmix"),
    log:
        "results/logs/report/me_igm_table1_me_qmix.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/matrix_game_table.py"


rule me_igm_table1:
    """The whole Table 1: QMIX, FOP and ME-QMIX (the paper's rows) from their own tables."""
    input:
        qmix=rules.me_igm_table1_qmix.output.csv,
        fop=rules.me_igm_table1_fop.output.csv,
        me_qmix=rules.me_igm_table1_me_qmix.output.csv,
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_table1", "Table 1", "me_igm_table1_figure"),
    params:
        table="table1",
        methods=["qmix", "fop", "me_qmix"],
        scale=SCALE.name,
        scale_description=SCALE.description,
        optimum=matrix_game_published("config/published/me_igm.yaml", "table1", "qmix")["optimum"],
        cite=matrix_game_published("config/published/me_igm.yaml", "table1", "qmix")["cite"],
    log:
        "results/logs/report/me_igm_table1.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/matrix_game_summary.py"


rule me_igm_table2:
    """Table 2: the final SMACv2 win rate of ME-QMIX, ME-QPLEX, QMIX, QPLEX and FOP on 15 scenarios,
    beside every published row (MAPPO, IPPO and HASAC: the actor-critic issue; IMAX-PPO and InQ:
    published only)."""
    input:
        finals=[final for name in TABLE2_EXPERIMENTS for final in run_outputs("me_igm", name)],
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_table2", "Table 2", "me_igm_table2_figure"),
    params:
        table="table2",
        built=["me_qmix", "me_qplex", "qmix", "qplex", "fop"],
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting([run for name in TABLE2_EXPERIMENTS for run in experiment("me_igm", name).runs()]),
    log:
        "results/logs/report/me_igm_table2.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/score_table.py"


rule me_igm_table3:
    """Table 3: QMIX, +Entropy and +OPT (ME-QMIX) on three 5v5 scenarios, mean ± std over 4 seeds."""
    input:
        finals=run_outputs("me_igm", "table3"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_table3", "Table 3", "me_igm_table3_figure"),
    params:
        table="table3",
        built=["qmix", "qmix_entropy", "me_qmix"],
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(experiment("me_igm", "table3").runs()),
    log:
        "results/logs/report/me_igm_table3.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/score_table.py"


rule me_igm_table4:
    """Table 4: ME-QMIX with an MLP in place of the OPT against ME-QMIX (the paper's cells are empty)."""
    input:
        finals=run_outputs("me_igm", "table4"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_table4", "Table 4", "me_igm_table4_figure"),
    params:
        table="table4",
        built=["me_qmix_mlp", "me_qmix"],
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(experiment("me_igm", "table4").runs()),
    log:
        "results/logs/report/me_igm_table4.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/score_table.py"


rule me_igm:
    """Every ME-IGM result built so far (Figures 2 and 4-6 are still to come, issue 12)."""
    input:
        rules.me_igm_table1.output,
        rules.me_igm_table1_qmix.output,
        rules.me_igm_table1_fop.output,
        rules.me_igm_table1_me_qmix.output,
        rules.me_igm_table2.output,
        rules.me_igm_table3.output,
        rules.me_igm_table4.output,
