"""``marlrepro bench``: throughput measurements (kept out of the tests).

* ``rollout``: env-steps/s of the batched environment with the recurrent agent acting
  (epsilon-greedy), for several numbers of parallel environments.
* ``train``: training env-steps/s and updates/s of one run or of packs of runs
  (``--pack-size 1 4 16``; rollouts, replay and gradient updates) at steady state, compilation
  excluded like the anchor's, and end to end; evaluation is one rollout every eighth of the run.
* ``phases``: a pack's rollout and update timed apart, to see which bounds it.
* ``run``: steady-state env-steps/s and updates/s of one run of a paper experiment, trained with
  the exact settings the workflow would give it (e.g. IGM-DA's appendix D), evaluation included;
  measured between the second and the last evaluation, so compilation is left out. Also the
  peak GPU memory, which decides how many runs can share a GPU.
* ``anchor``: JaxMARL's own pure-JAX QMIX from a JaxMARL checkout, the anchor the ``train``
  numbers are compared with (:mod:`marlrepro.bench_anchor`).
* ``env``: pure-JAX env-steps/s of SMAX-family environments under a uniformly random policy over
  available actions (one compiled ``lax.scan``; no torch), e.g. the extended env against stock
  SMAX in the same process.
Results are printed and, with ``--out``, written as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from marlrepro import bench_anchor
from marlrepro.errors import ConfigError
from marlrepro.io_utils import write_json

log = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_rollout(config, num_envs: int, episodes: int) -> dict[str, Any]:
    """Env-steps/s of ``EpisodeRunner`` with the agent in the loop (after one warm-up rollout)."""
    from marlrepro.core.stacked import StackedModules, child_name
    from marlrepro.envs import make
    from marlrepro.learners.build import build_learner
    from marlrepro.runner import EpisodeRunner
    from marlrepro.train import resolve_device

    device = resolve_device(config.run.device)
    env = make(config.env.name, num_envs, config.run.seed, device, **config.env.options)
    learners = StackedModules([build_learner(env.spec, config, device)])
    acting = child_name(learners.template, learners.template.acting_controller)
    runner = EpisodeRunner([env], learners, acting, config.run.rollout)
    generators = [torch.Generator(device)]
    runner.run([0.5], [True], generators)  # compile and warm up
    _sync(device)
    steps, start = 0, time.perf_counter()
    rounds = max(1, episodes // num_envs)
    for _ in range(rounds):
        _, stats = runner.run([0.5], [True], generators)
        steps += int(stats.lengths.sum())
    _sync(device)
    seconds = time.perf_counter() - start
    env.close()
    return {"env": config.env.name, "num_envs": num_envs, "env_steps": steps, "seconds": seconds,
            "env_steps_per_s": steps / seconds, "device": str(device)}


def _seed_pack(config, root: str, seeds: Iterable[int]) -> list:
    """The members of a pack of ``config``'s run at each of ``seeds``, in ``root/seed<k>``."""
    from marlrepro.pack_plan import PackMember

    return [PackMember(dataclasses.replace(config, run=dataclasses.replace(config.run, seed=seed)),
                       Path(root) / f"seed{seed}") for seed in seeds]


def bench_train(config, pack_size: int = 1) -> dict[str, Any]:
    """Training throughput of a pack of ``pack_size`` runs (seeds 0..R−1) at ``config``'s
    settings: env-steps/s and updates/s in total and per run, at steady state (between the second
    and the last of eight one-rollout evaluations, so compilation and the first fills are left out,
    as :func:`marlrepro.bench_anchor.bench_anchor` leaves out the anchor's compilation), and
    end to end (start-up included)."""
    import pandas as pd

    from marlrepro.train import Trainer

    config.run.eval_interval = max(config.run.t_max // 8, 1)
    config.run.eval_episodes = config.env.num_envs
    config.run.checkpoint_interval = 10**9
    config.tracking.uri = ""
    with tempfile.TemporaryDirectory() as root:
        members = _seed_pack(config, root, range(pack_size))
        trainer = Trainer(members)
        start = time.perf_counter()
        finals = trainer.run()
        seconds = time.perf_counter() - start
        metrics = [pd.read_parquet(m.run_dir / "metrics.parquet") for m in members]
    steps, updates = sum(f["t_env"] for f in finals), sum(f["updates"] for f in finals)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {"env": config.env.name, "algo": config.algo, "num_envs": config.env.num_envs,
            "pack_size": pack_size, **_steady_state(metrics, config.run), "env_steps": steps, "updates": updates,
            "seconds": seconds, "env_steps_per_s_with_startup": steps / seconds,
            "peak_gpu_gib": peak, "device": finals[0]["device"]}


def _steady_state(metrics: list, run: Any) -> dict[str, float]:
    """Env-steps/s (in total and per run) and updates/s of a pack between its second and its
    last evaluation, from the runs' ``metrics.parquet`` frames (the pack shares one clock);
    ``run`` is the runs' ``RunConfig``, named in the error when there are too few evaluations."""
    if len(metrics[0]) < 3:
        raise ConfigError(f"bench: t_max {run.t_max} gives {len(metrics[0])} evaluations, and a steady-state rate "
                          f"needs three; raise it to at least 2 x run.eval_interval ({run.eval_interval})")
    steps = sum(m.iloc[-1]["t_env"] - m.iloc[1]["t_env"] for m in metrics)
    updates = sum(m.iloc[-1]["update"] - m.iloc[1]["update"] for m in metrics)
    seconds = metrics[0].iloc[-1]["wall_time_s"] - metrics[0].iloc[1]["wall_time_s"]
    return {"steady_env_steps": int(steps), "steady_seconds": float(seconds),
            "env_steps_per_s": steps / seconds, "env_steps_per_s_per_run": steps / seconds / len(metrics),
            "updates_per_s": updates / seconds}


def bench_phases(config, pack_size: int, rollouts: int = 10, updates: int = 5) -> dict[str, Any]:
    """The two phases of a pack of ``pack_size`` runs timed apart: one rollout (8 episodes per run
    at pymarl2's settings) and one update of all runs, each averaged after warm-up (the buffers
    are first filled to a batch)."""
    from marlrepro.train import Trainer

    config.tracking.uri = ""
    with tempfile.TemporaryDirectory() as root:
        members = _seed_pack(config, root, range(pack_size))
        trainer = Trainer(members)
        device, runs = trainer.device, list(range(pack_size))
        generators, active = [run.generator for run in trainer.runs], [True] * pack_size
        while not all(trainer.buffer.can_sample(config.learner.batch_size)):
            episodes, _ = trainer.runner.run([0.5] * pack_size, active, generators)
            trainer.buffer.insert(episodes, runs)
        trainer._train_step(active)  # warm-up
        _sync(device)
        start, steps = time.perf_counter(), 0
        for _ in range(rollouts):
            _, stats = trainer.runner.run([0.5] * pack_size, active, generators)
            steps += int(stats.lengths.sum())
        _sync(device)
        middle = time.perf_counter()
        for _ in range(updates):  # updates_per_rollout each (1 with learner.updates_per_env_step)
            trainer._train_step(active)
        _sync(device)
        end = time.perf_counter()
    return {"env": config.env.name, "algo": config.algo, "pack_size": pack_size,
            "rollout_ms": 1000 * (middle - start) / rollouts, "rollout_env_steps_per_s": steps / (middle - start),
            "update_ms": 1000 * (end - middle) / (updates * config.learner.updates_per_rollout),
            "device": str(device)}


def bench_planned_run(paper: str, experiment: str, env: str, algo: str, t_max: int,
                      overrides: list[str], scale: str = "paper", device: str = "cuda",
                      pack_size: int = 1) -> dict[str, Any]:
    """Steady-state throughput of the ``env``/``algo`` run of ``config/<paper>.yaml``'s
    ``experiment`` at ``scale``, cut to ``t_max`` steps (needs at least three evaluations), alone
    or as a pack of ``pack_size`` seeds (``run.seed`` onwards): env-steps/s in total, between the
    pack's second and last evaluations."""
    import pandas as pd

    from marlrepro.config import load_config, read_settings
    from marlrepro.config_schema import load_checked
    from marlrepro.experiments import (
        format_value,
        plan_paper,
        resolve_env,
        scale_from_dict,
    )
    from marlrepro.train import Trainer

    scales = [path.stem for path in Path("config/scales").glob("*.yaml")]
    algos = {path.stem: read_settings(path) for path in Path("config/algos").glob("*.yaml")}
    plan = plan_paper(paper, load_checked(f"config/{paper}.yaml", "workflow/schemas/paper.schema.yaml"),
                      scale_from_dict(scale, load_checked(f"config/scales/{scale}.yaml",
                                                          "workflow/schemas/scale.schema.yaml")),
                      {"seeds": 1, "device": device, "backend": "smax"}, scales, algos)
    if experiment not in plan:
        raise ConfigError(f"bench run: no experiment {experiment!r} in config/{paper}.yaml; "
                          f"valid choices: {', '.join(plan)}")
    runs = {(r.env, r.algo): r for r in plan[experiment].runs()}
    key = (resolve_env(env, "smax"), algo)
    if key not in runs:
        raise ConfigError(f"bench run: {paper}/{experiment} has no run {env} {algo}; its runs: "
                          + ", ".join(f"{e} {a}" for e, a in sorted(runs)))
    run = runs[key]
    settings = {**run.train_settings(), "run.t_max": t_max, "tracking.uri": ""}
    config = load_config([f"config/algos/{algo}.yaml"],
                         [f"{k}={format_value(v)}" for k, v in settings.items()] + overrides)
    cuda = config.run.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as root:
        members = _seed_pack(config, root, range(config.run.seed, config.run.seed + pack_size))
        Trainer(members).run()
        metrics = [pd.read_parquet(m.run_dir / "metrics.parquet") for m in members]
    return {"paper": paper, "experiment": experiment, "env": config.env.name, "algo": algo,
            "pack_size": pack_size, "buffer_dtype": config.learner.buffer_dtype,
            "cuda_graph": config.run.cuda_graph, **_steady_state(metrics, config.run),
            "peak_gpu_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
            "device": torch.cuda.get_device_name() if cuda else "cpu"}


def bench_env(name: str, num_envs: int, steps: int, device: str, seed: int = 0) -> dict[str, Any]:
    """Env-steps/s of ``steps`` random-policy steps of ``num_envs`` battles (compile excluded)."""
    import jax
    import jax.numpy as jnp

    from marlrepro.envs import make
    from marlrepro.envs.jax_rollout import epsilon_greedy
    from marlrepro.envs.jax_smax import SMAXBatch, packed_widths

    env = make(name, num_envs, seed, device)
    if not isinstance(env, SMAXBatch):
        raise ConfigError(f"bench env: {name} is not a JAX SMAX-family env (smax, smacv2, smax_stock)")
    spec = env.spec
    start = sum(packed_widths(spec)[:2])

    def avail_of(packed: jax.Array) -> jax.Array:
        flat = packed[:, start:start + spec.n_agents * spec.n_actions]
        return flat.reshape(num_envs, spec.n_agents, spec.n_actions) > 0.5

    def run(key: jax.Array) -> jax.Array:
        state, key, packed = env.reset_batch(key)

        def body(carry, _):
            state, key, packed = carry
            key, act_key = jax.random.split(key)
            avail = avail_of(packed)
            actions = epsilon_greedy(act_key, jnp.zeros(avail.shape), avail, jnp.float32(1.0))
            return env.step_batch(state, key, actions.astype(jnp.int32)), packed[:, -4].sum()

        _, rewards = jax.lax.scan(body, (state, key, packed), None, length=steps)
        return rewards.sum()

    compiled = jax.jit(run).lower(env.key).compile()
    compiled(env.key).block_until_ready()  # warm-up
    began = time.perf_counter()
    compiled(jax.random.fold_in(env.key, 1)).block_until_ready()
    seconds = time.perf_counter() - began
    return {"env": name, "num_envs": num_envs, "steps": steps, "seconds": seconds,
            "env_steps_per_s": num_envs * steps / seconds, "device": str(env.device)}


def bench_jaxmarl_reference(scenario: str, num_envs: int, steps: int, device: str) -> dict[str, Any]:
    """The same measurement on JaxMARL's own API (``HeuristicEnemySMAX.step``, its auto-reset),
    without marlrepro's batch wrapper: the reference the extended env's ratio is stated against."""
    import jax
    import jax.numpy as jnp

    from marlrepro.envs.jax_rollout import epsilon_greedy
    from marlrepro.envs.smax_stock import OPTIONS, build_env

    env = build_env(scenario, **{key: default for key, (_, default) in OPTIONS.items()})
    agents = env.agents

    def run(key: jax.Array) -> jax.Array:
        key, reset_key = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(carry, _):
            state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            per_agent = jax.vmap(env.get_avail_actions)(state)
            avail = jnp.stack([per_agent[a] for a in agents], axis=1) > 0
            actions = epsilon_greedy(act_key, jnp.zeros(avail.shape), avail, jnp.float32(1.0))
            _, state, rewards, _, _ = jax.vmap(env.step)(
                jax.random.split(step_key, num_envs), state, {a: actions[:, i] for i, a in enumerate(agents)})
            return (state, key), rewards[agents[0]].sum()

        _, rewards = jax.lax.scan(body, (state, key), None, length=steps)
        return rewards.sum()

    with jax.default_device(jax.devices("gpu" if device == "cuda" else "cpu")[0]):
        key = jax.random.key(0)
        compiled = jax.jit(run).lower(key).compile()
        compiled(key).block_until_ready()  # warm-up
        began = time.perf_counter()
        compiled(jax.random.fold_in(key, 1)).block_until_ready()
        seconds = time.perf_counter() - began
    return {"env": f"jaxmarl:{scenario} (own API)", "num_envs": num_envs, "steps": steps, "seconds": seconds,
            "env_steps_per_s": num_envs * steps / seconds, "device": device}


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="measure throughput (env-steps/s, updates/s)",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, help_text in (("rollout", "env-steps/s with the agent acting"),
                            ("train", "training env-steps/s and updates/s (steady state, and end to end)"),
                            ("phases", "a pack's rollout and update timed apart")):
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", action="append", default=[], metavar="YAML")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
        sub.add_argument("--out", metavar="JSON", help="also write the results here")
        if name == "rollout":
            sub.add_argument("--num-envs", type=int, nargs="+", default=[8, 128])
            sub.add_argument("--episodes", type=int, default=512, help="episodes per measurement")
        else:
            sub.add_argument("--pack-size", type=int, nargs="+", default=[1],
                             help="runs trained together in one process (seeds 0..R-1); one measurement each")
        sub.set_defaults(handler=_run_bench)
    run_parser = kinds.add_parser("run", help="steady-state throughput of one run of a paper experiment",
                                  description=bench_planned_run.__doc__)
    run_parser.add_argument("experiment", metavar="PAPER/EXPERIMENT", help="e.g. igm_da/sight0")
    run_parser.add_argument("--env", required=True, help="e.g. smax:MMM2")
    run_parser.add_argument("--algo", required=True, help="e.g. qmix_da")
    run_parser.add_argument("--t-max", type=int, default=30_000)
    run_parser.add_argument("--scale", default="paper")
    run_parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    run_parser.add_argument("--pack-size", type=int, nargs="+", default=[1],
                            help="seeds run.seed.. trained as one pack; one measurement each")
    run_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    run_parser.add_argument("--out", metavar="JSON", help="also write the results here")
    run_parser.set_defaults(handler=_run_bench)
    env_parser = kinds.add_parser("env", help="pure-JAX env-steps/s of SMAX-family envs (random policy)",
                                  description=bench_env.__doc__)
    env_parser.add_argument("--envs", nargs="+", default=["smax_stock:3s5z", "smax:3s5z"], metavar="NAME")
    env_parser.add_argument("--num-envs", type=int, nargs="+", default=[1024])
    env_parser.add_argument("--steps", type=int, default=100, help="steps per measurement")
    env_parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    env_parser.add_argument("--reference", metavar="MAP", default="3s5z",
                            help="also time JaxMARL's own stock SMAX API on this map ('' to skip)")
    env_parser.add_argument("--out", metavar="JSON", help="also write the results here")
    env_parser.set_defaults(handler=_run_bench)
    anchor_parser = kinds.add_parser("anchor", help="JaxMARL's own pure-JAX QMIX, the anchor (needs a checkout)",
                                     description=bench_anchor.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    anchor_parser.add_argument("--jaxmarl", required=True, metavar="DIR", help="root of a FLAIROx/JaxMARL checkout")
    anchor_parser.add_argument("--map", default="3s5z")
    anchor_parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4],
                               help="seeds vmapped in one program; one measurement each")
    anchor_parser.add_argument("--t-max", type=int, default=1_000_000, help="env steps per seed")
    anchor_parser.add_argument("--pymarl-sized", action="store_true",
                               help="set " + " ".join(bench_anchor.PYMARL_SIZED) + " (notes/smax.md)")
    anchor_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                               help="a key of the script's config (YAML value)")
    anchor_parser.add_argument("--out", metavar="JSON", help="also write the results here")
    anchor_parser.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from marlrepro.config import load_config

    if args.kind == "env":
        results = []
        for n in args.num_envs:
            if args.reference:
                results.append(bench_jaxmarl_reference(args.reference, n, args.steps, args.device))
            results += [bench_env(name, n, args.steps, args.device) for name in args.envs]
        _report(results, args.out)
        return 0
    if args.kind == "anchor":
        overrides = [*(bench_anchor.PYMARL_SIZED if args.pymarl_sized else ()), *args.overrides]
        _report((bench_anchor.bench_anchor(args.jaxmarl, args.map, n, args.t_max, overrides) for n in args.seeds),
                args.out)
        return 0
    if args.kind == "run":
        paper, _, experiment = args.experiment.partition("/")
        _report((bench_planned_run(paper, experiment, args.env, args.algo, args.t_max, args.overrides,
                                   args.scale, args.device, r) for r in args.pack_size), args.out)
        return 0
    config = load_config(args.config, args.overrides)
    if args.kind == "rollout":
        results = (bench_rollout(config, n, max(args.episodes, n)) for n in args.num_envs)
    elif args.kind == "phases":
        results = (bench_phases(load_config(args.config, args.overrides), r) for r in args.pack_size)
    else:
        results = (bench_train(load_config(args.config, args.overrides), r) for r in args.pack_size)
    _report(results, args.out)
    return 0


def _report(results: Iterable[dict[str, Any]], out: str | None) -> None:
    """Print each row as soon as it is measured (a later measurement may fail: a pack refused by
    the memory check), then write them all to ``out``."""
    rows = []
    for row in results:
        print(json.dumps(row), flush=True)
        rows.append(row)
    if out:
        write_json(out, rows)
