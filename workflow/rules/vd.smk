"""Foundation experiment (config/vd.yaml): IQL, VDN and QMIX learning curves on SMAX 3m."""


localrules:
    vd_smax_curves,


rule vd_smax_curves:
    """Test win rate against env steps (median, 25-75 % band over seeds) and the final win rates."""
    input:
        finals=run_outputs("vd", "smax_curves"),
        metrics=run_outputs("vd", "smax_curves", "metrics.parquet"),
        configs=run_outputs("vd", "smax_curves", "config.yaml"),
    output:
        **report_outputs("vd", "vd_smax_curves", "SMAX 3m curves", "vd_smax_curves_figure"),
    params:
        metric="test_won_mean",
        label="test win rate",
        limits=[0.0, 1.0],
        scale=SCALE.name,
        scale_description=SCALE.description,
        setting=run_setting(experiment("vd", "smax_curves").runs()),
    log:
        "results/logs/report/vd_smax_curves.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/learning_curves.py"
