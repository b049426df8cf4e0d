"""The papers' printed tables in config/published/: they load, they match the paper's text cell by
cell, and a malformed table is refused with a message naming the field."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import pytest
import yaml

from marlrepro.config_schema import load_checked
from marlrepro.errors import ConfigError
from marlrepro.report.published import (
    PublishedScoreTable,
    hyperparameters,
    matrix_game,
    score_table,
)
from marlrepro.report.score_table import score_rows

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


# MIFQ (Bui, Mai, Nguyen 2024): Table 1 split by metric, appendix Tables 3-22 by number of
# demonstrations, Table 2's hyperparameters. The paper's tables are tab-separated in its text.
MIFQ = REPO / "config/published/mifq.yaml"
MIFQ_PAPER = REPO.parent / "shared/papers/mifq.md"
# the paper's row labels -> our method keys; "ВС" is BC in Cyrillic letters, as our copy of Tables
# 8 and 22 prints it
MIFQ_ROWS = {"Expert": "expert", "BC": "bc", "\u0412\u0421": "bc", "IIQ": "iiq", "IQVDN": "iqvdn",
             "MASQIL": "masqil", "MAGAIL": "magail", "MIFQ (ours)": "mifq"}
MIFQ_SWEEPS = {range(3, 9): (128, 256, 512, 1024, 2048, 4096), range(9, 15): (128, 256, 512, 1024, 2048, 4096),
               range(15, 23): (1, 2, 4, 8, 16, 32, 64, 128)}
MIFQ_APPENDIX = [f"table{n}" for n in range(3, 23)]


@functools.cache
def _mifq(table: str) -> PublishedScoreTable:
    """MIFQ's ``table``, loaded once (each load parses the whole file: about 0.3 s)."""
    return score_table(MIFQ, table)


def _mifq_paper_table(number: int) -> tuple[str, list[str], dict[str, list[str]]]:
    """Table ``number`` of the MIFQ paper's text: its caption, its header rows (each cell's words)
    and its data rows (method key -> the printed cells, the empty ones dropped), which run from the
    line after the caption's blank line to the next blank line."""
    if not MIFQ_PAPER.is_file():
        pytest.skip(f"the paper's text is not beside the repository ({MIFQ_PAPER})")
    lines = MIFQ_PAPER.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))
    assert not lines[start + 1].strip()
    headers, rows = [], {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        label, *cells = [cell.strip() for cell in line.split("\t")]
        if label in MIFQ_ROWS:
            assert MIFQ_ROWS[label] not in rows, (number, label)
            rows[MIFQ_ROWS[label]] = [cell for cell in cells if cell]
        else:
            headers += line.split()
    return lines[start], headers, rows


def _mifq_header_name(scenario: str, number: int) -> str:
    """How the paper heads ``scenario``'s column in Table ``number``."""
    if scenario.startswith(("protoss", "terran", "zerg")):
        name = scenario.split("_", 1)[1]
        return name.replace("_", "") if number == 1 else name
    if scenario.endswith("_2_vs_2"):  # Gold Miner
        return scenario.split("_")[0]
    name = scenario.removeprefix("simple_")  # MPE
    return "speaker" if number == 1 and name == "speaker_listener" else name


def _mifq_printed(value: float, unit: str, decimals: int) -> str:
    return f"{value:.{decimals}f}" + ("%" if unit == "percent" else "")


def test_the_mifq_tables_validate_and_load_with_their_demonstration_counts():
    load_checked(MIFQ, SCHEMA)
    tables = yaml.safe_load(MIFQ.read_text())["tables"]
    assert list(tables) == ["table1_winrate", "table1_reward", *MIFQ_APPENDIX]
    winrate, reward = _mifq("table1_winrate"), _mifq("table1_reward")
    assert (winrate.unit, winrate.demos, len(winrate.scenarios)) == ("percent", 4096, 9)
    assert (reward.unit, reward.demos, len(reward.scenarios)) == ("reward", 128, 3)
    assert winrate.cite == reward.cite == "MIFQ Table 1"
    assert list(winrate.labels) == ["expert", "bc", "iiq", "iqvdn", "masqil", "magail", "mifq"]
    assert winrate.labels["expert"] == "Expert (MAPPO)" and not winrate.cells["published_only"].any()
    for numbers, counts in MIFQ_SWEEPS.items():
        for number, demos in zip(numbers, counts, strict=True):
            table = _mifq(f"table{number}")
            caption, _, _ = _mifq_paper_table(number)
            assert caption.endswith(f"the number of expert trajectories is: {demos}")
            assert (table.demos, table.cite) == (demos, f"MIFQ Table {number}")
            assert table.unit == ("reward" if number >= 15 else "percent")
            # Table 1's scenarios, in its order: SMACv2's six, then Miner's three; MPE's three
            task = winrate.scenarios[:6] if number <= 8 else winrate.scenarios[6:] if number <= 14 else reward.scenarios
            assert table.scenarios == task
    assert _mifq("table15").cells["mean"].lt(0).all()  # rewards: no range to check


def test_mifq_table1_matches_the_papers_text_cell_by_cell():
    winrate, reward = _mifq("table1_winrate"), _mifq("table1_reward")
    _, headers, rows = _mifq_paper_table(1)
    names = [_mifq_header_name(s, 1) for s in winrate.scenarios + reward.scenarios]
    assert [word for word in headers if word in names] == names
    assert set(rows) == set(winrate.labels) == set(reward.labels)
    spaced = set()
    for method, printed in rows.items():
        assert len(printed) == 12, (method, printed)
        for table, texts, decimals in ((winrate, printed[:9], 0), (reward, printed[9:], 1)):
            cells = table.cells.set_index(["scenario", "method"])
            for scenario, text in zip(table.scenarios, texts, strict=True):
                mean, std = cells.loc[(scenario, method), ["mean", "std"]]
                assert math.isnan(std) and text.replace(" ", "") == _mifq_printed(mean, table.unit, decimals), (
                    scenario, method, text, mean)
                if " " in text:
                    spaced.add((method, scenario))
    # the quirk the description names: five of MIFQ's cells print "58 %" with a space
    assert spaced == {("mifq", s) for s in ("terran_5_vs_5", "terran_10_vs_10", "zerg_10_vs_10", "easy_2_vs_2",
                                            "hard_2_vs_2")}


@pytest.mark.parametrize("name", MIFQ_APPENDIX)
def test_mifq_appendix_tables_match_the_papers_text_cell_by_cell(name):
    table = _mifq(name)
    number = int(name.removeprefix("table"))
    _, headers, rows = _mifq_paper_table(number)
    names = [_mifq_header_name(s, number) for s in table.scenarios]
    assert [word for word in headers if word in names] == names
    assert list(rows) == list(table.labels)  # the paper's rows, in its order; a missing method is absent
    cells = table.cells.set_index(["scenario", "method"])
    for method, printed in rows.items():
        assert len(printed) == len(table.scenarios) + 1, (method, printed)  # the last: the Average
        for scenario, text in zip(table.scenarios, printed, strict=False):
            mean, std = cells.loc[(scenario, method), ["mean", "std"]]
            assert math.isnan(std) and text == _mifq_printed(mean, table.unit, 1), (scenario, method, text, mean)


def test_mifq_printed_averages_agree_with_the_mean_of_the_printed_cells():
    """Each appendix table's Average is the mean over its scenarios, within rounding: each cell is
    printed to 0.1 (the mean of the printed cells is off by at most 0.05) and so is the Average.
    Those further than 0.05 from the mean of the printed cells are listed: they differ by 0.067."""
    off = {}
    for name in MIFQ_APPENDIX:
        table = _mifq(name)
        _, _, rows = _mifq_paper_table(int(name.removeprefix("table")))
        means = table.cells.groupby("method")["mean"].mean()
        for method, printed in rows.items():
            average = float(printed[-1].removesuffix("%"))
            assert abs(means[method] - average) <= 0.1 + 1e-9, (name, method, average, means[method])
            if abs(means[method] - average) > 0.05 + 1e-9:
                off[(name, method)] = round(means[method] - average, 3)
    assert set(off.values()) == {-0.067, 0.067}
    assert sorted(off) == sorted([("table14", "mifq"), ("table17", "iiq"), ("table17", "mifq"), ("table18", "masqil"),
                                  ("table20", "mifq"), ("table21", "masqil"), ("table22", "mifq")]
                                 + [(f"table{n}", "expert") for n in range(15, 23)])


def test_mifq_table1_is_the_appendix_at_the_largest_demonstration_counts():
    """Table 1's win rates are Tables 8 (SMACv2) and 14 (Miner) at 4096 trajectories rounded to whole
    percents; its rewards are Table 22's at 128; the Expert row is the same at every count."""
    winrate = _mifq("table1_winrate").cells.set_index(["scenario", "method"])["mean"]
    reward = _mifq("table1_reward").cells.set_index(["scenario", "method"])["mean"]
    for name, table1 in (("table8", winrate), ("table14", winrate), ("table22", reward)):
        appendix = _mifq(name).cells.set_index(["scenario", "method"])["mean"]
        gap = (table1.loc[appendix.index] - appendix).abs()
        assert gap.max() <= (0.5 if name != "table22" else 1e-9), (name, gap.idxmax())
    for numbers in MIFQ_SWEEPS:
        experts = [_mifq(f"table{n}").cells.query("method == 'expert'")["mean"].tolist() for n in numbers]
        assert all(expert == experts[0] for expert in experts)


def test_mifq_hyperparameters_match_the_papers_table2():
    table = hyperparameters(MIFQ)
    assert table.cite == "MIFQ Table 2" and list(table.groups) == ["mpe", "miner_smacv2"]
    if not MIFQ_PAPER.is_file():
        pytest.skip(f"the paper's text is not beside the repository ({MIFQ_PAPER})")
    lines = MIFQ_PAPER.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Table 2:"))
    assert lines[start + 2].split("\t")[1:3] == list(table.groups.values())  # "MPEs", "Miner SMACv2"
    printed = {}
    for line in lines[start + 3:]:
        if not line.strip():
            break
        label, *cells = line.split("\t")
        printed[label] = {group: float(cell) for group, cell in zip(table.groups, cells, strict=False) if cell}
    rows = yaml.safe_load(MIFQ.read_text())["hyperparameters"]["rows"]
    assert sorted(printed) == sorted(row["label"] for row in rows.values())
    for name, row in rows.items():
        expected = {row["printed_under"]: row["shared"]} if "shared" in row else row["values"]
        assert printed[row["label"]] == expected, (name, printed[row["label"]])
        values = table.values.query("parameter == @name")
        assert values["shared"].all() == ("shared" in row) and len(values) == 2
        assert dict(zip(values["group"], values["value"])) == (
            dict.fromkeys(table.groups, row["shared"]) if "shared" in row else row["values"])


def test_the_mifq_extensions_refuse_what_they_should(tmp_path):
    original = yaml.load(MIFQ.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

    def edited(edit) -> Path:
        data = copy.deepcopy(original)
        edit(data)
        path = tmp_path / "mifq.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        return path

    zero = edited(lambda d: d["tables"]["table3"].__setitem__("demos", 0))
    with pytest.raises(ConfigError, match=r"tables\.table3\.demos: expected the number of expert demonstrations"):
        score_table(zero, "table3")
    with pytest.raises(ConfigError, match=r"tables\.table3\.demos"):
        load_checked(zero, SCHEMA)
    negative = edited(lambda d: d["tables"]["table3"]["methods"]["iiq"]["values"].__setitem__(0, -9.1))
    with pytest.raises(ConfigError, match=r"table3\.methods\.iiq\.values\[protoss_5_vs_5\]: -9.1 is outside \[0, 100\]"):
        score_table(negative, "table3")
    one_group = edited(lambda d: d["hyperparameters"]["rows"]["buffer_size"]["values"].pop("mpe"))
    with pytest.raises(ConfigError, match=r"rows\.buffer_size\.values: expected one value per group"):
        hyperparameters(one_group)
    nowhere = edited(lambda d: d["hyperparameters"]["rows"]["gamma"].__setitem__("printed_under", "smacv2"))
    with pytest.raises(ConfigError, match=r"rows\.gamma\.printed_under: expected one of mpe, miner_smacv2"):
        hyperparameters(nowhere)
    # a reward table sets our runs' final test return beside it (not their win rate)
    final = {"algo": "mifq", "env": "mpe:simple_spread", "seed": 0, "test_return_mean": -30.5, "test_won_mean": 0.0}
    cell = score_rows([final], score_table(MIFQ, "table15"), ["mifq"], "paper").set_index(["scenario", "method"])
    assert cell.loc[("simple_spread", "mifq"), "ours_mean"] == -30.5
