"""CESMA (config/cesma.yaml): Figures 4 to 9, whose claims config/published/cesma.yaml records.

Per MPE setting, a centralised DDPG expert (experiments experts_*) keeps each run's best checkpoint;
rule export_expert (common.smk) exports it, and DAgger (cesma_*, expert_from) decentralises it, seed
s learning from the expert of seed s; MADDPG and independent DDPG (baselines_*) train on the same
settings. `cesma_fig5`: per setting, the expert's training curve, then the decentralised agents'
continuing after it on the samples axis, against MADDPG; `cesma_fig6`: the decentralised agents'
curve against converged MADDPG and independent DDPG (dashed final levels) and the exported expert
(dotted); both medians with min/max envelopes over seeds (marlrepro.report.cesma). `cesma_fig7`: the
DQN experts (exponential joint-action DQN, centralised VDN; experts_joint_dqn, experts_central_vdn)
and the one-at-a-time expert (experts_one_at_a_time), each chained with its decentralisation (cesma_*
of the same name), one panel per expert; `cesma_fig8`: DAgger with per-agent datasets
(cesma_per_agent) against the shared dataset (cesma_nav3's runs of the same experts), both as curves.
`cesma_fig4`: SMAC 3s5z (SMAX), the recurrent centralised VDN expert's test win rate (experts_smac),
then its recurrent students' (cesma_smac, every seed imitating the best expert run: expert_choice
best, rule select_best_expert) on the samples axis, against IQL (baselines_smac), Figure 5's kind on
the win rate. `cesma_fig9`: cesma_nav3's DAgger runs, the test return against the supervised loss
(per agent on the non-homogeneous task) and each agent's loss against episode
(marlrepro.report.cesma_loss). `cesma`: every CESMA target this workflow builds. The settings a
scale skips (smoke: all but simple_spread) are left out of Figures 5, 6 and 8; the panels of
Figures 4, 7 and 9 that a scale plans no run of (Figure 4's 3s5z is skipped at smoke) are drawn
"not planned".
"""

from marlrepro.report.cesma_plan import CESMA, MADDPG, plan_settings, settings_run_dirs


# the paper's panels, in its order; a scale plans some of them (config/cesma.yaml scales)
CESMA_SETTINGS = ("simple_spread", "simple_spread_hetero", "simple_spread_6", "simple_spread_hetero_6",
                  "simple_speaker_listener", "simple_reference", "simple_reference_3a5l")
CESMA_BASELINES = {"maddpg": MADDPG, "ddpg": "independent DDPG"}  # algo -> series label
CESMA_RUNS = {run.run_dir: run for exp in EXPERIMENTS["cesma"].values() for run in exp.runs()}
# Figures 5 and 6's students: DAgger of the DDPG experts (Figures 7 and 8 have their own)
CESMA_FIG5_STUDENTS = ("cesma_nav3", "cesma_nav6", "cesma_speaker_listener", "cesma_comm")
CESMA_STUDENTS = [run for run in CESMA_RUNS.values() if run.expert_from and run.experiment in CESMA_FIG5_STUDENTS]
CESMA_PUBLISHED = "config/published/cesma.yaml"
CESMA_METRICS = {"cesma_fig4": "test_won_mean"}  # the figure's curve (the others: test_return_mean)
# per figure, each planned setting (marlrepro.report.cesma_plan.Setting, as rule params): Figure 5
# against MADDPG, Figure 6 against MADDPG and independent DDPG
CESMA_FIG5 = plan_settings(CESMA_STUDENTS, list(CESMA_RUNS.values()), CESMA_SETTINGS, {"maddpg": MADDPG})
CESMA_FIG6 = plan_settings(CESMA_STUDENTS, list(CESMA_RUNS.values()), CESMA_SETTINGS, CESMA_BASELINES)
# Figure 7: one panel per expert (its students' experiment, student series, expert series, the
# paper's setting); a panel this scale plans no run of is drawn "not planned"
CESMA_FIG7_PANELS = (("cesma_joint_dqn", "CESMA (exponential DQN)", "exponential DQN expert", "simple_spread_hetero"),
                     ("cesma_central_vdn", "CESMA (centralised VDN)", "centralised VDN expert", "simple_spread_hetero"),
                     ("cesma_one_at_a_time", "CESMA (one-at-a-time expert)", "one-at-a-time expert", "simple_spread_6"))
CESMA_FIG7, CESMA_FIG7_NOT_PLANNED = [], []
for _experiment, _label, _expert, _scenario in CESMA_FIG7_PANELS:
    _panel = plan_settings([run for run in CESMA_RUNS.values() if run.experiment == _experiment], [],
                           [_scenario], {}, label=_label, expert=_expert)
    CESMA_FIG7 += _panel
    if not _panel:
        CESMA_FIG7_NOT_PLANNED.append(f"{_scenario}: {_label}")
# Figure 8: the per-agent datasets' students against the shared dataset's (cesma_nav3) of each setting
CESMA_PER_AGENT = "CESMA (per-agent datasets)"
CESMA_FIG8 = plan_settings([run for run in CESMA_RUNS.values() if run.experiment == "cesma_per_agent"],
                           [run for run in CESMA_RUNS.values() if run.experiment == "cesma_nav3"],
                           CESMA_SETTINGS, {"dagger": CESMA}, label=CESMA_PER_AGENT)
# Figure 4: SMAC 3s5z, the recurrent expert then its recurrent students, against IQL, on the win rate
CESMA_FIG4 = plan_settings([run for run in CESMA_RUNS.values() if run.experiment == "cesma_smac"],
                           [run for run in CESMA_RUNS.values() if run.experiment == "baselines_smac"],
                           ["3s5z"], {"iql": "IQL"})
CESMA_FIG4_NOT_PLANNED = [] if CESMA_FIG4 else ["3s5z: CESMA and IQL"]
# target -> (settings, chained, baselines as final levels, panels not planned, report label); a
# figure with neither settings nor panels not planned is not built (Figure 7 at validation scale)
CESMA_FIGURES = {
    "cesma_fig4": (CESMA_FIG4, True, False, CESMA_FIG4_NOT_PLANNED, "Figure 4"),
    "cesma_fig5": (CESMA_FIG5, True, True, [], "Figure 5"),
    "cesma_fig6": (CESMA_FIG6, False, True, [], "Figure 6"),
    "cesma_fig7": (CESMA_FIG7, True, True, CESMA_FIG7_NOT_PLANNED if CESMA_FIG7 else [], "Figure 7"),
    "cesma_fig8": (CESMA_FIG8, False, False, [], "Figure 8"),
}
CESMA_TITLES = {
    "cesma_fig4": "CESMA Figure 4: SMAC 3s5z, the centralised expert, then its decentralisation, against IQL",
    "cesma_fig5": "CESMA Figure 5: the centralised expert, then its decentralisation, against MADDPG",
    "cesma_fig6": "CESMA Figure 6: the decentralised expert against converged MADDPG and independent DDPG",
    "cesma_fig7": "CESMA Figure 7: DQN experts and the one-at-a-time expert, then their decentralisation",
    "cesma_fig8": "CESMA Figure 8: DAgger with per-agent datasets against the shared dataset",
}


for _target, (_settings, _chained, _levels, _not_planned, _label) in CESMA_FIGURES.items():
    if not _settings and not _not_planned:  # a scale that plans no CESMA setting builds no figure
        continue

    rule:
        """One of CESMA's MPE figures (CESMA_FIGURES): reward against samples per setting, medians
        with min/max envelopes over seeds, and its table."""
        name:
            _target
        localrule: True
        input:
            finals=[f"{run}/final.json" for run in settings_run_dirs(_settings)],
            metrics=[f"{run}/metrics.parquet" for run in settings_run_dirs(_settings)],
            configs=[f"{run}/config.yaml" for run in settings_run_dirs(_settings)],
            choices=[spec["choice"] for spec in _settings if "choice" in spec],
            published=CESMA_PUBLISHED,
        output:
            **report_outputs("cesma", _target, _label, f"{_target}_figure"),
        params:
            settings=_settings,
            title=CESMA_TITLES[_target],
            figure=_target.removeprefix("cesma_"),
            chained=_chained,
            levels=_levels,
            not_planned=_not_planned,
            metric=CESMA_METRICS.get(_target, "test_return_mean"),
            scale=SCALE.name,
            scale_description=SCALE.description,
            setting=run_setting([CESMA_RUNS[run] for run in settings_run_dirs(_settings)]) if _settings
            else "no run planned at this scale",
        log:
            f"results/logs/report/{_target}.log",
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/cesma_figure.py"


# Figure 9 (appendix A.2): cesma_nav3's DAgger runs (no training of its own), per task; each agent's
# series name in agent order (the non-homogeneous kinds of marlrepro.envs.jax_mpe.HETERO_KINDS)
CESMA_FIG9_TASKS = {"simple_spread": [], "simple_spread_hetero": ["big and slow", "medium", "small and fast"]}
CESMA_FIG9 = [{"title": _task, "students": _students, "agents": _agents}
              for _task, _agents in CESMA_FIG9_TASKS.items()
              if (_students := [run.run_dir for run in CESMA_RUNS.values() if run.experiment == "cesma_nav3"
                                and run.env.split(":", 1)[1] == _task])]
CESMA_FIG9_NOT_PLANNED = [task for task in CESMA_FIG9_TASKS if task not in {spec["title"] for spec in CESMA_FIG9}]
CESMA_FIG9_RUNS = [run for spec in CESMA_FIG9 for run in spec["students"]]

if CESMA_FIG9:

    rule cesma_fig9:
        """CESMA's Figure 9: the decentralised agents' test return against their supervised loss, and
        each agent's loss against episode (marlrepro.report.cesma_loss), and its table."""
        localrule: True
        input:
            finals=[f"{run}/final.json" for run in CESMA_FIG9_RUNS],
            metrics=[f"{run}/metrics.parquet" for run in CESMA_FIG9_RUNS],
            published=CESMA_PUBLISHED,
        output:
            **report_outputs("cesma", "cesma_fig9", "Figure 9", "cesma_fig9_figure"),
        params:
            settings=CESMA_FIG9,
            title="CESMA Figure 9: reward against supervised loss, and loss against episode, per agent",
            not_planned=CESMA_FIG9_NOT_PLANNED,
            scale=SCALE.name,
            scale_description=SCALE.description,
            setting=run_setting([CESMA_RUNS[run] for run in CESMA_FIG9_RUNS]),
        log:
            "results/logs/report/cesma_fig9.log",
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/cesma_fig9.py"


rule cesma:
    """Every CESMA result this scale builds: Figures 4 to 9 (with their experts, exports and
    decentralised agents) and CESMA's claim ledger."""
    input:
        [getattr(rules, target).output for target, (settings, _, _, not_planned, _) in CESMA_FIGURES.items()
         if settings or not_planned],
        [rules.cesma_fig9.output] if CESMA_FIG9 else [],
        "results/tables/cesma_claims.csv",
