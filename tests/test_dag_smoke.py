"""The whole DAG at smoke scale: every wired table, figure and the report, from a clean copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [
    "results/tables/me_igm_table1_qmix.csv", "results/tables/me_igm_table1_qmix.md",
    "results/figures/me_igm_table1_qmix.png", "results/figures/me_igm_table1_qmix.pdf",
    "results/tables/vd_smax_curves.csv", "results/tables/vd_smax_curves.md",
    "results/figures/vd_smax_curves.png", "results/figures/vd_smax_curves.pdf",
    *(f"results/{kind}/igm_da_{target}.{ext}"
      for target in ("table1", "fig3", "fig4", "fig5ab", "fig5c", "fig6", "fig7")
      for kind, exts in (("tables", ("csv", "md")), ("figures", ("png", "pdf"))) for ext in exts),
]


@pytest.mark.slow
def test_smoke_dag_builds_every_target_and_the_report(tmp_path):
    for name in ("Snakefile", "workflow", "config", "envs"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", "scale=smoke"]
    run = subprocess.run(snakemake, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    for target in TARGETS:
        assert (tmp_path / target).stat().st_size > 0, target

    table = pd.read_csv(tmp_path / "results/tables/me_igm_table1_qmix.csv")
    assert table.astype(str).apply(lambda col: col.str.contains("published")).any().any()
    assert "smoke" in (tmp_path / "results/tables/me_igm_table1_qmix.md").read_text().lower()
    igm_table = (tmp_path / "results/tables/igm_da_table1.md").read_text()
    assert "smoke" in igm_table.lower() and "qmix-DA: published" in igm_table
    assert (tmp_path / "results/mlflow.db").exists()

    report = subprocess.run(snakemake + ["--report", "report.html"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-4000:]
    assert (tmp_path / "report.html").stat().st_size > 10_000
