"""What a report caption says about the runs behind a result (environments, methods, sight range,
steps and seeds, as planned at the chosen scale) and about the paper's numbers.

The rules pass :func:`run_setting` of a result's runs as the ``setting`` param, and the captions in
``workflow/report/`` show it with ``{{ snakemake.params.setting }}``, so a caption states the
setting the pipeline ran, at paper and at smoke scale alike. A caption never holds a published
number itself: :func:`matrix_game_published` reads them from ``config/published/`` into the
``published`` param.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from marlrepro.errors import ConfigError
from marlrepro.experiments import Run
from marlrepro.report.published import matrix_game

SMAC_BACKENDS = ("smax", "smacv2", "smax_stock", "sc2")  # env prefixes whose allies have a sight range
DEFAULT_SIGHT = "SMAC's (9; SMACv2: each unit type's own)"  # env.options.sight_range unset or null


def run_setting(runs: Sequence[Run]) -> str:
    """One line such as ``smax:MMM2; qmix, qmix_da; allies' sight range 0; 400 environment steps
    per run; 2 seeds (0-1)``, listing each distinct value once, in the runs' order.

    The sight range is stated only for StarCraft-like environments (:data:`SMAC_BACKENDS`).
    """
    if not runs:
        raise ValueError("run_setting: no runs")
    envs = _distinct(run.env for run in runs)
    parts = [", ".join(envs), ", ".join(_distinct(run.algo for run in runs))]
    if any(env.split(":", 1)[0] in SMAC_BACKENDS for env in envs):
        sights = _distinct(run.settings.get("env.options.sight_range") for run in runs)
        parts.append("allies' sight range " + ", ".join(DEFAULT_SIGHT if s is None else f"{s:g}" for s in sights))
    steps = _distinct(run.settings.get("run.t_max") for run in runs)
    parts.append(
        " / ".join("the algorithm's default" if t is None else f"{t:,}" for t in steps) + " environment steps per run"
    )
    counts = sorted(set(Counter((run.experiment, run.env, run.algo) for run in runs).values()))
    seeds = sorted({run.seed for run in runs})
    parts.append(f"{' or '.join(map(str, counts))} seeds per method and environment ({_span(seeds)})")
    return "; ".join(parts)


def matrix_game_published(path: str | Path, table: str, method: str) -> dict[str, str]:
    """The paper's side of a matrix-game caption, from the published file ``path``.

    ``optimum``: the game's best payoff and where it lies (``optimal payoff 8 at (A, A)``);
    ``q_tot``: ``method``'s published Q_tot by rows (agent 1's action) and, where printed, its
    greedy joint action and payoff (``QMIX's Q_tot, rows A, B, C: [...], [...], [...]; greedy (B, B)
    with payoff 0``)."""
    game = matrix_game(path, table)
    if method not in game.methods:
        raise ConfigError(f"{path}: tables.{table}.methods has no {method!r}; valid choices: "
                          f"{', '.join(game.methods)}")
    published = game.methods[method]
    best = [(game.actions[i], game.actions[j]) for i, j in zip(*(game.payoff == game.optimal_payoff).nonzero())]
    optimum = f"optimal payoff {game.optimal_payoff:g} at " + " and ".join(f"({a}, {b})" for a, b in best)
    rows = ", ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in published.q_tot)
    q_tot = f"{published.label}'s Q_tot, rows {', '.join(game.actions)}: {rows}"
    if published.greedy_joint_action is not None:
        q_tot += f"; greedy ({', '.join(published.greedy_joint_action)})"
        if published.greedy_payoff is not None:
            q_tot += f" with payoff {published.greedy_payoff:g}"
    return {"optimum": optimum, "q_tot": q_tot, "cite": game.cite}


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _span(seeds: Sequence[int]) -> str:
    """``[0, 1, 2]`` -> ``'seeds 0-2'``; ``[0]`` -> ``'seed 0'``; gaps listed: ``'seeds 0, 2'``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))
