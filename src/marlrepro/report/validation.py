"""The IGM-DA validation table (``docs/validation.md``) from the runs of the ``validation`` scale.

One row per (map, method), win rates in %, each the median [min, max] over seeds of a per-run value:

* **final evaluation**: the run's last evaluation (``final.json``'s ``test_won_mean``);
* **mean of the last 5 evaluations**: the mean of the run's last :data:`LAST_EVALUATIONS` rows of
  ``metrics.parquet`` (``test_won_mean``), a less noisy end point than the last evaluation alone;
* **best evaluation**: the run's highest evaluation;
* **experts' final** (-DA and -BC runs only): the experts' win rate at the last evaluation
  (``test_expert_won_mean``, the paper's *target_mean*);
* **env steps reached**: ``final.json``'s ``t_env``, min-max over seeds;
* **published**: the paper's Table 1 number for the method and map (``config/published/igm_da.yaml``),
  at the paper's budget, not ours.

**Direction** (on each -DA row): against the original method (``qmix_da`` against ``qmix``) and
against behaviour cloning (``qmix_bc``, Fig. 5(a)) where the map has those runs, on the mean of the
last 5 evaluations: is the -DA median above the other's median, and does every -DA seed lie above
every seed of the other.

:func:`validation_report` writes the table (csv, md) from run directories; the Snakemake rule
``igm_da_validation`` and ``marlrepro validation-table`` (:func:`planned_run_dirs` finds the runs the
scale plans) both call it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from marlrepro.errors import ConfigError
from marlrepro.report.igm_da import TABLE1_SIGHT, IgmRun, read_runs
from marlrepro.report.published import PublishedTable1, published_table1
from marlrepro.report.runs import RunDataError, read_metrics, single_value
from marlrepro.report.tables import write_table

LAST_EVALUATIONS = 5
VALUES = {  # tidy column prefix -> the display column's heading
    "final": "final evaluation",
    "last5": f"mean of the last {LAST_EVALUATIONS} evaluations",
    "best": "best evaluation",
    "expert_final": "experts' final (target_mean)",
}
_IMITATION = ("_da", "_bc")


def run_values(run: IgmRun) -> dict[str, Any]:
    """One run's end points (win rates in %, see the module docstring), with its map, method, seed and steps."""
    imitation = run.algo.endswith(_IMITATION)
    columns = ["t_env", "test_won_mean", *(["test_expert_won_mean"] if imitation else [])]
    metrics = read_metrics(run.path, columns).sort_values("t_env")
    if len(metrics) < LAST_EVALUATIONS:
        raise RunDataError(f"{run.path / 'metrics.parquet'}: {len(metrics)} evaluations, the table needs "
                           f"at least {LAST_EVALUATIONS} (the mean of the last {LAST_EVALUATIONS})")  # fmt: skip
    won = 100.0 * metrics["test_won_mean"]
    return {
        "map": run.map, "method": run.algo, "seed": int(run.final["seed"]), "sight": run.sight,
        "t_env": int(run.final["t_env"]), "final": run.win_rate,
        "last5": float(won.iloc[-LAST_EVALUATIONS:].mean()), "best": float(won.max()),
        "expert_final": 100.0 * float(metrics["test_expert_won_mean"].iloc[-1]) if imitation else math.nan,
    }  # fmt: skip


def validation_table(runs: Sequence[IgmRun], published: PublishedTable1, scale: str) -> pd.DataFrame:
    """The tidy table: per (map, method) the seeds, ``<value>_median/_min/_max`` of :data:`VALUES`,
    ``last5_per_seed``, ``env_steps_min/_max``, ``published_win_rate`` (NaN where the paper prints
    none: a method outside Table 1, or a sight range other than Table 1's), ``direction`` and scale."""
    per_run = pd.DataFrame([run_values(run) for run in runs])
    rows = []
    for (map_name, method), group in per_run.groupby(["map", "method"], sort=False):
        row: dict[str, Any] = {"map": map_name, "method": method, "seeds": len(group)}
        for value in VALUES:
            row |= {f"{value}_{stat}": group[value].agg(stat) for stat in ("median", "min", "max")}
        row["last5_per_seed"] = ", ".join(f"{v:.1f}" for v in group.sort_values("seed")["last5"])
        row |= {"env_steps_min": int(group["t_env"].min()), "env_steps_max": int(group["t_env"].max())}
        sights = set(group["sight"])
        row["published_win_rate"] = published.win_rate(method, map_name) if sights == {TABLE1_SIGHT} else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table["direction"] = [
        direction(per_run[per_run["map"] == row.map], row.method) for row in table.itertuples()
    ]
    return table.assign(scale=scale)


def direction(runs_of_map: pd.DataFrame, method: str) -> str:
    """For a -DA ``method``: against its original method and its BC variant where ``runs_of_map``
    (per-run values of one map) has them, on the mean of the last 5 evaluations, e.g.
    ``vs qmix: median above (82.5 > 71.2), all seeds above``; empty for any other method."""
    if not method.endswith("_da"):
        return ""
    base = method.removesuffix("_da")
    ours = runs_of_map.loc[runs_of_map["method"] == method, "last5"]
    parts = []
    for other in (base, f"{base}_bc"):
        theirs = runs_of_map.loc[runs_of_map["method"] == other, "last5"]
        if theirs.empty:
            continue
        above = ours.median() > theirs.median()
        relation = ">" if above else "<="
        separated = "all seeds above" if ours.min() > theirs.max() else "seeds overlap or below"
        parts.append(f"vs {other}: median {'above' if above else 'not above'} "
                     f"({ours.median():.1f} {relation} {theirs.median():.1f}), {separated}")  # fmt: skip
    return "; ".join(parts) if parts else f"no {base} or {base}_bc runs on this map to compare with"


def validation_display(table: pd.DataFrame, published: PublishedTable1) -> pd.DataFrame:
    """The readable form of :func:`validation_table`: ``median [min, max]`` cells, ours beside published."""
    rows = []
    for _, row in table.iterrows():
        cells = {
            heading: "—" if math.isnan(row[f"{value}_median"]) else
            f"{row[f'{value}_median']:.1f} [{row[f'{value}_min']:.1f}, {row[f'{value}_max']:.1f}]"
            for value, heading in VALUES.items()
        }  # fmt: skip
        steps = (f"{row['env_steps_min']:,}" if row["env_steps_min"] == row["env_steps_max"]
                 else f"{row['env_steps_min']:,}–{row['env_steps_max']:,}")  # fmt: skip
        rows.append({
            "map": row["map"], "method": row["method"], "seeds": row["seeds"], **cells,
            "env steps reached": steps,
            f"published ({published.cite}, Table 1)": "not printed" if math.isnan(row["published_win_rate"])
            else f"{row['published_win_rate']:.1f}",
            "direction (last-5 mean)": row["direction"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def validation_report(
    run_dirs: Iterable[str | Path],
    published_path: str | Path,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """Read the runs, check they were made at ``scale``, write the table to ``table_paths`` (csv,
    md, html by suffix, each atomically) and return it."""
    run_dirs = [Path(d) for d in run_dirs]
    missing = [str(d) for d in run_dirs if not (d / "final.json").is_file()]
    if missing:
        raise RunDataError(f"{len(missing)} of {len(run_dirs)} runs have not finished (no final.json): "
                           f"{', '.join(missing)}")  # fmt: skip
    runs = read_runs(run_dirs)
    made_at = {run.path: run.final["tags"].get("scale") for run in runs}
    other = [f"{path} ({at})" for path, at in made_at.items() if at != scale]
    if other:
        raise RunDataError(f"runs not made at scale {scale!r}: {', '.join(other)}")
    published = published_table1(published_path)
    table = validation_table(runs, published, scale)
    notes = [
        (
            f"Win rates in %, median [min, max] over seeds. final evaluation: each run's last evaluation; "
            f"mean of the last {LAST_EVALUATIONS} evaluations: of each run's last {LAST_EVALUATIONS}; best "
            "evaluation: each run's highest; experts' final: the -DA/-BC experts' own win rate at the last "
            "evaluation (target_mean)."
        ),
        f"published: {published.source}, {published.metric}, after the paper's own budget (not ours).",
        (
            "direction: on the mean of the last 5 evaluations, whether the -DA median lies above the "
            "original method's (and behaviour cloning's, where run), and whether every -DA seed lies "
            "above every seed of the other."
        ),
    ]
    write_table(table, table_paths, "IGM-DA validation: ours at the validation scale beside Table 1",
                scale=scale, scale_description=scale_description,
                backend=single_value([run.final for run in runs], "backend"), notes=notes,
                display=validation_display(table, published), group="map")  # fmt: skip
    return table


def planned_run_dirs(
    runs_root: str | Path, paper: str, experiments: Sequence[str], scale: str, envs: Sequence[str] | None = None
) -> list[Path]:
    """The run directories under ``runs_root`` of ``experiments`` of ``config/<paper>.yaml`` as
    ``scale`` plans them (with ``config/config.yaml``'s seeds, device and backend), read from the
    current directory as Snakemake reads them; only the runs on ``envs`` when given (a table of the
    maps that were run, when the GPU time did not cover the whole plan)."""
    from marlrepro.config import read_settings
    from marlrepro.config_schema import load_checked
    from marlrepro.experiments import RUN_DIR, plan_paper, scale_from_dict

    scales = {path.stem for path in Path("config/scales").glob("*.yaml")}
    if scale not in scales:
        raise ConfigError(f"--scale: no config/scales/{scale}.yaml; valid choices: {', '.join(sorted(scales))}")
    workflow = load_checked("config/config.yaml", "workflow/schemas/config.schema.yaml")
    algos = {path.stem: read_settings(path) for path in Path("config/algos").glob("*.yaml")}
    at_scale = scale_from_dict(scale, load_checked(f"config/scales/{scale}.yaml", "workflow/schemas/scale.schema.yaml"))
    plan = plan_paper(paper, load_checked(f"config/{paper}.yaml", "workflow/schemas/paper.schema.yaml"), at_scale,
                      workflow, scales, algos)  # fmt: skip
    unknown = [name for name in experiments if name not in plan]
    if unknown:
        raise ConfigError(f"--experiments: {unknown} not in config/{paper}.yaml; valid choices: {', '.join(plan)}")
    runs = [run for name in experiments for run in plan[name].runs()]
    if envs is not None:
        planned = sorted({run.env for run in runs})
        unplanned = [env for env in envs if env not in planned]
        if unplanned:
            raise ConfigError(f"--envs: {unplanned} not planned for {', '.join(experiments)} at scale {scale}; "
                              f"valid choices: {', '.join(planned)}")  # fmt: skip
        runs = [run for run in runs if run.env in envs]
    prefix = RUN_DIR.split("{", 1)[0]  # results/runs/
    return [Path(runs_root) / run.run_dir.removeprefix(prefix) for run in runs]
