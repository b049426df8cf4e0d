"""Column names of the report's tidy tables that the claims ledger (:mod:`marlrepro.report.claims`)
reads beside the modules that write them. Kept free of plotting and data libraries: the workflow's
planning (``workflow/rules/claims.smk``) imports the ledger, and so every ``snakemake`` call would
pay for matplotlib and seaborn."""

from __future__ import annotations

# IGM-DA (marlrepro.report.igm_da)
WIN = "win_rate"  # final win rate in %, the metric of every IGM-DA summary
AVG = "Avg.Score"  # Table 1's average over the maps, as the paper labels it
TABLE1_COLUMNS = (
    "method", "label", "map", "n_seeds", f"{WIN}_median", f"{WIN}_q25", f"{WIN}_q75", f"published_{WIN}",
    "difference", "n_maps", "t_env_min", "sight_range", "scale", "backend",
)  # fmt: skip

# the curve panels of ME-IGM's figures and the SMAX curves (marlrepro.report.curve_panels)
PANEL_KEYS = ("panel", "series")
PANEL_COLUMNS = (
    "panel", "series", "metric", "n_seeds", "t_env_min",
    "final_median", "final_q25", "final_q75", "over_training_median", "over_training_q25", "over_training_q75",
    "published", "scale", "backend",
)  # fmt: skip

# MIFQ's score tables (marlrepro.report.score_table): the published method that demonstrates for the others
EXPERT = "expert"
