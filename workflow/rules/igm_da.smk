"""IGM-DA (config/igm_da.yaml): Table 1 and Figures 3-7, beside config/published/igm_da.yaml.

Runs are shared between targets: the sight0 experiment feeds Table 1, Figure 4, the DAgger side of
Figure 5(a, b), the sight-0 point of Figure 5(c) and the sight-0 learners of Figure 3.
"""


localrules:
    igm_da,
    igm_da_table1,
    igm_da_fig3,
    igm_da_fig4,
    igm_da_fig5ab,
    igm_da_fig5c,
    igm_da_fig6,
    igm_da_fig7,


IGM_DA_SWEEP_MAP = "5m_vs_6m"  # Figure 5(c)'s map is not named in the paper; our choice
IGM_DA_SIGHTS = ("sight0", "sight3", "sight6", "sight9")
# The FrozenLake experiment (appendix E) is tabular, not a training run: its settings sit in
# config/igm_da.yaml under x-frozenlake, with per-scale overrides.
_frozenlake = yaml.safe_load(Path("config/igm_da.yaml").read_text())["x-frozenlake"]
IGM_DA_FROZENLAKE = {**_frozenlake, **_frozenlake.get("scales", {}).get(SCALE.name, {})}


def igm_da_runs(*experiments: str, maps=None, algos=None) -> list:
    """The IGM-DA runs of ``experiments``, optionally only some maps and algorithms."""
    return [
        run
        for name in experiments
        for run in experiment("igm_da", name).runs()
        if (maps is None or run.env.split(":", 1)[1] in maps) and (algos is None or run.algo in algos)
    ]


def igm_da_finals(*experiments: str, maps=None, algos=None) -> list[str]:
    """final.json of :func:`igm_da_runs`."""
    return [f"{run.run_dir}/final.json" for run in igm_da_runs(*experiments, maps=maps, algos=algos)]


IGM_DA_PUBLISHED = "config/published/igm_da.yaml"


rule igm_da_table1:
    """Table 1: win rate at sight 0 on six maps, per method, with Avg.Score, beside the paper's."""
    input:
        finals=igm_da_finals("sight0"),
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_table1", "Table 1"),
    params:
        kind="table1",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(igm_da_runs("sight0")),
    log:
        "results/logs/report/igm_da_table1.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_report.py"


rule igm_da_fig4:
    """Figure 4: the learning curves behind Table 1 (median, 25-75 % band, window-5 moving average)."""
    input:
        finals=igm_da_finals("sight0"),
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_fig4", "Figure 4"),
    params:
        kind="curves",
        title="IGM-DA Fig. 4: test win rate at sight range 0",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(igm_da_runs("sight0")),
    log:
        "results/logs/report/igm_da_fig4.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_report.py"


rule igm_da_fig5ab:
    """Figure 5(a, b): behaviour cloning (experts collect) against DAgger (learners collect)."""
    input:
        finals=igm_da_finals("bc") + igm_da_finals("sight0", maps=("MMM2", "5m_vs_6m"), algos=("qmix_da",)),
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_fig5ab", "Figure 5(a, b)"),
    params:
        kind="curves",
        title="IGM-DA Fig. 5(a, b): behaviour cloning against DAgger at sight range 0",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(igm_da_runs("bc") + igm_da_runs("sight0", maps=("MMM2", "5m_vs_6m"), algos=("qmix_da",))),
    log:
        "results/logs/report/igm_da_fig5ab.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_report.py"


rule igm_da_fig5c:
    """Figure 5(c): final win rate against the allies' sight range, qmix against qmix-DA."""
    input:
        finals=igm_da_finals(*IGM_DA_SIGHTS, maps=(IGM_DA_SWEEP_MAP,), algos=("qmix", "qmix_da")),
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_fig5c", "Figure 5(c)"),
    params:
        kind="sight_sweep",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(igm_da_runs(*IGM_DA_SIGHTS, maps=(IGM_DA_SWEEP_MAP,), algos=("qmix", "qmix_da"))),
    log:
        "results/logs/report/igm_da_fig5c.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_report.py"


rule igm_da_fig3:
    """Figure 3: sight-9 and sight-0 learners imitating full-sight experts (with the experts'
    target_mean), and the distributions of their action values."""
    input:
        finals=igm_da_finals("sight0", "sight9", maps=(IGM_DA_SWEEP_MAP,), algos=("qmix_da",)),
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_fig3", "Figure 3"),
    params:
        kind="lossy_decomposition",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(igm_da_runs("sight0", "sight9", maps=(IGM_DA_SWEEP_MAP,), algos=("qmix_da",))),
    log:
        "results/logs/report/igm_da_fig3.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_report.py"


rule igm_da_fig7:
    """Figure 7 (appendix F): sight range 9, original against -DA."""
    input:
        finals=igm_da_finals("sight9"),
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_fig7", "Figure 7"),
    params:
        kind="curves",
        title="IGM-DA Fig. 7: test win rate at sight range 9, original against -DA",
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(igm_da_runs("sight9")),
    log:
        "results/logs/report/igm_da_fig7.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_report.py"


rule igm_da_fig6:
    """Figure 6 (appendix E): FrozenLake with block observations, Q-table against the DAgger Q-table."""
    input:
        published=IGM_DA_PUBLISHED,
    output:
        **report_outputs("igm_da", "igm_da_fig6", "Figure 6"),
    params:
        seeds=list(range(config["seeds"] or IGM_DA_FROZENLAKE["seeds"])),
        episodes=IGM_DA_FROZENLAKE["episodes"],
        scale=SCALE.name,
        scale_description=SCALE.description,
    log:
        "results/logs/report/igm_da_fig6.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/igm_da_fig6.py"


# docs/validation.md's table: only at the validation scale, from whatever runs that scale plans for
# sight0 (qmix against qmix-DA per map) and bc (qmix-BC beside sight0's qmix-DA). At any other scale
# the rule does not exist, so it can never mix runs of another budget into the validation table.
if SCALE.name == "validation":

    localrules:
        igm_da_validation,

    rule igm_da_validation:
        """The validation table: final, last-5 mean, best and experts' final evaluations, steps
        reached, Table 1's number and the -DA direction per map (marlrepro.report.validation)."""
        input:
            finals=igm_da_finals("sight0", "bc"),
            published=IGM_DA_PUBLISHED,
        output:
            csv="results/tables/igm_da_validation.csv",
            md="results/tables/igm_da_validation.md",
        params:
            scale=SCALE.name,
            scale_description=SCALE.description,
        log:
            "results/logs/report/igm_da_validation.log",
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/igm_da_validation.py"


rule igm_da:
    """Every IGM-DA result."""
    input:
        rules.igm_da_table1.output,
        rules.igm_da_fig3.output,
        rules.igm_da_fig4.output,
        rules.igm_da_fig5ab.output,
        rules.igm_da_fig5c.output,
        rules.igm_da_fig6.output,
        rules.igm_da_fig7.output,
