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
        png=report(
            "results/figures/vd_smax_curves.png",
            caption="../report/vd_smax_curves_figure.rst",
            category="Value decomposition (foundation)",
            subcategory="SMAX 3m",
        ),
        pdf="results/figures/vd_smax_curves.pdf",
        csv=report(
            "results/tables/vd_smax_curves.csv",
            caption="../report/vd_smax_curves.rst",
            category="Value decomposition (foundation)",
            subcategory="SMAX 3m",
        ),
        md="results/tables/vd_smax_curves.md",
    params:
        metric="test_won_mean",
        label="test win rate",
        scale=SCALE.name,
        scale_description=SCALE.description,
    log:
        "results/logs/report/vd_smax_curves.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/learning_curves.py"
