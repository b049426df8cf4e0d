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


# Tables 2-4, the SMACv2 win rates: table id -> (its experiments, the published methods we build).
# IMAX-PPO and InQ are published only. Table 4's published cells are empty.
SCORE_TABLES = {
    "table2": (TABLE2_EXPERIMENTS, ["me_qmix", "me_qplex", "qmix", "qplex", "fop", "mappo", "ippo", "hasac"]),
    "table3": (("table3",), ["qmix", "qmix_entropy", "me_qmix"]),
    "table4": (("table4",), ["me_qmix_mlp", "me_qmix"]),
}

for _table, (_experiments, _built) in SCORE_TABLES.items():

    rule:
        """One of ME-IGM's SMACv2 score tables (SCORE_TABLES): each method's final win rate per
        scenario, mean ± std over seeds, beside every published row."""
        name:
            f"me_igm_{_table}"
        input:
            finals=[final for name in _experiments for final in run_outputs("me_igm", name)],
            published="config/published/me_igm.yaml",
        output:
            **report_outputs("me_igm", f"me_igm_{_table}", f"Table {_table[-1]}", f"me_igm_{_table}_figure"),
        params:
            table=_table,
            built=_built,
            scale=SCALE.name,
            scale_description=SCALE.description,
            setting=run_setting([run for name in _experiments for run in experiment("me_igm", name).runs()]),
        log:
            f"results/logs/report/me_igm_{_table}.log",
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/score_table.py"


# Figures 2 and 4-6: figure id -> (report subcategory, panels, title). Their rules differ only in these.
FIGURES = {
    "fig2": ("Figure 2", FIG2_PANELS, "ME-IGM Figure 2: FOP's Q-value gap on SMACv2 zerg_5_vs_5"),
    "fig4": ("Figure 4", FIG4_PANELS, "ME-IGM Figure 4: Overcooked, mean test return"),
    "fig5": ("Figure 5", FIG5_PANELS,
             "ME-IGM Figure 5: entropy-driven exploration against a longer epsilon anneal, protoss_5_vs_5"),
    "fig6": ("Figure 6", FIG6_PANELS,
             "ME-IGM Figure 6: the temperature's learning rate (a) and target entropy (b), protoss_5_vs_5"),
}

for _figure, (_subcategory, _panels, _title) in FIGURES.items():

    rule:
        """One of ME-IGM's curve figures (FIGURES): its panels' curves and a table of final values
        and averages over training, beside the paper's words (workflow/report/me_igm_<figure>.rst)."""
        name:
            f"me_igm_{_figure}"
        input:
            finals=panel_files(_panels, "final.json"),
            metrics=panel_files(_panels, "metrics.parquet"),
            configs=panel_files(_panels, "config.yaml"),
            published="config/published/me_igm.yaml",
        output:
            **report_outputs("me_igm", f"me_igm_{_figure}", _subcategory, f"me_igm_{_figure}_figure"),
        params:
            panels=_panels,
            title=_title,
            figure=_figure,
            scale=SCALE.name,
            scale_description=SCALE.description,
            setting=panel_setting("me_igm", _panels),
        log:
            f"results/logs/report/me_igm_{_figure}.log",
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
