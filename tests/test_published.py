"""The papers' printed tables in config/published/: they load, they match the paper's text cell by
cell, and a malformed table is refused with a message naming the field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from marlrepro.config_schema import load_checked
from marlrepro.errors import ConfigError
from marlrepro.report.published import matrix_game, score_table

REPO = Path(__file__).resolve().parents[1]
ME_IGM = REPO / "config/published/me_igm.yaml"
SCHEMA = REPO / "workflow/schemas/published.schema.yaml"
PAPER = REPO.parent / "shared/papers/me_igm.md"
TASKS = ("Protoss", "Terran", "Zerg")


def _paper_rows(header: str, count: int) -> list[list[str]]:
    """The ``count`` data rows after the line starting with ``header`` in the paper's text, as
    cells (the first row of each task group carries the task's name: it is moved into the
    scenario's name)."""
    if not PAPER.is_file():
        pytest.skip(f"the paper's text is not beside the repository ({PAPER})")
    lines = PAPER.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows, task = [], None
    for line in lines[start + 1:start + 1 + count]:
        cells = [cell.strip() for cell in line.split("|")]
        if cells[0] in TASKS:
            task, cells = cells[0], cells[1:]
        rows.append([f"{task.lower()}_{cells[0]}" if task else cells[0], *cells[1:]])
    return rows


def _printed(mean: float, std: float) -> set[str]:
    """How the paper may print a cell: "-" for none, else the mean (with one decimal or as an
    integer) followed by the std, run together."""
    if math.isnan(mean):
        return {"-"}
    means = {f"{mean:.1f}"} | ({f"{mean:.0f}"} if mean == int(mean) else set())
    return {m + ("" if math.isnan(std) else f"{std:.1f}") for m in means}


def test_the_shipped_tables_validate_and_load():
    load_checked(ME_IGM, SCHEMA)
    table2 = score_table(ME_IGM, "table2")
    assert len(table2.scenarios) == 15 and len(table2.labels) == 10
    assert set(table2.cells.loc[table2.cells["published_only"], "method"]) == {"imax_ppo", "inq"}
    assert score_table(ME_IGM, "table4").cells["mean"].isna().all()  # the paper's cells are empty
    assert matrix_game(ME_IGM, "table1").optimal_payoff == 8.0


def test_table2_matches_the_papers_text_cell_by_cell():
    table = score_table(ME_IGM, "table2")
    rows = _paper_rows("Task | Scenario | MAPPO", 15)
    assert [row[0] for row in rows] == list(table.scenarios)
    methods = list(table.labels)
    cells = table.cells.set_index(["scenario", "method"])
    for scenario, *printed in rows:
        for method, text in zip(methods, printed):
            mean, std = cells.loc[(scenario, method), ["mean", "std"]]
            assert text in _printed(mean, std), (scenario, method, text, mean, std)


def test_table3_matches_the_papers_text_cell_by_cell():
    table = score_table(ME_IGM, "table3")
    rows = _paper_rows("QMIX | +Entropy | +OPT", 4)[1:]  # after the |---| line
    cells = table.cells.set_index(["scenario", "method"])
    for (name, *printed), scenario in zip(rows, table.scenarios):
        assert name.replace("vs", "_vs_").lower().replace(" ", "_") == scenario
        for method, text in zip(table.labels, printed):
            mean, std = cells.loc[(scenario, method), ["mean", "std"]]
            assert text == f"{mean:.2f} {std:.2f}", (scenario, method, text)


def _edited(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(ME_IGM.read_text())
    edit(data["tables"])
    path = tmp_path / "me_igm.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_malformed_score_table_is_refused_with_the_field_named(tmp_path):
    short = _edited(tmp_path, lambda t: t["table2"]["methods"]["fop"]["values"].pop())
    with pytest.raises(ConfigError, match=r"tables\.table2\.methods\.fop\.values: expected 15 values"):
        score_table(short, "table2")
    too_high = _edited(tmp_path, lambda t: t["table3"]["methods"]["qmix"]["values"].__setitem__(0, 68))
    with pytest.raises(ConfigError, match=r"table3\.methods\.qmix\.values\[protoss_5_vs_5\]: 68 is outside \[0, 1\]"):
        score_table(too_high, "table3")
    with pytest.raises(ConfigError, match="tables.table2 is not a matrix game .* the matrix games: table1"):
        matrix_game(ME_IGM, "table2")
    with pytest.raises(ConfigError, match="no table 'table9'; tables: table1, table2, table3, table4"):
        score_table(ME_IGM, "table9")


def test_the_schema_names_the_field_of_a_bad_score_table(tmp_path):
    bad = _edited(tmp_path, lambda t: t["table3"].__setitem__("unit", "percentage"))
    with pytest.raises(ConfigError, match=r"tables\.table3\.unit.*'percentage'"):
        load_checked(bad, SCHEMA)
