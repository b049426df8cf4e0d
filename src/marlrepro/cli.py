"""The ``marlrepro`` command line: ``marlrepro <command> --help`` documents each command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from marlrepro.errors import ConfigError

log = logging.getLogger("marlrepro")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train one run of any learner (config/algos/), or a pack of runs in one process (resumes from checkpoints)",
        description=(
            "Train one run of any learner family (value decomposition, IGM-DA, ME-IGM, FOP, MAPPO, IPPO, "
            "HASAC, the DDPG family: MADDPG, independent DDPG, CESMA's expert). Config files are merged in order, then each "
            "--set key=value override (dotted keys, YAML values), e.g. --set learner.lr=5e-4 "
            "--set env.name=smax:3m. Writes config.yaml, metrics.parquet and final.json to --out, "
            "checkpoints to --out/checkpoint, and logs the finished run to MLflow when "
            "tracking.uri or MLFLOW_TRACKING_URI is set. Re-running the same command resumes; a run "
            "killed after its last checkpoint rewrites every output from it. "
            "With --pack KEY=V1,V2,... it trains one run per value in one process (a pack, weights "
            "stacked): run i is the run the same command would make with --set KEY=Vi added, and the "
            "placeholder {KEY} in --out and in every --set value stands for Vi, e.g. --pack "
            "run.seed=0,1,2 --out 'runs/seed{run.seed}'. On SIGTERM or Ctrl-C it checkpoints at the "
            "end of the current rollout and exits with status 128 + the signal number (143, 130). "
            "MLflow being unreachable never fails the run: after a bounded retry "
            "(MARLREPRO_TRACKING_RETRY_S seconds in all) it exits 0 with its files written and "
            "--out/tracking_pending.json left for `marlrepro track --pending`. Status 1: a run of "
            "the pack diverged (non-finite loss; the others finished). Status 2: a bad config, a pack "
            "too large for memory, or an unreadable checkpoint (the message says which and what to do)."
        ),
    )
    parser.add_argument("--config", action="append", default=[], metavar="YAML",
                        help="config file; repeat to layer several (later wins)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one config key; repeatable")
    parser.add_argument("--pack", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="train a pack: one run per value of this one config key (YAML values, "
                             "comma separated), in one process")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run directory; with --pack, a template holding the placeholder {KEY}")
    parser.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from marlrepro.config import load_config
    from marlrepro.pack_plan import expand_pack
    from marlrepro.train import Diverged, Interrupted, train, train_pack

    if len(args.pack) > 1:
        raise ConfigError(f"--pack: given {len(args.pack)} times ({', '.join(args.pack)}); a pack varies one "
                          f"key, e.g. --pack run.seed=0,1,2")
    if args.pack:
        members = expand_pack(args.config, args.overrides, args.out, args.pack[0])
        run_dirs = [member.run_dir for member in members]
    else:
        config = load_config(args.config, args.overrides)
        run_dirs = [args.out]
    handlers = _log_to_run_dirs(run_dirs)
    log.info("start: %s", ", ".join(map(str, run_dirs)))
    try:
        finals = train_pack(members) if args.pack else [train(config, args.out)]
    except Interrupted as err:
        log.warning("%s", err)
        print(f"marlrepro: {err}", file=sys.stderr)
        return 128 + err.signum
    except Diverged as err:
        log.error("%s", err)
        print(f"marlrepro: error: {err}", file=sys.stderr)
        return 1
    except ConfigError as err:  # a clear message (main prints it), no traceback
        log.error("%s", err)
        raise
    except Exception:
        log.exception("failed")  # the traceback, into each run's own log too
        raise
    else:
        for run_dir, final in zip(run_dirs, finals, strict=True):
            log.info("done: %s t_env=%d test_return=%.3f win_rate=%.3f", run_dir, final["t_env"],
                     final["test_return_mean"], final["test_won_mean"])
        return 0
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()


RUN_LOG = "train.log"  # in each run directory: every attempt's log, appended (not a workflow output)


def _log_to_run_dirs(run_dirs: Sequence[str | Path]) -> list[logging.Handler]:
    """Append this process's log to ``train.log`` in each run directory; returns the handlers.
    The workflow's job log is replaced by each attempt (Snakemake removes a job's log before it
    runs the job again); this one keeps every attempt, its resumes and a failed one's traceback."""
    handlers: list[logging.Handler] = []
    for run_dir in run_dirs:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(run_dir) / RUN_LOG, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)
        handlers.append(handler)
    return handlers


def _add_track(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "track",
        help="log finished run directories to MLflow from this one process (idempotent)",
        description=(
            "Log every finished run directory (one holding final.json) under each PATH to MLflow, "
            "exactly as `marlrepro train` logs it when it ends. A run already logged with the same "
            "files is left as it is; a changed one replaces its earlier MLflow run. Use it to fill "
            "a store after jobs that ran without tracking (e.g. on a cluster with no MLflow server), "
            "or, with --pending, to log the runs whose training could not reach MLflow. A run "
            "logged here loses its tracking_pending.json. Exits 1 when a run cannot be logged."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a run directory, or a folder searched for them")
    parser.add_argument("--uri", default="", help="tracking URI (default: MLFLOW_TRACKING_URI; with --pending and "
                        "neither, the URI each run's tracking_pending.json records), e.g. "
                        "sqlite:///results/mlflow.db or http://host:5000")
    parser.add_argument("--pending", action="store_true",
                        help="only the runs whose logging is pending (holding tracking_pending.json)")
    parser.set_defaults(handler=_run_track)


def _run_track(args: argparse.Namespace) -> int:
    from pathlib import Path

    from marlrepro.tracking import (
        PENDING_FILE,
        TrackingError,
        log_run,
        pending_uri,
        resolve_uri,
    )

    uri = resolve_uri(args.uri)
    if not uri and not args.pending:
        raise ConfigError("track: no tracking URI; pass --uri or set MLFLOW_TRACKING_URI")
    run_dirs = []
    for path in map(Path, args.paths):
        if not path.is_dir():
            raise ConfigError(f"track: {path}: no such directory")
        found = sorted(final.parent for final in path.rglob("final.json"))
        if not found:
            raise ConfigError(f"track: {path}: holds no finished run (no final.json)")
        run_dirs += found
    if args.pending:
        run_dirs = [run_dir for run_dir in run_dirs if (run_dir / PENDING_FILE).is_file()]
    try:
        for run_dir in run_dirs:
            log_run(uri or pending_uri(run_dir), run_dir)
    except TrackingError as err:
        print(f"marlrepro: error: {err}", file=sys.stderr)
        return 1
    log.info("%d %srun directories are in MLflow", len(run_dirs), "pending " * args.pending)
    return 0


def _add_export_policy(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export-policy",
        help="write a run's trained decentralised policy to a versioned, checksummed file",
        description=(
            "Write the agents of RUN_DIR's checkpoint (a run alone or a member of a pack) to OUT_FILE: "
            "a zip archive, format marlrepro-policy version 1, holding manifest.json (the method, the "
            "environment and its spec, the controller, the run's config, the source run and t_env, the "
            "SHA-256 of the weights) and weights.pt (the controller's state dict). "
            "marlrepro.policy_file.load_policy loads it back as a ready controller, checking the format, "
            "version, checksum and shapes first; its greedy evaluation reproduces the run's. "
            "Status 2: no readable checkpoint or an unknown controller (the message says which)."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a training run's directory (holding checkpoint/)")
    parser.add_argument("out", metavar="OUT_FILE", help="the policy file to write (replaced atomically)")
    parser.add_argument("--controller", default="test", metavar="NAME",
                        help="which evaluated controller: test (default), the decentralised agents whose "
                             "greedy policy is the run's test metric; test_expert, IGM-DA's experts")
    parser.add_argument("--checkpoint", choices=("latest", "previous", "best"), default="latest",
                        help="latest (checkpoint/state.pt, default), previous (checkpoint/state.prev.pt, "
                             "the one before it) or best (checkpoint/best.pt: the learner at the run's best "
                             "evaluation, kept by a run with run.keep_best; final.json's best records it)")
    parser.set_defaults(handler=_run_export_policy)


def _run_export_policy(args: argparse.Namespace) -> int:
    from marlrepro.checkpoint import BEST_FILE, CHECKPOINT_FILE, PREVIOUS_FILE
    from marlrepro.policy_file import export_policy

    checkpoint = {"latest": CHECKPOINT_FILE, "previous": PREVIOUS_FILE, "best": BEST_FILE}[args.checkpoint]
    manifest = export_policy(args.run_dir, args.out, args.controller, checkpoint)
    log.info("wrote %s: the %s controller of %s on %s at t_env=%d (weights sha256 %s)", args.out,
             manifest.controller, manifest.method, manifest.env, manifest.t_env, manifest.weights_sha256)
    return 0


DEMOS_CONFIG = "config/demos.yaml"
DEMOS_SCHEMA = "workflow/schemas/demos.schema.yaml"


def _add_collect_demos(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "collect-demos",
        help="play an exported expert policy for N episodes and save them as a demonstration file",
        description=(
            "Play the policy in POLICY_FILE (written by `marlrepro export-policy`) on its task for --episodes "
            "episodes and write them to OUT_FILE: a zip archive, format marlrepro-demos version 1, holding "
            "manifest.json (the task and its spec, each episode's seed, how the expert acted, the expert's "
            "file, checksum and manifest, its mean return and win rate over these episodes, the SHA-256 of the "
            "episodes) and episodes.pt (obs, state, actions, avail_actions, reward, terminated, filled per "
            "episode, padded to the episode limit). Episode k is played alone in an env seeded SEED + k, so "
            "the first N episodes of a larger collection are the collection of N: every demo count of a task "
            "reads a prefix of one file (train config demos.count). The defaults and the paper's caps per "
            f"task (4096 for SMACv2 and Miner, 128 for MPE) come from --config ({DEMOS_CONFIG}). "
            "Status 2: a bad policy file, config or count (the message says which)."
        ),
    )
    parser.add_argument("policy", metavar="POLICY_FILE", help="an exported policy (marlrepro export-policy)")
    parser.add_argument("out", metavar="OUT_FILE", help="the demonstration file to write (replaced atomically)")
    parser.add_argument("--episodes", type=int, required=True, metavar="N", help="how many episodes to collect")
    parser.add_argument("--config", default=DEMOS_CONFIG, metavar="YAML",
                        help=f"collection settings and the paper's caps (default {DEMOS_CONFIG})")
    parser.add_argument("--seed", type=int, default=None, help="episode k's env seed is SEED + k (default: --config's)")
    parser.add_argument("--acting", choices=("greedy", "sampled"), default=None,
                        help="the expert's greedy actions or samples of its policy (default: --config's)")
    parser.add_argument("--width", type=int, default=None, metavar="W",
                        help="episodes played at once (default: --config's)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="where to play (default: the expert's run.device)")
    parser.add_argument("--summary", default=None, metavar="JSON",
                        help="also write the expert's score over these episodes to JSON, in final.json's fields "
                             "(algo expert, env, seed, test_return_mean, test_won_mean) with the expert's run, "
                             "checkpoint and t_env: what the workflow's tables read")
    parser.set_defaults(handler=_run_collect_demos)


def _run_collect_demos(args: argparse.Namespace) -> int:
    from marlrepro.config_schema import load_checked
    from marlrepro.demos import collect_demos, expert_summary
    from marlrepro.env_catalog import split_env_name
    from marlrepro.io_utils import write_json
    from marlrepro.policy_file import read_policy_file
    from marlrepro.train import resolve_device

    settings = load_checked(args.config, DEMOS_SCHEMA)
    manifest, _ = read_policy_file(args.policy)
    backend = split_env_name(manifest.env)[0]
    cap = settings["max_episodes"].get(backend, settings["default_max_episodes"])
    device = resolve_device(args.device or manifest.config["run"]["device"])
    demos = collect_demos(args.policy, args.out, args.episodes, settings["seed"] if args.seed is None else args.seed,
                          args.acting or settings["acting"], args.width or settings["width"], device, cap)
    if args.summary:
        write_json(args.summary, expert_summary(demos, args.out))
    return 0


def _add_validation_table(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "validation-table",
        help="the validation table (docs/validation.md) from the validation-scale runs",
        description="Write the IGM-DA validation table (OUT.csv, OUT.md) from the runs that the scale "
                    "plans for the experiments of config/PAPER.yaml: per map and method the final, "
                    "last-5-mean and best evaluations and the experts' final (median [min, max] over "
                    "seeds), the env steps reached, the published number and the direction of -DA "
                    "against its baseline. Run from the repository root.",
    )  # fmt: skip
    parser.add_argument("runs_root", help="the runs' root directory, e.g. results/runs")
    parser.add_argument("--paper", default="igm_da", help="config/PAPER.yaml (default igm_da)")
    parser.add_argument("--experiments", nargs="+", default=["sight0", "bc"], help="default: sight0 bc")
    parser.add_argument("--envs", nargs="+", default=None, metavar="ENV",
                        help="only the runs on these envs (e.g. smax:8m); default: every planned env")
    parser.add_argument("--scale", default="validation", help="the scale the runs were made at (default validation)")
    parser.add_argument("--published", default="config/published/igm_da.yaml", help="the paper's numbers")
    parser.add_argument("--out", default="results/tables/igm_da_validation",
                        help="output prefix; writes OUT.csv and OUT.md (default results/tables/igm_da_validation)")
    parser.set_defaults(handler=_run_validation_table)


def _run_validation_table(args: argparse.Namespace) -> int:
    from marlrepro.config_schema import load_checked
    from marlrepro.report.runs import RunDataError
    from marlrepro.report.validation import planned_run_dirs, validation_report

    run_dirs = planned_run_dirs(args.runs_root, args.paper, args.experiments, args.scale, args.envs)
    description = load_checked(f"config/scales/{args.scale}.yaml", "workflow/schemas/scale.schema.yaml")["description"]
    try:
        table = validation_report(run_dirs, args.published, args.scale, description,
                                  [f"{args.out}.csv", f"{args.out}.md"])  # fmt: skip
    except RunDataError as err:
        raise ConfigError(str(err)) from None
    print(f"wrote {args.out}.csv and {args.out}.md ({len(table)} rows from {len(run_dirs)} runs)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marlrepro",
        description="Regenerate decentralised cooperative MARL papers: training, benchmarks, tracking.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands)
    _add_track(commands)
    _add_export_policy(commands)
    _add_collect_demos(commands)
    from marlrepro.bench import add_bench_parser

    add_bench_parser(commands)
    _add_validation_table(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"marlrepro: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
