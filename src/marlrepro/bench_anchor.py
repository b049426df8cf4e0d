"""``marlrepro bench anchor``: JaxMARL's own pure-JAX QMIX, timed as the anchor of our numbers.

The anchor is the unmodified ``baselines/QLearning/qmix_rnn.py`` of a JaxMARL checkout (the
script is not in the ``jaxmarl`` wheel): its ``make_train`` is imported from the file and run
as its ``single_run`` runs it, ``jit(vmap(make_train(config, env)))`` over ``NUM_SEEDS`` keys,
on stock SMAX. Its command-line and logging packages (hydra, omegaconf, wandb) are not needed to
train; where they are not installed, empty stand-ins are registered before the import. It needs
``flashbax``.

Settings: the script's ``config/alg/ql_rnn_smax.yaml`` with ``--set KEY=VALUE`` overrides
(YAML values). The pymarl-sized anchor of ``notes/smax.md`` is ``NUM_ENVS=8 HIDDEN_SIZE=64
MIXER_EMBEDDING_DIM=32 MIXER_HYPERNET_HIDDEN_DIM=64 NUM_EPOCHS=1``. Compilation is timed apart
from training, and the in-training greedy tests are off unless set (ours are off in ``bench
train`` too).
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path
from typing import Any

import yaml

from marlrepro.errors import ConfigError

SCRIPT = Path("baselines/QLearning/qmix_rnn.py")
ALG_CONFIG = Path("baselines/QLearning/config/alg/ql_rnn_smax.yaml")
PYMARL_SIZED = ("NUM_ENVS=8", "HIDDEN_SIZE=64", "MIXER_EMBEDDING_DIM=32", "MIXER_HYPERNET_HIDDEN_DIM=64",
                "NUM_EPOCHS=1")


def _stand_ins() -> None:
    """Empty modules for the script's imports that training never calls."""
    for name in ("wandb", "hydra", "omegaconf"):
        try:
            importlib.import_module(name)
        except ImportError:
            module = types.ModuleType(name)
            module.main = lambda *a, **k: (lambda fn: fn)  # hydra.main as a no-op decorator
            module.OmegaConf = None
            sys.modules[name] = module


def load_anchor(repo: Path) -> types.ModuleType:
    """The anchor script of the JaxMARL checkout ``repo``, imported as a module."""
    path = repo / SCRIPT
    if not path.is_file():
        raise ConfigError(f"bench anchor: --jaxmarl {repo}: no {SCRIPT} there; give the root of a "
                          "FLAIROx/JaxMARL checkout")
    _stand_ins()
    spec = importlib.util.spec_from_file_location("jaxmarl_qmix_rnn", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as error:
        raise ConfigError(f"bench anchor: {path} imports {error.name!r}, which is not installed here "
                          f"(`pip install {error.name}`; the anchor needs flashbax beside jaxmarl)") from error
    return module


def anchor_config(repo: Path, scenario: str, total_timesteps: int, overrides: list[str]) -> dict[str, Any]:
    """The script's own SMAX settings (``ALG_CONFIG``) for ``scenario``, with ``overrides``."""
    if not (repo / ALG_CONFIG).is_file():
        raise ConfigError(f"bench anchor: --jaxmarl {repo}: no {ALG_CONFIG} there; give the root of a "
                          "FLAIROx/JaxMARL checkout")
    config = yaml.safe_load((repo / ALG_CONFIG).read_text())
    config.update({"MAP_NAME": scenario, "TOTAL_TIMESTEPS": total_timesteps, "TEST_DURING_TRAINING": False,
                   "WANDB_MODE": "disabled", "SEED": 0})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bench anchor: --set {item!r}: expected KEY=VALUE")
        config[key] = yaml.safe_load(value)
    return config


def bench_anchor(repo: str | Path, scenario: str, num_seeds: int, total_timesteps: int,
                 overrides: list[str]) -> dict[str, Any]:
    """Env-steps/s of the anchor training ``num_seeds`` seeds vmapped in one program (the sum
    over seeds), compilation excluded."""
    import jax

    repo = Path(repo)
    anchor = load_anchor(repo)
    config = anchor_config(repo, scenario, total_timesteps, overrides)
    config["NUM_SEEDS"] = num_seeds
    env, _ = anchor.env_from_config(dict(config, ENV_KWARGS=dict(config["ENV_KWARGS"])))
    keys = jax.random.split(jax.random.PRNGKey(config["SEED"]), num_seeds)
    began = time.perf_counter()
    compiled = jax.jit(jax.vmap(anchor.make_train(config, env))).lower(keys).compile()
    compile_s = time.perf_counter() - began
    began = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    seconds = time.perf_counter() - began
    steps_per_seed = config["NUM_UPDATES"] * config["NUM_STEPS"] * config["NUM_ENVS"]
    return {"anchor": "JaxMARL qmix_rnn.py", "env": f"smax_stock:{scenario}", "pack_size": num_seeds,
            "num_envs": config["NUM_ENVS"], "hidden": config["HIDDEN_SIZE"], "epochs": config["NUM_EPOCHS"],
            "batch": config["BUFFER_BATCH_SIZE"], "env_steps": steps_per_seed * num_seeds, "seconds": seconds,
            "compile_s": compile_s, "env_steps_per_s": steps_per_seed * num_seeds / seconds,
            "env_steps_per_s_per_run": steps_per_seed / seconds,
            "updates_per_s": config["NUM_UPDATES"] * config["NUM_EPOCHS"] * num_seeds / seconds,
            "device": str(jax.devices()[0].device_kind)}
