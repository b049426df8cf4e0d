"""The Slurm profile: its resource precedence on a dry run, and a smoke target run through a real
Slurm cluster.

The real-cluster test needs a cluster that answers `sinfo`; `.ci/slurm-cluster.sh start` runs a
one-node one on this machine (export the SLURM_CONF it names). Without a cluster the test is
skipped, unless MARLREPRO_SLURM=1 (CI sets it), where a missing cluster is a failure. It submits
two one-CPU jobs of a few seconds to the default partition, with the shipped profile layered under
.ci/slurm-local (the one-node cluster's settings: squeue for job status, no accounting).

Snakemake runs on a copy of the workflow files in a temp dir, so results/ of the checkout are
never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LOCAL_PROFILE = REPO / ".ci" / "slurm-local"
SEEDS = 2  # runs of the smoke target below: one pack job at smoke scale (pack_size 2)
TARGET = "me_igm_table1_qmix"  # the cheapest table at smoke scale: matrix-game runs of seconds
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A copy of the workflow files (Snakefile, workflow/, config/, envs/, slurm/) in a temp dir."""
    shutil.copy(REPO / "Snakefile", tmp_path)
    for folder in ("workflow", "config", "envs", "slurm"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``, output merged. Slurm jobs inherit this environment (the
    plugin submits with sbatch --export=ALL): this checkout's marlrepro on PYTHONPATH, this
    interpreter's environment first on PATH (for `marlrepro train`), and SLURM_CONF if set. The
    partition and account variables of slurm/profile.yaml are dropped."""
    env = {k: v for k, v in os.environ.items() if k not in ("MARLREPRO_SLURM_PARTITION", "MARLREPRO_SLURM_ACCOUNT")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )  # fmt: skip


def train_resources(output: str, rule: str = "train") -> list[str]:
    """The `resources:` lines of the jobs of ``rule`` in a dry run's output."""
    jobs = output.split("\nrule ")[1:]
    return [re.search(r"^\s+resources: (.*)$", job, re.MULTILINE)[1] for job in jobs if job.startswith(f"{rule}:")]


def test_training_asks_for_its_scale_and_a_gpu_unless_on_cpu(workdir):
    """Without overrides the training rules' own request reaches the profile: the scale's runtime
    and memory (a pack: the memory of all its runs), and gpu=1 exactly where the device is not cpu.
    At smoke scale seeds 0-1 are a pack and seed 2 trains alone; at paper scale seeds 0-3 are a
    pack and seed 4 trains alone."""
    for config, jobs in (
        ("scale=smoke", [("train_pack_seeds0to1", 30, 2 * 4000, 0), ("train", 30, 4000, 0)]),
        ("scale=paper", [("train_pack_seeds0to3", 60, 4 * 4000, 1), ("train", 60, 4000, 1)]),
    ):
        result = snakemake(workdir, "-n", "--profile", "slurm", "--config", config, "--", TARGET)
        assert result.returncode == 0, result.stdout
        for rule, runtime, mem_mb, gpu in jobs:
            resources = train_resources(result.stdout, rule)
            assert len(resources) == 1, (config, rule)
            assert all(f"mem_mb={mem_mb}," in r and f"runtime={runtime}," in r and r.endswith(f"gpu={gpu}")
                       for r in resources), (config, rule, resources)


def test_profile_per_rule_settings_beat_the_rule(workdir):
    """A profile's set-resources for `train` (as in the commented block of slurm/profile.yaml) win
    over the runtime, memory and GPU request the rule takes from the scale, for one-run jobs
    (`train`) and pack jobs (`train_pack_seeds0to1`) alike."""
    layer = workdir / "site"
    layer.mkdir()
    wanted = {"slurm_partition": "trainq", "runtime": 7, "mem_mb": 1234, "gpu": 1}
    overrides = {"train": wanted, "train_pack_seeds0to1": wanted}
    (layer / "profile.yaml").write_text(yaml.safe_dump({"set-resources": overrides}))
    result = snakemake(
        workdir, "-n", "--profile", "slurm", "--profile", str(layer), "--config", "scale=smoke", "--", TARGET
    )
    assert result.returncode == 0, result.stdout
    resources = train_resources(result.stdout) + train_resources(result.stdout, "train_pack_seeds0to1")
    assert len(resources) == 2
    for r in resources:
        assert "slurm_partition=trainq" in r and "runtime=7," in r and "mem_mb=1234," in r and "gpu=1" in r, r


def test_shipped_profile_reads_status_from_accounting():
    """Real clusters keep sacct; only the one-node cluster's layer switches to squeue."""
    assert yaml.safe_load((REPO / "slurm" / "profile.yaml").read_text())["slurm-status-command"] == "sacct"
    assert yaml.safe_load((LOCAL_PROFILE / "profile.yaml").read_text())["slurm-status-command"] == "squeue"


def require_cluster() -> None:
    """Return if a Slurm cluster answers sinfo; else skip, or fail where MARLREPRO_SLURM=1."""
    required = os.environ.get("MARLREPRO_SLURM") == "1"
    why = "sinfo is not installed"
    if shutil.which("sinfo"):
        try:
            probe = subprocess.run(["sinfo", "--noheader"], capture_output=True, text=True, timeout=60)
            if probe.returncode == 0:
                return
            why = f"sinfo failed: {probe.stderr.strip()}"
        except subprocess.TimeoutExpired:
            why = "sinfo did not answer within 60 s"
    hint = "start one with `.ci/slurm-cluster.sh start` and export its SLURM_CONF"
    if required:
        pytest.fail(f"MARLREPRO_SLURM=1 but no Slurm cluster is reachable ({why}); {hint}")
    pytest.skip(f"no Slurm cluster ({why}); {hint}")


def slurm_job(job_id: str) -> dict[str, str]:
    """Slurm's record of a job (`scontrol show job`; finished jobs stay there MinJobAge seconds)."""
    shown = subprocess.run(["scontrol", "--oneliner", "show", "job", job_id], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return dict(re.findall(r"(\S+?)=(\S*)", shown.stdout))


@pytest.mark.slow
def test_smoke_target_trains_through_sbatch_on_a_real_cluster(workdir):
    require_cluster()
    result = snakemake(
        workdir, "--cores", "all", "--profile", "slurm", "--profile", str(LOCAL_PROFILE),
        "--slurm-keep-successful-logs", "--config", "scale=smoke", f"seeds={SEEDS}", "--", TARGET,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]

    # the training, and nothing else, went through sbatch: the two seeds as one pack job (smoke
    # pack_size 2); the table rule ran here
    submitted = SUBMITTED.findall(result.stdout)
    assert len(submitted) == 1, result.stdout[-6000:]
    assert f"localrule {TARGET}:" in result.stdout
    for job_id, log in submitted:
        job = slurm_job(job_id)
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert job["Comment"].startswith("rule_train_pack_seeds0to1") and Path(job["WorkDir"]) == workdir, job
        # the smoke scale's request for a pack of 2: 30 minutes, 2 x 4000 MB, 1 CPU, no GPU (device cpu)
        assert (job["TimeLimit"], job["MinMemoryNode"], job["NumCPUs"]) == ("00:30:00", "8000M", "1"), job
        assert "gpu" not in job["TRES"], job
        # the job's own log, written by Slurm, shows Snakemake running the rule as a job step
        assert Path(job["StdOut"]) == Path(log) and Path(log).is_relative_to(workdir / ".snakemake" / "slurm_logs")
        text = Path(log).read_text()
        assert "--executor slurm-jobstep" in text and "rule train_pack_seeds0to1:" in text, text[-3000:]

    for seed in range(SEEDS):
        assert (workdir / f"results/runs/me_igm/table1_qmix/matrix-me_igm/qmix/seed{seed}/final.json").is_file()
    for path in (f"tables/{TARGET}.csv", f"tables/{TARGET}.md", f"figures/{TARGET}.png", f"figures/{TARGET}.pdf"):
        assert (workdir / "results" / path).stat().st_size > 0, path
    table = pd.read_csv(workdir / f"results/tables/{TARGET}.csv")
    assert "greedy payoff" in set(table["quantity"]) and set(table["n_seeds"]) == {SEEDS}  # both seeds' runs
    assert set(table["scale"]) == {"smoke"}
    assert "smoke" in (workdir / f"results/tables/{TARGET}.md").read_text().lower()
