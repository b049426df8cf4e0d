"""CESMA's figure panels as the workflow plans them (:func:`plan_settings`, which reads no file)
and as the figure code reads them (:class:`Setting`), with the series labels and the columns of the
figures' tidy table. Kept apart from :mod:`marlrepro.report.cesma`, which draws them, so that
Snakemake's planning imports no plotting library."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marlrepro.report.runs import RunDataError

if TYPE_CHECKING:
    from marlrepro.experiments import Run

EXPERT = "centralised expert"
CESMA = "CESMA (decentralised)"
MADDPG = "MADDPG"
KEYS = ("setting", "series")
COLUMNS = (
    "setting", "series", "metric", "n_seeds", "samples_median", "final_median", "final_min", "final_max",
    "exported_median", "gap_to_expert", "samples_to_maddpg", "published", "scale", "backend",
)  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One panel: ``students`` (DAgger run directories), ``experts`` (``experts[i]``: the run that
    ``students[i]`` imitates, or with ``choice`` the expert run of its seed, drawn in the experts'
    curve) and ``baselines`` (label -> run directories); ``label`` and ``expert``: the students' and
    the experts' series names (Figure 7 names each expert's); ``choice``: the ``choice.json`` of an
    expert picked as the best run (``expert_choice: best``, Figure 4), which every student imitates."""

    title: str
    students: list[str]
    experts: list[str]
    baselines: dict[str, list[str]]
    label: str = CESMA
    expert: str = EXPERT
    choice: str | None = None

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Setting:
        """A setting from a rule's params."""
        setting = cls(spec["title"], list(spec["students"]), list(spec["experts"]),
                      {label: list(runs) for label, runs in spec.get("baselines", {}).items()},
                      spec.get("label", CESMA), spec.get("expert", EXPERT), spec.get("choice"))
        if len(setting.students) != len(setting.experts) or not setting.students:
            raise RunDataError(f"{setting.title}: expected one expert run per student run, got "
                               f"{len(setting.students)} students and {len(setting.experts)} experts")
        return setting

    def imitated(self) -> list[str]:
        """The expert run that each student imitates: the chosen best run (``choice``) or its own."""
        if self.choice is None:
            return self.experts
        with open(self.choice) as f:
            chosen = json.load(f)["run_dir"]
        return [chosen] * len(self.students)

    def run_dirs(self) -> list[str]:
        """Every run directory the setting reads."""
        return [*self.experts, *self.students, *(run for runs in self.baselines.values() for run in runs)]


def plan_settings(students: Sequence[Run], baselines: Sequence[Run], scenarios: Sequence[str],
                  labels: Mapping[str, str], label: str = CESMA, expert: str = EXPERT) -> list[dict[str, Any]]:
    """Each of ``scenarios`` that ``students`` (DAgger runs, ``expert_from``) train on, in that
    order, as a :class:`Setting`'s rule params: the students (series ``label``), the expert run each
    imitates (series ``expert``), and the runs of ``baselines`` on it, by series label (``labels``:
    algo -> label; algos without runs there left out). Snakemake's planning calls it: it reads no
    file."""
    settings = []
    for scenario in scenarios:
        taught = [run for run in students if run.env.split(":", 1)[1] == scenario]
        if not taught:
            continue
        by_label = {label: [run.run_dir for run in baselines
                            if run.algo == algo and run.env.split(":", 1)[1] == scenario]
                    for algo, label in labels.items()}
        best = {run.expert_best_dir for run in taught}
        settings.append({"title": scenario, "students": [run.run_dir for run in taught],
                         "experts": [run.expert_run_dir for run in taught],
                         "baselines": {name: dirs for name, dirs in by_label.items() if dirs},
                         "label": label, "expert": expert,
                         **({"choice": f"{best.pop()}/choice.json"} if best != {None} else {})})
    return settings


def settings_run_dirs(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every run directory that ``settings`` (rule params of :func:`plan_settings`) read, once each."""
    return list(dict.fromkeys(run for spec in settings for run in Setting.from_dict(spec).run_dirs()))
