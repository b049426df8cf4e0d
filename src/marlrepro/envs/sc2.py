"""Real StarCraft II through SMAC and SMACv2, behind the batched interface: ``sc2:<scenario>``.

Scenarios are the SMAC maps (``sc2:3s5z``, ``sc2:MMM2``, ...) served by ``smac``'s
``StarCraft2Env``, and the SMACv2 race scenarios (``sc2:protoss_10_vs_11``, ...) served by
``smacv2``'s ``StarCraftCapabilityEnvWrapper`` with SMACv2's unit weights and start positions.
Each of the ``num_envs`` games runs in its own worker process (StarCraft II is one OS process per
game); the workers step in parallel and restart a finished game on its next step (the step that
ends an episode returns its final observation). ``sight_range`` limits
what the allies observe, as IGM-DA's SMAC fork does, by overriding SMAC's per-agent
``unit_sight_range``. SMAC runs with its default flags (those of pymarl's ``sc2.yaml``), SMACv2
with the flags of its ``sc2_gen_*.yaml`` configs (:data:`SMACV2_FLAGS`), so observation and state
widths equal the ``smax:``/``smacv2:`` backends' for the same scenario; the action space has
SMAC's extra no-op (``n_actions`` one larger).

Nothing is replaced silently: without the packages or the game, building this backend raises a
:class:`~marlrepro.errors.ConfigError` that says what to install and how to set ``SC2PATH``.
Install with ``pip install 'marlrepro[sc2]'`` (SMAC), plus SMACv2 for the race scenarios.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marlrepro import env_catalog
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.envs.smacx import SMAC_MAPS, SMACV2_SCENARIOS
from marlrepro.errors import ConfigError

SCENARIOS = SMAC_MAPS | SMACV2_SCENARIOS
OPTIONS = env_catalog.OPTIONS["sc2"]  # option -> (type, default)

# SMACv2's race configurations (smacv2/examples/configs/sc2_gen_*.yaml): unit types, weights,
# the exception type that may never be a whole team, and the map each race is played on.
SMACV2_RACES = {
    "protoss": (("stalker", "zealot", "colossus"), "colossus"),
    "terran": (("marine", "marauder", "medivac"), "medivac"),
    "zerg": (("zergling", "hydralisk", "baneling"), "baneling"),
}
SMACV2_WEIGHTS = (0.45, 0.45, 0.1)
SMACV2_MAP_SIZE = 32
# The observation and range flags of those configs that differ from StarCraft2Env's defaults (the
# other flags, and SMAC v1's with pymarl's sc2.yaml, are the defaults). With them the games' obs
# and state have the widths and feature order of the ``smax:``/``smacv2:`` backends.
SMACV2_FLAGS = {"obs_own_pos": True, "use_unit_ranges": True, "min_attack_range": 2}

_INSTALL_HELP = (
    "install StarCraft II (Linux: the 4.10 package from https://github.com/Blizzard/s2client-proto#downloads) "
    "into ~/StarCraftII or set SC2PATH to its folder, copy the SMAC maps into $SC2PATH/Maps/SMAC_Maps, and "
    "pip install 'marlrepro[sc2]' (SMAC) or smacv2 (SMACv2 scenarios); or keep config backend: smax, the "
    "JAX simulator that needs none of this"
)


def _package_for(scenario: str) -> str:
    return "smacv2" if scenario in SMACV2_SCENARIOS else "smac"


def require_starcraft(scenario: str) -> Path:
    """The StarCraft II folder, after checking that the game and the Python package are present."""
    package = _package_for(scenario)
    try:  # ``smac.env``, not ``smac``: the SMAC3 optimiser on PyPI is also called smac
        found = importlib.util.find_spec(f"{package}.env") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ConfigError(f"env.name sc2:{scenario}: the Python package {package!r} is not installed; "
                          + _INSTALL_HELP)
    path = Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))
    if not path.is_dir():
        where = "SC2PATH=" + os.environ["SC2PATH"] if "SC2PATH" in os.environ else "~/StarCraftII (SC2PATH unset)"
        raise ConfigError(f"env.name sc2:{scenario}: StarCraft II not found at {where}; " + _INSTALL_HELP)
    return path


def _smacv2_capabilities(scenario: str) -> tuple[str, dict[str, Any]]:
    """SMACv2's map name and capability config for ``<race>_<n>_vs_<m>``."""
    race, n_units, _, n_enemies = scenario.split("_")
    units, exception = SMACV2_RACES[race]
    n, m = int(n_units), int(n_enemies)
    return f"10gen_{race}", {
        "n_units": n,
        "n_enemies": m,
        "team_gen": {"dist_type": "weighted_teams", "unit_types": list(units),
                     "weights": list(SMACV2_WEIGHTS), "exception_unit_types": [exception], "observe": True},
        "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5, "n_enemies": m,
                            "map_x": SMACV2_MAP_SIZE, "map_y": SMACV2_MAP_SIZE},
    }


@dataclass(frozen=True)
class GameFactory:
    """Everything a worker process needs to start one game (picklable)."""

    scenario: str
    seed: int
    sight_range: float | None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """Start the game: SMAC's ``StarCraft2Env`` or SMACv2's capability wrapper."""
        if self.scenario in SMACV2_SCENARIOS:
            wrapper = importlib.import_module("smacv2.env.starcraft2.wrapper")
            map_name, capabilities = _smacv2_capabilities(self.scenario)
            game = wrapper.StarCraftCapabilityEnvWrapper(
                capability_config=capabilities, map_name=map_name, seed=self.seed,
                **(SMACV2_FLAGS | self.kwargs))
            inner = game.env
        else:
            game = importlib.import_module("smac.env").StarCraft2Env(
                map_name=self.scenario, seed=self.seed, **self.kwargs)
            inner = game
        if self.sight_range is not None:
            sight = self.sight_range
            inner.unit_sight_range = lambda agent_id: sight  # SMAC's per-agent sight hook
        return game


def _observe(game: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(game.get_obs(), np.float32), np.asarray(game.get_state(), np.float32),
            np.asarray(game.get_avail_actions(), np.float32))


def _serve(conn: Connection, factory: GameFactory) -> None:
    """Worker loop: one game, commands ``info``, ``reset``, ``step`` and ``close`` over a pipe."""
    game = factory.build()
    ended = False  # whether the last step ended the episode: the next step restarts the game
    try:
        while True:
            command, payload = conn.recv()
            if command == "step" and ended:
                game.reset()
                ended = False
                conn.send((_observe(game), 0.0, False, False, False))
            elif command == "step":
                reward, ended, info = game.step(payload)
                truncated = bool(ended and info.get("episode_limit", False))
                won = bool(ended and info.get("battle_won", False))
                conn.send((_observe(game), float(reward), bool(ended) and not truncated, truncated, won))
            elif command == "reset":
                game.reset()
                ended = False
                conn.send(_observe(game))
            elif command == "info":
                conn.send(_env_info(game))
            else:
                break
    finally:
        game.close()
        conn.close()


def spec(scenario: str, **options: Any) -> EnvSpec:
    """Static spec: needs the game (it reads SMAC's ``get_env_info`` from one short-lived game)."""
    require_starcraft(scenario)
    game = GameFactory(scenario, 0, options.get("sight_range")).build()
    try:
        return _spec_from_info(scenario, _env_info(game))
    finally:
        game.close()


def _env_info(game: Any) -> dict[str, Any]:
    """SMAC's ``get_env_info``, plus the state's features per ally (``get_ally_num_attributes``)."""
    return {**game.get_env_info(), "unit_dim": game.get_ally_num_attributes()}


def _spec_from_info(scenario: str, info: dict[str, Any]) -> EnvSpec:
    return EnvSpec(name=f"sc2:{scenario}", n_agents=info["n_agents"], obs_dim=info["obs_shape"],
                   state_dim=info["state_shape"], n_actions=info["n_actions"],
                   episode_limit=info["episode_limit"], unit_dim=info["unit_dim"])


class Env:
    """``num_envs`` StarCraft II games in worker processes, stepped in parallel."""

    def __init__(self, scenario: str, *, num_envs: int, seed: int, device: torch.device, **options: Any) -> None:
        require_starcraft(scenario)
        self.num_envs = num_envs
        self.device = device
        self._reward_scale = options["reward_scale"]
        context = mp.get_context("spawn")  # no fork of a process that holds CUDA or JAX state
        self._conns: list[Connection] = []
        self._workers = []
        for i in range(num_envs):
            parent, child = context.Pipe()
            factory = GameFactory(scenario, seed * 1000 + i, options["sight_range"])
            worker = context.Process(target=_serve, args=(child, factory), daemon=True)
            worker.start()
            child.close()
            self._conns.append(parent)
            self._workers.append(worker)
        self._conns[0].send(("info", None))
        self.spec = _spec_from_info(scenario, self._conns[0].recv())

    def _batch(self, observed: list[tuple[np.ndarray, ...]], flags: list[tuple[Any, ...]] | None) -> EnvBatch:
        obs, state, avail = (torch.from_numpy(np.stack(part)).to(self.device) for part in zip(*observed))
        if flags is None:
            flags = [(0.0, False, False, False)] * self.num_envs
        reward, terminated, truncated, won = (torch.tensor(part, device=self.device) for part in zip(*flags))
        return EnvBatch(obs=obs, state=state, avail_actions=avail > 0.5,
                        reward=reward.float() * self._reward_scale, terminated=terminated,
                        truncated=truncated, won=won)

    def reset(self) -> EnvBatch:
        """Reset every game."""
        for conn in self._conns:
            conn.send(("reset", None))
        return self._batch([conn.recv() for conn in self._conns], None)

    def step(self, actions: torch.Tensor) -> EnvBatch:
        """Send ``actions`` [B, N] to every game at once, then gather the results."""
        for conn, row in zip(self._conns, actions.cpu().tolist()):
            conn.send(("step", row))
        results = [conn.recv() for conn in self._conns]
        return self._batch([r[0] for r in results], [r[1:] for r in results])

    def rng_state(self) -> None:
        """None: each game's randomness lives in its StarCraft II process and cannot be saved, so a
        resumed run reseeds the games instead (:class:`marlrepro.train.Trainer`)."""
        return

    def set_rng_state(self, state: None) -> None:
        """Never called: :meth:`rng_state` has nothing to restore."""
        raise NotImplementedError("sc2: the games' random state cannot be restored")

    def close(self) -> None:
        """Stop every game and worker."""
        for conn in self._conns:
            conn.send(("close", None))
        for worker in self._workers:
            worker.join(timeout=30)
        self._conns, self._workers = [], []
