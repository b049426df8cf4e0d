"""ME-IGM (config/me_igm.yaml): Table 1, the matrix game, beside config/published/me_igm.yaml: one
target per method (its runs, notes and heatmaps) and `me_igm_table1`, the whole table; Tables 2-4,
the SMACv2 win rates, each from its experiments' runs; Figures 2 and 4-6, learning curves in
panels beside the paper's words (marlrepro.report.curve_panels)."""

TABLE2_EXPERIMENTS = ("table2_protoss", "table2_terran", "table2_zerg")
LONG_ANNEAL = "qmix (epsilon over 1M steps)"  # Figure 5's third curve; its key in the published file


FIG2_PANELS = [
    curve_panel("zerg_5_vs_5", "q_gap", "max Q_tot − Q_tot(policies' joint action)",
                {"fop": cell_runs("me_igm", "fig2_fop_gap", "fop", "zerg_5_vs_5")}),
]
FIG4_PANELS = [
    curve_panel(layout, "test_return_mean", "mean test return",
                {algo: cell_runs("me_igm", "fig4_overcooked", algo, layout) for algo in experiment("me_igm", "fig4_overcooked").algos})
    for layout in ("cramped_room", "asymmetric_advantages")
]
FIG5_PANELS = [
    curve_panel("protoss_5_vs_5", "test_won_mean", "test win rate", {
        "me_qmix": cell_runs("me_igm", "table2_protoss", "me_qmix", "protoss_5_vs_5"),
        "qmix": cell_runs("me_igm", "table2_protoss", "qmix", "protoss_5_vs_5"),
        LONG_ANNEAL: cell_runs("me_igm", "fig5_long_anneal", "qmix", "protoss_5_vs_5"),
    }, limits=[0.0, 1.0]),
]
FIG6_SCANS = {"a": ("fig6_temperature_lr", "temperature lr {}"), "b": ("fig6_target_entropy", "target entropy {} per ally")}
FIG6_PANELS = [
    curve_panel(f"({panel}) {what}", metric, what, {
        label.format(member.sweep.value): [run.run_dir for run in member.runs()] for member in sweep("me_igm", name)
    })
    for panel, (name, label) in FIG6_SCANS.items()
    for metric, what in (("test_return_mean", "test return"), ("temperature", "temperature"))
]


localrules:
    me_igm,
    me_igm_table1,
    me_igm_table2,
    me_igm_table3,
    me_igm_table4,
    me_igm_fig2,
    me_igm_fig4,
    me_igm_fig5,
    me_igm_fig6,
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


rule me_igm_fig2:
    """Figure 2: FOP's gap between the largest Q_tot and the Q_tot of its policies' joint action on
    zerg_5_vs_5, over training."""
    input:
        finals=panel_files(FIG2_PANELS, "final.json"),
        metrics=panel_files(FIG2_PANELS, "metrics.parquet"),
        configs=panel_files(FIG2_PANELS, "config.yaml"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_fig2", "Figure 2", "me_igm_fig2_figure"),
    params:
        panels=FIG2_PANELS,
        title="ME-IGM Figure 2: FOP's Q-value gap on SMACv2 zerg_5_vs_5",
        figure="fig2",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=panel_setting("me_igm", FIG2_PANELS),
    log:
        "results/logs/report/me_igm_fig2.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curve_panels.py"


rule me_igm_fig4:
    """Figure 4: Overcooked test returns of ME-QMIX, ME-QPLEX, QMIX and QPLEX on two layouts."""
    input:
        finals=panel_files(FIG4_PANELS, "final.json"),
        metrics=panel_files(FIG4_PANELS, "metrics.parquet"),
        configs=panel_files(FIG4_PANELS, "config.yaml"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_fig4", "Figure 4", "me_igm_fig4_figure"),
    params:
        panels=FIG4_PANELS,
        title="ME-IGM Figure 4: Overcooked, mean test return",
        figure="fig4",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=panel_setting("me_igm", FIG4_PANELS),
    log:
        "results/logs/report/me_igm_fig4.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curve_panels.py"


rule me_igm_fig5:
    """Figure 5: ME-QMIX against QMIX and QMIX with a long epsilon anneal on protoss_5_vs_5 (the first
    two are Table 2's runs)."""
    input:
        finals=panel_files(FIG5_PANELS, "final.json"),
        metrics=panel_files(FIG5_PANELS, "metrics.parquet"),
        configs=panel_files(FIG5_PANELS, "config.yaml"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_fig5", "Figure 5", "me_igm_fig5_figure"),
    params:
        panels=FIG5_PANELS,
        title="ME-IGM Figure 5: entropy-driven exploration against a longer epsilon anneal, protoss_5_vs_5",
        figure="fig5",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=panel_setting("me_igm", FIG5_PANELS),
    log:
        "results/logs/report/me_igm_fig5.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curve_panels.py"


rule me_igm_fig6:
    """Figure 6: ME-QMIX's temperature learning rate (a) and target entropy (b) scanned: test return
    and the learned temperature."""
    input:
        finals=panel_files(FIG6_PANELS, "final.json"),
        metrics=panel_files(FIG6_PANELS, "metrics.parquet"),
        configs=panel_files(FIG6_PANELS, "config.yaml"),
        published="config/published/me_igm.yaml",
    output:
        **report_outputs("me_igm", "me_igm_fig6", "Figure 6", "me_igm_fig6_figure"),
    params:
        panels=FIG6_PANELS,
        title="ME-IGM Figure 6: the temperature's learning rate (a) and target entropy (b), protoss_5_vs_5",
        figure="fig6",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=panel_setting("me_igm", FIG6_PANELS),
    log:
        "results/logs/report/me_igm_fig6.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curve_panels.py"


rule me_igm:
    """Every ME-IGM result: Tables 1-4 and Figures 2 and 4-6."""
    input:
        rules.me_igm_table1.output,
        rules.me_igm_table1_qmix.output,
        rules.me_igm_table1_fop.output,
        rules.me_igm_table1_me_qmix.output,
        rules.me_igm_table2.output,
        rules.me_igm_table3.output,
        rules.me_igm_table4.output,
        rules.me_igm_fig2.output,
        rules.me_igm_fig4.output,
        rules.me_igm_fig5.output,
        rules.me_igm_fig6.output,
