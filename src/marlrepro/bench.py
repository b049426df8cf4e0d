"""``marlrepro bench``: throughput measurements (kept out of the tests).

* ``rollout``: env-steps/s of the batched environment with the recurrent agent acting
  (epsilon-greedy), for several numbers of parallel environments.
* ``train``: end-to-end training env-steps/s and updates/s of one run (rollouts, replay and
  gradient updates), with evaluation off.
* ``env``: pure-JAX env-steps/s of SMAX-family environments under a uniformly random policy over
  available actions (one compiled ``lax.scan``; no torch), e.g. the extended env against stock
  SMAX in the same process.
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

from marlrepro.errors import ConfigError
from marlrepro.io_utils import write_json

log = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_rollout(config, num_envs: int, episodes: int) -> dict[str, Any]:
    """Env-steps/s of ``EpisodeRunner`` with the agent in the loop (after one warm-up rollout)."""
    from marlrepro.controller import build_controller
    from marlrepro.envs import make
    from marlrepro.runner import EpisodeRunner
    from marlrepro.train import resolve_device

    device = resolve_device(config.run.device)
    env = make(config.env.name, num_envs, config.run.seed, device, **config.env.options)
    controller = build_controller(env.spec, config.agent, "obs", config.algo).to(device)
    runner = EpisodeRunner(env, controller, config.run.rollout)
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
                            ("train", "end-to-end training env-steps/s and updates/s")):
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", action="append", default=[], metavar="YAML")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
        sub.add_argument("--out", metavar="JSON", help="also write the results here")
        if name == "rollout":
            sub.add_argument("--num-envs", type=int, nargs="+", default=[8, 128])
            sub.add_argument("--episodes", type=int, default=512, help="episodes per measurement")
        sub.set_defaults(handler=_run_bench)
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
    config = load_config(args.config, args.overrides)
    if args.kind == "rollout":
        results = [bench_rollout(config, n, max(args.episodes, n)) for n in args.num_envs]
    else:
        results = [bench_train(config)]
    _report(results, args.out)
    return 0


def _report(results: list[dict[str, Any]], out: str | None) -> None:
    for row in results:
        print(json.dumps(row))
    if out:
        write_json(out, results)
