"""Learning curves over seeds: align evaluations on a common step grid, then median and IQR band
(or min/max envelope).

Evaluations happen when ``t_env`` first passes each multiple of ``run.eval_interval``, so seeds
evaluate at slightly different steps. Each run's curve is linearly interpolated onto the grid
``k * step`` inside the run's own evaluated range (never extrapolated); the band at a grid point
uses only points where every seed of that algorithm has a value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CURVE_COLUMNS = ("algo", "seed", "t_env", "value")
BAND_COLUMNS = ("algo", "t_env", "median", "q25", "q75", "n_seeds")
ENVELOPE_COLUMNS = ("algo", "t_env", "median", "min", "max", "n_seeds")


def align_curves(curves: pd.DataFrame, step: int) -> pd.DataFrame:
    """Interpolate every (algo, seed) curve of ``curves`` (columns :data:`CURVE_COLUMNS`) onto ``k*step``."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise ValueError(f"curves: missing columns {missing}")
    parts = []
    for (algo, seed), run in curves.groupby(["algo", "seed"], sort=False):
        run = run.sort_values("t_env")
        t, value = run["t_env"].to_numpy(float), run["value"].to_numpy(float)
        grid = np.arange(np.ceil(t[0] / step), np.floor(t[-1] / step) + 1) * step
        parts.append(
            pd.DataFrame({"algo": algo, "seed": seed, "t_env": grid.astype(np.int64), "value": np.interp(grid, t, value)})
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CURVE_COLUMNS))


def curve_band(aligned: pd.DataFrame) -> pd.DataFrame:
    """Median and 25/75 % quantiles over seeds per (algo, t_env) of an :func:`align_curves` result.

    Quantiles interpolate linearly between order statistics (numpy's default). Grid points that
    some seed of the algorithm did not reach are dropped, so every band point covers all seeds.
    """
    band = aligned.groupby(["algo", "t_env"])["value"].agg(
        median="median",
        q25=lambda v: v.quantile(0.25),
        q75=lambda v: v.quantile(0.75),
        n_seeds="count",
    )
    return _every_seed(band.reset_index(), aligned)[list(BAND_COLUMNS)]


def curve_envelope(aligned: pd.DataFrame) -> pd.DataFrame:
    """Median, minimum and maximum over seeds per (algo, t_env) of an :func:`align_curves` result
    (CESMA's and MADDPG's figures: "the minimum and maximum reward envelopes"); like
    :func:`curve_band`, only the grid points that every seed of the algorithm reached."""
    envelope = aligned.groupby(["algo", "t_env"])["value"].agg(median="median", min="min", max="max", n_seeds="count")
    return _every_seed(envelope.reset_index(), aligned)[list(ENVELOPE_COLUMNS)]


def _every_seed(band: pd.DataFrame, aligned: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``band`` (per algo and t_env, with ``n_seeds``) that cover every seed of their algo."""
    seeds_per_algo = aligned.groupby("algo", sort=False)["seed"].nunique()
    complete = band["n_seeds"] == band["algo"].map(seeds_per_algo)
    return band[complete].reset_index(drop=True)
