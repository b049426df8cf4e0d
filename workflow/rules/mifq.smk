"""MIFQ (config/mifq.yaml): Table 1 and Figure 2, beside config/published/mifq.yaml.

Per task, a MAPPO expert (experiments experts_*) keeps its best checkpoint; rules export_expert and
collect_demos (common.smk) turn it into the task's demo file and the expert's measured score over
it (expert.json); the imitation learners (table1_*) train on that file. `mifq_table1`: each task's
expert and each method's final greedy score (win rate on SMACv2 and Gold Miner, mean return on
MPE) beside the published Table 1 (its table1_winrate and table1_reward), each win rate also as a
fraction of its own expert's; `mifq_fig2`: the convergence curves of Table 1's runs, one panel per
task, the expert's score as a reference line; `mifq_table3` ... `mifq_table22`: the appendix's tables
by number of demonstrations, from the demos_<family> scans (and Table 1's runs at its count), at the
scales that plan them; `mifq_fig3`: Figure 3, SMACv2's and Gold Miner's of them as box plots, at every
scale (the cells a scale does not plan marked). The experiments a scale skips (smoke: all but MPE
simple_spread) are left out.
"""

from marlrepro.report.published import score_table


MIFQ_TABLE1 = ("table1_smacv2", "table1_miner", "table1_mpe")
MIFQ_PUBLISHED = "config/published/mifq.yaml"
# the published halves of Table 1 (one metric and unit each): the score of ours each one sets beside
MIFQ_TABLE1_KEYS = ["table1_winrate", "table1_reward"]


MIFQ_TABLE1_PLANNED = planned("mifq", MIFQ_TABLE1)
# Table 1's figure: a panel per SMACv2 race, one for Gold Miner, one for MPE (every task, at any scale)
MIFQ_GRID = yaml.safe_load(Path("config/mifq.yaml").read_text())["experiments"]
MIFQ_BACKENDS = {env.split(":", 1)[1]: env.split(":", 1)[0] for name in MIFQ_TABLE1 for env in MIFQ_GRID[name]["envs"]}
# each task's family, the suffix of its experiments (table1_<family>, demos_<family>) and the published
# group of MPE and Gold Miner: its backend's, MPE running on the JAX MPE (config/mifq.yaml)
MIFQ_FAMILY = {scenario: {"jaxmpe": "mpe"}.get(backend, backend) for scenario, backend in MIFQ_BACKENDS.items()}
MIFQ_GROUPS = {
    scenario: scenario.split("_", 1)[0] if family == "smacv2" else family for scenario, family in MIFQ_FAMILY.items()
}
MIFQ_TABLE1_RUNS = [run for exp in MIFQ_TABLE1_PLANNED for run in exp.runs()]
# each task's expert.json: the expert's measured score over its demonstrations (common.smk collect_demos)
MIFQ_EXPERTS = {env: exp.demo_files(env)["summary"] for exp in EXPERIMENTS["mifq"].values() if exp.demos_from
                for env in exp.envs}


# Figure 2's metric per backend (§5.4): win rate on SMACv2 and Gold Miner, mean return on MPE
MIFQ_WIN_RATE = ("test_won_mean", "test win rate", [0.0, 1.0])
MIFQ_METRICS = {"smacv2": MIFQ_WIN_RATE, "sc2": MIFQ_WIN_RATE, "miner": MIFQ_WIN_RATE,  # sc2: config.yaml backend
                "mpe": ("test_return_mean", "mean test return", None)}
MIFQ_METRICS["jaxmpe"] = MIFQ_METRICS["mpe"]
MIFQ_FIG2_PANELS = [
    curve_panel(scenario, *MIFQ_METRICS[backend][:2],
                {algo: cell_runs("mifq", exp.name, algo, scenario) for algo in exp.algos},
                MIFQ_METRICS[backend][2], references={"expert (its demonstrations)": MIFQ_EXPERTS[env]})
    for exp in MIFQ_TABLE1_PLANNED
    for env in exp.envs
    for backend, scenario in [env.split(":", 1)]
]


localrules:
    mifq,
    mifq_table1,
    mifq_fig2,
    mifq_fig3,


rule mifq_table1:
    """Table 1: per task, our expert's measured score over its demonstrations and each method's final
    greedy score (mean ± std over seeds), beside the published table, and as fractions of the expert's."""
    input:
        finals=[f"{run.run_dir}/final.json" for run in MIFQ_TABLE1_RUNS],
        references=[MIFQ_EXPERTS[env] for exp in MIFQ_TABLE1_PLANNED for env in exp.envs],
        published=MIFQ_PUBLISHED,
    output:
        **report_outputs("mifq", "mifq_table1", "Table 1", "mifq_table1_figure"),
    params:
        table=MIFQ_TABLE1_KEYS,
        groups=MIFQ_GROUPS,
        built=["expert", *dict.fromkeys(algo for exp in MIFQ_TABLE1_PLANNED for algo in exp.algos)],
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(MIFQ_TABLE1_RUNS),
        demos=", ".join(f"{count} on {exp.name.removeprefix('table1_')}" for exp in MIFQ_TABLE1_PLANNED
                        for count in sorted({run.settings["demos.count"] for run in exp.runs()})),
    log:
        "results/logs/report/mifq_table1.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/score_table.py"


rule mifq_fig2:
    """Figure 2: the convergence curves of Table 1's runs, one panel per task, methods as curves and
    the task's expert as a reference line."""
    input:
        finals=panel_files(MIFQ_FIG2_PANELS, "final.json"),
        metrics=panel_files(MIFQ_FIG2_PANELS, "metrics.parquet"),
        configs=panel_files(MIFQ_FIG2_PANELS, "config.yaml"),
        references=[MIFQ_EXPERTS[env] for exp in MIFQ_TABLE1_PLANNED for env in exp.envs],
        published=MIFQ_PUBLISHED,
    output:
        **report_outputs("mifq", "mifq_fig2", "Figure 2", "mifq_fig2_figure"),
    params:
        panels=MIFQ_FIG2_PANELS,
        title="MIFQ Figure 2: convergence curves (win rate on SMACv2 and Gold Miner, return on MPE)",
        figure="fig2",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=panel_setting("mifq", MIFQ_FIG2_PANELS),
    log:
        "results/logs/report/mifq_fig2.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curve_panels.py"


# The appendix's tables by number of demonstrations (config/published/mifq.yaml table3 ... table22):
# each from the runs that this scale plans at its count, the demos_<family> scan's member of that
# value or, at Table 1's count, Table 1's runs. A table none of whose runs this scale plans has no
# rule (smoke plans Table 18 alone, from Table 1's 8 demonstrations; validation Tables 8, 14 and 22).
MIFQ_COUNT_TABLES = {number: score_table(MIFQ_PUBLISHED, f"table{number}") for number in range(3, 23)}
MIFQ_APPENDIX = {}
for _number, _published in MIFQ_COUNT_TABLES.items():
    _family = MIFQ_FAMILY[_published.scenarios[0]]
    _from_table1 = [exp for exp in planned("mifq", [f"table1_{_family}"])
                    if {run.settings["demos.count"] for run in exp.runs()} == {_published.demos}]
    _from_scan = [exp for exp in sweep_members(EXPERIMENTS["mifq"], f"demos_{_family}") if exp.sweep.value == _published.demos]
    _runs = [run for exp in _from_table1 + _from_scan for run in exp.runs() if run.algo in _published.labels]
    if _runs:
        MIFQ_APPENDIX[_number] = (_published, _runs)

for _number, (_published, _runs) in MIFQ_APPENDIX.items():

    rule:
        """One of the appendix's tables by number of demonstrations (MIFQ_APPENDIX): each task's expert
        and each method's final score beside the published table, and as fractions of the expert's."""
        name:
            f"mifq_table{_number}"
        localrule: True
        input:
            finals=[f"{run.run_dir}/final.json" for run in _runs],
            references=sorted({MIFQ_EXPERTS[run.env] for run in _runs}),
            published=MIFQ_PUBLISHED,
        output:
            **report_outputs("mifq", f"mifq_table{_number}", f"Table {_number}", caption="mifq_appendix"),
        params:
            table=f"table{_number}",
            built=["expert", *dict.fromkeys(run.algo for run in _runs)],
            number=_number,
            demos=_published.demos,
            scale=SCALE.name,
            scale_description=SCALE.description,
            setting=run_setting(_runs),
        log:
            f"results/logs/report/mifq_table{_number}.log",
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/score_table.py"


# Figure 3 (§5.4): the SMACv2 and Gold Miner tables by number of demonstrations (3-14) as box plots,
# every cell of the paper's grid drawn, from the runs of them that this scale plans (MIFQ_APPENDIX);
# its methods are the scans' (Table 1's but BC). Smoke plans none: the figure then marks every count
# "not planned"; validation plans Table 1's 4096 alone.
MIFQ_FIG3_TABLES = [number for number, table in MIFQ_COUNT_TABLES.items()
                    if MIFQ_FAMILY[table.scenarios[0]] in ("smacv2", "miner")]
MIFQ_FIG3_METHODS = MIFQ_GRID["demos_smacv2"]["algos"]
MIFQ_FIG3_RUNS = [run for number in MIFQ_FIG3_TABLES if number in MIFQ_APPENDIX for run in MIFQ_APPENDIX[number][1]
                  if run.algo in MIFQ_FIG3_METHODS]


rule mifq_fig3:
    """Figure 3: each method's final win rate over seeds by number of demonstrations, one panel per
    SMACv2 and Gold Miner task, beside the appendix tables' cells; the cells this scale does not plan
    marked as such."""
    input:
        finals=[f"{run.run_dir}/final.json" for run in MIFQ_FIG3_RUNS],
        configs=[f"{run.run_dir}/config.yaml" for run in MIFQ_FIG3_RUNS],
        references=sorted({MIFQ_EXPERTS[run.env] for run in MIFQ_FIG3_RUNS}),
        published=MIFQ_PUBLISHED,
    output:
        **report_outputs("mifq", "mifq_fig3", "Figure 3", "mifq_fig3_figure"),
    params:
        tables=[f"table{number}" for number in MIFQ_FIG3_TABLES],
        methods=MIFQ_FIG3_METHODS,
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(MIFQ_FIG3_RUNS) if MIFQ_FIG3_RUNS else "none: no run of Figure 3 is planned at this scale",
    log:
        "results/logs/report/mifq_fig3.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/demo_counts.py"


rule mifq:
    """Every MIFQ result: Table 1, Figures 2 and 3 and the appendix's tables by number of
    demonstrations that this scale plans (with their experts and demonstrations)."""
    input:
        rules.mifq_table1.output,
        rules.mifq_fig2.output,
        rules.mifq_fig3.output,
        [getattr(rules, f"mifq_table{number}").output for number in MIFQ_APPENDIX],
