"""The whole DAG at smoke scale: every wired table, figure and the report, from a clean copy.

The DAG runs once per session (the ``smoke_dag`` fixture: 10 minutes alone on 2 cores in CI,
12–16 beside the other tests, hence the longer timeout of the first test); the report
(``smoke_report``, under a minute) is built once from its outputs and read by the report tests. The
screenshot test needs chromium (Debian: ``apt-get install chromium``); it is skipped without it,
unless ``MARLREPRO_BROWSER=1`` (CI) makes a missing browser a failure.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from marlrepro.report.claims import NO_ROWS
from marlrepro.report.html_table import DIFFERENCE

ROOT = Path(__file__).resolve().parents[1]
TABLES = ["me_igm_table1", "me_igm_table1_qmix", "me_igm_table1_fop", "me_igm_table1_me_qmix", "me_igm_table2",
          "me_igm_table3", "me_igm_table4", *(f"me_igm_fig{n}" for n in (2, 4, 5, 6)), "vd_smax_curves",
          *(f"igm_da_{target}" for target in ("table1", "fig3", "fig4", "fig5ab", "fig5c", "fig6", "fig7")),
          "mifq_table1", "mifq_fig2", "mifq_fig3", "mifq_table18", *(f"cesma_fig{n}" for n in (4, 5, 6, 7, 8, 9))]  # fmt: skip
TARGETS = [
    *(f"results/tables/{table}.{ext}" for table in TABLES for ext in ("csv", "md", "html")),
    *(f"results/figures/{table}.{ext}" for table in TABLES for ext in ("png", "pdf")),
]
# figures the paper prints without numbers: its words stand beside ours, with nothing to subtract
QUALITATIVE = {"igm_da_fig6", *(f"me_igm_fig{n}" for n in (2, 4, 5, 6)), "mifq_fig2", *(f"cesma_fig{n}" for n in (4, 5, 6, 7, 8, 9))}
CATEGORY = {"me_igm": "ME-IGM — maximum-entropy IGM (Tables 1–4, Figures 2 and 4–6)", "vd": "Foundation — value decomposition on SMAX",
            "igm_da": "IGM-DA — Rethinking IGM (Table 1, Figures 3–7)",
            "mifq": "MIFQ — inverse factorized Q-learning from demonstrations (Tables 1, 3–22 and Figures 2, 3)",
            "cesma": "Decentralised imitation (CESMA) — a centralised expert decentralised by DAgger (Figures 4 to 9)"}  # fmt: skip
LEDGER = "Claim ledger — does each paper's claim hold here?"
LEDGERS = {"igm_da": "IGM-DA", "me_igm": "ME-IGM", "mifq": "MIFQ", "cesma": "CESMA"}  # paper -> its subcategory in the ledger
SMOKE_BANNER = "SMOKE SCALE — not comparable with the paper"
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)


def snakemake(workdir: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """``snakemake --config scale=smoke ARGS`` in ``workdir``, marlrepro imported from this checkout."""
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--config", "scale=smoke", *args], check=False, cwd=workdir,
        env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def smoke_dag(tmp_path_factory) -> Path:
    """A copy of the workflow in which the smoke DAG has run (every target built)."""
    root = tmp_path_factory.mktemp("smoke")
    for name in ("Snakefile", "workflow", "config", "envs"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    run = snakemake(root, "--cores", "2", timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    return root


@pytest.fixture(scope="module")
def smoke_report(smoke_dag) -> Path:
    """results/report.html of the smoke DAG, as `snakemake --report` writes it."""
    report = snakemake(smoke_dag, "--report", "results/report.html", timeout=300)
    assert report.returncode == 0, report.stderr[-4000:]
    return smoke_dag / "results" / "report.html"


def embedded(report: str, name: str) -> dict:
    """The JSON object that the report's ``<script id="NAME">`` assigns to ``var NAME``."""
    start = report.index(f"var {name} = ", report.index(f'<script id="{name}">')) + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(report, start)[0]


def decoded(entry: dict) -> str:
    """The text of a file embedded in the report (its base64 data URI)."""
    return base64.b64decode(entry["data_uri"].split("base64,", 1)[1]).decode("utf-8")


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the whole smoke DAG runs in this test's setup
def test_smoke_dag_builds_every_target(smoke_dag):
    for target in TARGETS:
        assert (smoke_dag / target).stat().st_size > 0, target
    table = pd.read_csv(smoke_dag / "results/tables/me_igm_table1_qmix.csv")
    assert {"value_median", "published_value", "difference"} <= set(table.columns)
    assert "smoke" in (smoke_dag / "results/tables/me_igm_table1_qmix.md").read_text().lower()
    whole = pd.read_csv(smoke_dag / "results/tables/me_igm_table1.csv")  # the paper's three rows, in its order
    assert list(dict.fromkeys(whole["method"])) == ["QMIX", "FOP", "ME-QMIX"]
    for method, part in (("QMIX", table), ("FOP", pd.read_csv(smoke_dag / "results/tables/me_igm_table1_fop.csv"))):
        rows = whole[whole["method"] == method].drop(columns="method").reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, part)
    igm_table = (smoke_dag / "results/tables/igm_da_table1.md").read_text()
    assert "smoke" in igm_table.lower() and "| qmix-DA | published |" in igm_table
    # MIFQ: the expert's demonstrations were played by the DAG, and Table 1 sets its score of ours beside the paper's
    mifq = pd.read_csv(smoke_dag / "results/tables/mifq_table1.csv").set_index(["scenario", "method"])
    assert mifq.loc[("simple_spread", "expert"), "n_seeds"] == 1 and mifq.loc[("simple_spread", "mifq"), "n_seeds"] == 1
    expert = json.loads((smoke_dag / "results/demos/mifq/experts_mpe/jaxmpe-simple_spread/expert.json").read_text())
    assert expert["episodes"] == 8 and expert["expert_checkpoint"] == "checkpoint/best.pt"
    assert (smoke_dag / "results/mlflow.db").exists()
    # the jobs compiled into the workflow's shared JAX cache (config jax_cache)
    assert any((smoke_dag / "results/cache/jax").iterdir())


@pytest.mark.slow
def test_smoke_ledger_judges_nothing(smoke_dag):
    for paper in LEDGERS:
        ledger = pd.read_csv(smoke_dag / f"results/tables/{paper}_claims.csv")
        assert len(ledger) > 0 and set(ledger["verdict"]) == {"not judged"}, ledger
        built = ~ledger["evidence"].str.startswith("target not built")
        planned = ~ledger["evidence"].str.contains(NO_ROWS)  # a built figure whose panels read "not planned"
        assert ledger.loc[built & planned, "evidence"].str.contains("smoke-scale table").all(), ledger
    me_igm = pd.read_csv(smoke_dag / "results/tables/me_igm_claims.csv").set_index("claim")
    assert me_igm.loc["table1_me_qmix_optimal", "evidence"].startswith("me_igm_table1_me_qmix is a smoke-scale table")


@pytest.mark.slow
def test_report_shows_every_table_beside_the_paper_and_marks_smoke(smoke_report):
    report = smoke_report.read_text()
    results, categories = embedded(report, "results"), embedded(report, "categories")
    assert set(categories) == {*CATEGORY.values(), LEDGER}
    assert sorted(categories)[0] == LEDGER  # the report's menu sorts categories: the ledger comes first
    for paper, subcategory in LEDGERS.items():
        path = f"results/tables/{paper}_claims.html"
        assert categories[LEDGER][subcategory] == [path]
        page = html.unescape(decoded(results[path]))
        assert SMOKE_BANNER in page and "not judged" in page and ">holds<" not in page, paper
    caption = html.unescape(results["results/tables/igm_da_claims.html"]["caption"])
    assert "table1_avg_gap" in caption and "showResultInfo" in caption and "igm_da_table1.html" in caption
    for table in TABLES:
        category = CATEGORY[next(paper for paper in CATEGORY if table.startswith(paper))]
        path = f"results/tables/{table}.html"
        assert path in results, f"{table}: its HTML table is not in the report"
        assert any(path in items for items in categories[category].values()), f"{table} not under {category}"
        assert f"results/figures/{table}.png" in results
        page = html.unescape(decoded(results[path]))
        assert SMOKE_BANNER in page and "Scale: <b>smoke</b>" in page and "Backend: <b>" in page, table
        assert "<th" in page and ">ours" in page and ">published" in page, f"{table}: no ours/published columns"
        if table not in QUALITATIVE:
            assert f">{DIFFERENCE}<" in page, f"{table}: no difference column"
        for item in (path, f"results/figures/{table}.png"):
            caption = html.unescape(results[item]["caption"])
            assert SMOKE_BANNER in caption and "Scale:" in caption and "smoke" in caption, item
    vd = html.unescape(decoded(results["results/tables/vd_smax_curves.html"]))
    assert "none: not a paper's result" in vd and "No paper publishes this experiment" in vd
    fig7 = html.unescape(decoded(results["results/tables/igm_da_fig7.html"]))
    assert ">not printed<" in fig7  # Figure 7 (sight range 9) has no published numbers
    assert "Setting:" in results["results/tables/igm_da_table1.html"]["caption"]


def screenshot(report: Path, png: Path, show: str | None = None, navbar: str = "subcategory") -> np.ndarray:
    """Render ``report`` in headless chromium (1400x2000) to ``png`` and return the pixels.

    With ``show`` (a result's path), that result is open, beside its subcategory's list of results
    (``navbar="subcategory"``) or its caption (``navbar="resultinfo"``): the report is a single-page
    app, so a script added to a copy of the page opens it.
    """
    page = report
    if show is not None:
        page = report.with_name(f"{report.stem}-show.html")
        script = (
            "<script>(function (path, navbar) { setTimeout(function () {"
            " var where = Object.entries(categories).flatMap(([c, subs]) => Object.entries(subs)"
            "   .filter(([s, paths]) => paths.includes(path)).map(([s]) => [c, s]))[0];"
            " app.setView({navbarMode: navbar, category: where[0], subcategory: where[1], resultPath: path,"
            "   content: results[path].mime_type === 'text/html' ? 'html' : 'img', contentPath: results[path].data_uri});"
            f" }}, 300); }})({json.dumps(show)}, {json.dumps(navbar)});</script>"
        )
        head, _, tail = report.read_text().rpartition("</body>")
        page.write_text(head + script + "</body>" + tail)
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={png}",
         "--window-size=1400,2000", "--virtual-time-budget=10000", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return imread(png)


@pytest.mark.slow
def test_report_renders_in_a_browser(smoke_report, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("MARLREPRO_BROWSER") == "1":
            pytest.fail("MARLREPRO_BROWSER=1 but no chromium on PATH (Debian: apt-get install chromium)")
        pytest.skip("chromium is not installed")
    landing = screenshot(smoke_report, tmp_path / "landing.png")
    table = screenshot(smoke_report, tmp_path / "table.png", show="results/tables/igm_da_table1.html")
    for pixels in (landing, table):
        assert pixels.shape[:2] == (2000, 1400) and pixels[..., :3].std() > 0.05  # not a blank page
    assert np.abs(landing[..., :3] - table[..., :3]).mean() > 0.01  # the table view is another picture
    banner = np.all(np.abs(table[..., :3] - np.array([0xD5, 0x5E, 0x00]) / 255) < 0.1, axis=-1)
    assert banner.sum() > 1000  # the smoke banner's orange border is drawn in the table view
