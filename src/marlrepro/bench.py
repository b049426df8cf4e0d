"""``marlrepro bench``: throughput measurements (kept out of the tests).

* ``rollout``: env-steps/s of the batched environment with the recurrent agent acting
  (epsilon-greedy), for several numbers of parallel environments.
* ``train``: end-to-end training env-steps/s and updates/s of one run (rollouts, replay and
  gradient updates), with evaluation off.
Results are printed and, with ``--out``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from typing import Any

import torch

from marlrepro.io_utils import write_json

log = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_rollout(config, num_envs: int, episodes: int) -> dict[str, Any]:
    """Env-steps/s of ``EpisodeRunner`` with the agent in the loop (after one warm-up rollout)."""
    from marlrepro.controller import AgentController
    from marlrepro.envs import make
    from marlrepro.runner import EpisodeRunner
    from marlrepro.train import resolve_device

    device = resolve_device(config.run.device)
    env = make(config.env.name, num_envs, config.run.seed, device, **config.env.options)
    runner = EpisodeRunner(env, AgentController(env.spec, config.agent).to(device))
    runner.run(epsilon=0.5)  # compile and warm up
    _sync(device)
    steps, start = 0, time.perf_counter()
    rounds = max(1, episodes // num_envs)
    for _ in range(rounds):
        _, stats = runner.run(epsilon=0.5)
        steps += int(stats.lengths.sum())
    _sync(device)
    seconds = time.perf_counter() - start
    env.close()
    return {"env": config.env.name, "num_envs": num_envs, "env_steps": steps, "seconds": seconds,
            "env_steps_per_s": steps / seconds, "device": str(device)}


def bench_train(config) -> dict[str, Any]:
    """End-to-end training throughput of one run at ``config``'s settings."""
    from marlrepro.train import Trainer

    config.run.eval_interval = config.run.t_max * 10
    config.run.eval_episodes = config.env.num_envs
    config.run.checkpoint_interval = 10**9
    config.tracking.uri = ""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        start = time.perf_counter()
        final = trainer.run()
        seconds = time.perf_counter() - start
    return {"env": config.env.name, "algo": config.algo, "num_envs": config.env.num_envs,
            "env_steps": final["t_env"], "updates": final["updates"], "seconds": seconds,
            "env_steps_per_s": final["t_env"] / seconds, "updates_per_s": final["updates"] / seconds,
            "device": final["device"]}


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="measure throughput (env-steps/s, updates/s)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, help_text in (("rollout", "env-steps/s with the agent acting"),
                            ("train", "end-to-end training env-steps/s and updates/s")):
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", action="append", default=[], metavar="YAML")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
        sub.add_argument("--out", metavar="JSON", help="also write the results here")
        if name == "rollout":
            sub.add_argument("--num-envs", type=int, nargs="+", default=[8, 128])
            sub.add_argument("--episodes", type=int, default=512, help="episodes per measurement")
        sub.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from marlrepro.config import load_config

    config = load_config(args.config, args.overrides)
    if args.kind == "rollout":
        results = [bench_rollout(config, n, max(args.episodes, n)) for n in args.num_envs]
    else:
        results = [bench_train(config)]
    for row in results:
        print(json.dumps(row))
    if args.out:
        write_json(args.out, results)
    return 0
