"""Expert demonstrations in one versioned, checksummed file per task (``marlrepro collect-demos``),
and their read-only copy on the training device (the core's demonstration hook).

MIFQ (Bui et al., §5.2 "Expert Demonstrations"): each task's expert (a MAPPO policy, exported with
``marlrepro export-policy``) plays up to 4096 trajectories (SMACv2, Gold Miner) or 128 (MPE),
"for each collected trajectory, we used a different random seed", and "each method uses the same
saved expert demonstrations". Here episode ``k`` of a collection is played by the expert alone in
an environment of its own seeded ``seed + k``, so it does not depend on the collection's size:
the first ``N`` episodes of a collection of ``2N`` are a collection of ``N``, and every method and
demo count of a task reads a prefix of the same file (:func:`load_demos`).

Format ``marlrepro-demos``, version 1 (:mod:`marlrepro.archive`): a zip archive of

* ``manifest.json``: the :class:`DemoManifest` (format and version, the writing marlrepro's version,
  the task's env name, options and :class:`~marlrepro.envs.base.EnvSpec`, the number of episodes and
  each one's seed, how the expert acted, the expert's identity: its policy file's path, SHA-256 and
  manifest, and its measured score over these episodes: mean return and win rate; the SHA-256 of
  ``episodes.pt``);
* ``episodes.pt``: the episodes as padded arrays in :class:`~marlrepro.buffer.Episodes`' layout, one
  row per episode, ``T`` the task's episode limit: ``obs`` [N, T+1, n, obs_dim] and ``state``
  [N, T+1, state_dim] float32, ``avail_actions`` [N, T+1, n, A] bool, ``actions`` [N, T, n] int64,
  ``reward``, ``terminated``, ``filled`` [N, T] float32; and per episode its ``seed`` [N] int64,
  ``return`` [N] float32 and ``won`` [N] bool.

:func:`load_demos` checks, before it reads the episodes: the file, the archive, the manifest's format,
version and fields, the task (env name and spec against the run's) and the count; then the
checksum and every array's shape. Each failure raises :class:`~marlrepro.errors.DemoFileError`
naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from marlrepro import __version__
from marlrepro.archive import (
    MANIFEST_MEMBER,
    ArchiveFormat,
    load_tensors,
    open_archive,
    parse_manifest,
    read_member,
    sha256,
    tensor_bytes,
    write_archive,
)
from marlrepro.buffer import EpisodeBuffer, Episodes, draw_episodes
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import make
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import DemoFileError, located
from marlrepro.io_utils import atomic_write
from marlrepro.runner import EpisodeRunner

log = logging.getLogger(__name__)

FORMAT = "marlrepro-demos"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
EPISODES_MEMBER = "episodes.pt"
DEMO_FORMAT = ArchiveFormat(FORMAT, SUPPORTED_VERSIONS, DemoFileError,
                            "collect the demonstrations again (`marlrepro collect-demos`)")
# the spec fields a demonstration's arrays are shaped on; a run's env must have the same
SPEC_FIELDS = ("n_agents", "obs_dim", "state_dim", "n_actions", "episode_limit")
# the Episodes fields a file holds (full_obs, a privileged view, is not a demonstration's)
EPISODE_FIELDS = ("obs", "state", "avail_actions", "actions", "reward", "terminated", "filled")
ACTING = ("greedy", "sampled")


@dataclass(frozen=True)
class DemoManifest:
    """``manifest.json`` of a demonstration file (format :data:`FORMAT`, version :data:`VERSION`)."""

    format: str
    version: int
    marlrepro_version: str  # the version that wrote the file
    env: str  # the task, e.g. miner:easy_2_vs_2
    env_options: dict[str, Any]
    spec: dict[str, Any]  # its EnvSpec
    episodes: int
    seeds: list[int]  # episode k was played in an env of its own seeded seeds[k]
    acting: str  # greedy (the expert's evaluated policy) or sampled (its stochastic policy)
    expert_file: str  # the exported policy file that played them (its path when collected)
    expert_file_sha256: str
    expert: dict[str, Any]  # that file's manifest: method, run, checkpoint, t_env, weights' checksum, config
    expert_return_mean: float  # the expert's score over these episodes
    expert_won_mean: float
    episodes_sha256: str  # of the episodes.pt member

    @property
    def env_spec(self) -> EnvSpec:
        try:
            return EnvSpec(**self.spec)
        except TypeError as err:
            raise DemoFileError(f"manifest field spec is not an environment spec ({err})") from None


@dataclass(frozen=True)
class Demonstrations:
    """The first ``count`` episodes of a demonstration file, on the CPU: ``episodes`` [count, ...]
    and per episode its ``seeds``, ``returns`` and ``won``; the file's ``manifest``."""

    episodes: Episodes
    seeds: torch.Tensor
    returns: torch.Tensor
    won: torch.Tensor
    manifest: DemoManifest


def write_demos(path: str | Path, episodes: Episodes, seeds: Sequence[int], returns: torch.Tensor,
                won: torch.Tensor, spec: EnvSpec, env_options: dict[str, Any], acting: str,
                expert_file: str | Path, expert: dict[str, Any]) -> DemoManifest:
    """Write ``episodes`` [N, ...] (padded to ``spec.episode_limit``), their ``seeds``, ``returns``
    [N] and ``won`` [N], played on ``spec``'s task acting ``acting`` by the policy in file
    ``expert_file`` (whose manifest is ``expert``: a :class:`marlrepro.policy_file.Manifest` as a
    dict), to the demonstration file ``path``, atomically; returns its manifest."""
    tensors = {name: getattr(episodes, name).cpu() for name in EPISODE_FIELDS}
    tensors |= {"seed": torch.tensor(list(seeds), dtype=torch.int64), "return": returns.float().cpu(),
                "won": won.bool().cpu()}
    data = tensor_bytes(tensors)
    manifest = DemoManifest(
        format=FORMAT, version=VERSION, marlrepro_version=__version__, env=spec.name, env_options=env_options,
        spec=dataclasses.asdict(spec), episodes=len(seeds), seeds=list(seeds), acting=acting,
        expert_file=str(expert_file), expert_file_sha256=sha256(Path(expert_file).read_bytes()),
        expert=expert, expert_return_mean=float(returns.float().mean()),
        expert_won_mean=float(won.float().mean()), episodes_sha256=sha256(data),
    )
    _check_shapes(tensors, spec, len(seeds), RuntimeError)  # a writer's bug, not the user's
    atomic_write(path, lambda tmp: write_archive(tmp, manifest, {EPISODES_MEMBER: data}))
    return manifest


def read_demo_manifest(path: str | Path) -> DemoManifest:
    """The manifest of demonstration file ``path``, checked (format, version, fields)."""
    with located(str(path), DemoFileError), open_archive(Path(path), DEMO_FORMAT) as archive:
        return parse_manifest(read_member(archive, MANIFEST_MEMBER, DEMO_FORMAT), DemoManifest, DEMO_FORMAT)


def load_demos(path: str | Path, spec: EnvSpec, count: int) -> Demonstrations:
    """The FIRST ``count`` episodes of demonstration file ``path``, for a run on ``spec``'s task.

    Raises :class:`DemoFileError` naming the file when it is missing, not a demonstration file, of
    an unsupported version, of another task (env name, or any of :data:`SPEC_FIELDS`), holding fewer
    than ``count`` episodes (all checked before the episodes are read), or corrupt (the checksum of
    ``episodes.pt``, or arrays not of the manifest's shapes)."""
    with located(str(path), DemoFileError), open_archive(Path(path), DEMO_FORMAT) as archive:
        manifest = parse_manifest(read_member(archive, MANIFEST_MEMBER, DEMO_FORMAT), DemoManifest, DEMO_FORMAT)
        check_task(manifest, spec)
        if manifest.episodes < count:
            raise DemoFileError(f"holds {manifest.episodes} episodes, fewer than the {count} asked for "
                                f"(demos.count); collect at least {count} with `marlrepro collect-demos`")
        data = read_member(archive, EPISODES_MEMBER, DEMO_FORMAT)
        tensors = load_tensors(data, EPISODES_MEMBER, manifest.episodes_sha256, "episodes_sha256", DEMO_FORMAT,
                               "a dict of episode arrays")
        _check_shapes(tensors, manifest.env_spec, manifest.episodes, DemoFileError)
    first = {name: value[:count] for name, value in tensors.items()}
    return Demonstrations(Episodes(**{name: first[name] for name in EPISODE_FIELDS}), first["seed"],
                          first["return"], first["won"], manifest)


def check_task(manifest: DemoManifest, spec: EnvSpec) -> None:
    """Raise :class:`DemoFileError` unless the demonstrations were played on ``spec``'s task: the
    same env name and the same :data:`SPEC_FIELDS`, each mismatch named with both values."""
    played = manifest.env_spec
    wrong = [f"env {manifest.env!r} (the run's is {spec.name!r})"] if manifest.env != spec.name else []
    wrong += [f"{name}={getattr(played, name)} (the run's env has {getattr(spec, name)})"
              for name in SPEC_FIELDS if getattr(played, name) != getattr(spec, name)]
    if wrong:
        raise DemoFileError(f"the demonstrations are of another task: {', '.join(wrong)}; collect "
                            f"demonstrations on {spec.name} with `marlrepro collect-demos`")


def _expected_shapes(spec: EnvSpec, n: int) -> dict[str, tuple[int, ...]]:
    t, agents = spec.episode_limit, spec.n_agents
    return {"obs": (n, t + 1, agents, spec.obs_dim), "state": (n, t + 1, spec.state_dim),
            "avail_actions": (n, t + 1, agents, spec.n_actions), "actions": (n, t, agents),
            "reward": (n, t), "terminated": (n, t), "filled": (n, t), "seed": (n,), "return": (n,), "won": (n,)}


_DTYPES = {"avail_actions": torch.bool, "won": torch.bool, "actions": torch.int64, "seed": torch.int64}


def _check_shapes(tensors: dict[str, torch.Tensor], spec: EnvSpec, n: int, error: type[Exception]) -> None:
    """Raise ``error`` unless ``tensors`` holds exactly the arrays of ``n`` episodes on ``spec``."""
    expected = _expected_shapes(spec, n)
    problems = [f"missing {name}" for name in expected if name not in tensors]
    problems += [f"unexpected {name}" for name in tensors if name not in expected]
    problems += [f"{name} has shape {list(tensors[name].shape)} and dtype {tensors[name].dtype}, expected "
                 f"{list(shape)} and {_DTYPES.get(name, torch.float32)}"
                 for name, shape in expected.items() if name in tensors
                 and (tuple(tensors[name].shape) != shape or tensors[name].dtype != _DTYPES.get(name, torch.float32))]
    if problems:
        raise error(f"corrupt: {EPISODES_MEMBER} does not hold the manifest's {n} episodes: {'; '.join(problems)}")


def collect_demos(policy_path: str | Path, out: str | Path, episodes: int, seed: int = 0, acting: str = "greedy",
                  width: int = 64, device: str | torch.device = "cpu", max_episodes: int | None = None
                  ) -> DemoManifest:
    """Play the exported policy ``policy_path`` for ``episodes`` episodes on its task and write
    them to the demonstration file ``out``, atomically; returns its manifest.

    Episode ``k`` is the first episode of a one-environment env of the task seeded ``seed + k``,
    played by the policy ``acting`` ``greedy`` (its greedy available action, the policy its run's
    evaluation scores: MIFQ's "expert" rows) or ``sampled`` (a sample of its policy; the sampling
    draws from that episode's own random stream), so it is the same whatever the collection's size.
    ``width`` episodes are played at once, as a pack of ``width`` one-environment runs of the same
    weights (:class:`~marlrepro.runner.EpisodeRunner`: one fused JAX call for the JAX backends, the
    stepwise loop otherwise). Every batch plays ``width`` episodes (the last one's extra seeds are
    discarded), so the fused rollout is compiled once and its arithmetic, on a GPU too, is that of
    every batch whatever ``episodes`` is.
    ``max_episodes``: the paper's cap for this task (``config/demos.yaml``)."""
    if acting not in ACTING:
        raise DemoFileError(f"acting: unknown value {acting!r}; valid choices are: {', '.join(ACTING)}")
    for name, value in (("episodes", episodes), ("width", width)):
        if value < 1:
            raise DemoFileError(f"{name}: must be >= 1, got {value}")
    if max_episodes is not None and episodes > max_episodes:
        raise DemoFileError(f"episodes: {episodes} is more than the {max_episodes} the paper collects for this "
                            f"task (config/demos.yaml max_episodes)")
    # policy_file imports the trainer, which imports this module
    from marlrepro.policy_file import check_env_spec, load_policy

    device = torch.device(device)
    policy = load_policy(policy_path, device)
    name, options = policy.manifest.env, policy.manifest.env_options
    seeds = [seed + k for k in range(episodes)]
    stacked = StackedModules([nn.ModuleDict({"policy": policy.controller})] * width)
    store = EpisodeBuffer(1, episodes, policy.manifest.env_spec, torch.device("cpu"))
    returns, won = torch.zeros(episodes), torch.zeros(episodes, dtype=torch.bool)
    runner: EpisodeRunner | None = None
    for start in range(0, episodes, width):
        envs = [make(name, 1, seed + k, device, **options) for k in range(start, start + width)]
        if runner is not None and runner.fused:  # the compiled rollout again, from these episodes' states
            for env, fresh in zip(runner.envs, envs, strict=True):
                env.set_rng_state(fresh.rng_state())
                fresh.close()
        else:
            check_env_spec(policy.manifest, envs[0].spec)
            if runner is not None:
                for env in runner.envs:
                    env.close()
            runner = EpisodeRunner(envs, stacked, "policy", policy.config.run.rollout)
        generators = [torch.Generator(device).manual_seed(seed + k) for k in range(start, start + width)]
        played, stats = runner.run([0.0] * width, [True] * width, generators, explore=acting == "sampled")
        kept = min(width, episodes - start)
        store.insert(Episodes(**{field: value[:kept].transpose(0, 1) for field, value in played.tensors().items()}),
                     [0])
        returns[start:start + kept] = stats.returns[:kept, 0].cpu()
        won[start:start + kept] = stats.won[:kept, 0].cpu()
        log.info("collected %d / %d episodes", start + kept, episodes)
    spec = runner.envs[0].spec
    for env in runner.envs:
        env.close()
    collected = Episodes(**{field: getattr(store.storage, field)[0] for field in EPISODE_FIELDS})
    manifest = write_demos(out, collected, seeds, returns, won, spec, options, acting, policy_path,
                           dataclasses.asdict(policy.manifest))
    log.info("wrote %s: %d episodes of %s by %s (%s), mean return %.3f, win rate %.3f", out, episodes, name,
             policy.manifest.method, acting, manifest.expert_return_mean, manifest.expert_won_mean)
    return manifest


def expert_summary(manifest: DemoManifest, path: str | Path) -> dict[str, Any]:
    """The expert's measured score over the demonstrations of file ``path`` (``manifest``), in the
    fields of a run's ``final.json`` that the tables read (``algo`` is ``expert``; ``seed`` is the
    expert run's), and where the demonstrations come from: what ``collect-demos --summary`` writes,
    so that the tables read it without torch."""
    expert = manifest.expert
    return {
        "algo": "expert", "env": manifest.env, "backend": manifest.env.split(":", 1)[0],
        "seed": int(expert.get("config", {}).get("run", {}).get("seed", 0)),
        "test_return_mean": manifest.expert_return_mean, "test_won_mean": manifest.expert_won_mean,
        "episodes": manifest.episodes, "acting": manifest.acting, "demos_file": str(path),
        "episodes_sha256": manifest.episodes_sha256, "expert_method": expert.get("method"),
        "expert_file": manifest.expert_file, "expert_run_dir": expert.get("run_dir"),
        "expert_checkpoint": expert.get("checkpoint"), "expert_t_env": expert.get("t_env"),
    }


class DemoSampler:
    """The demonstrations of a pack on the training device, read-only, and their sampling.

    One copy serves every run: run ``r`` samples from the first ``counts[r]`` episodes
    (``demos.count``, which may differ between the runs of a pack) with its own generator, so its
    samples do not depend on the other runs. Observation-sized fields are stored as ``obs_dtype``
    (``learner.buffer_dtype``, as the replay buffer) and sampled in float32."""

    def __init__(self, demos: Demonstrations, counts: Sequence[int], batch_size: int, device: torch.device,
                 obs_dtype: torch.dtype = torch.float32) -> None:
        self.counts = list(counts)
        self.batch_size = batch_size
        self.device = device
        self.storage = Episodes(**{name: value.to(device, obs_dtype if value.is_floating_point()
                                                  and name in ("obs", "state") else value.dtype)
                                   for name, value in demos.episodes.tensors().items()})

    def draw(self, generators: Sequence[torch.Generator], runs: Sequence[bool]) -> torch.Tensor:
        """The episodes [R, B] of each run's demo batch: ``batch_size`` distinct ones among its first
        ``counts[r]``, drawn by its generator where ``runs[r]`` holds; other runs get the first ones
        (a placeholder their update mask discards) and their generators are not drawn from."""
        return draw_episodes(self.counts, self.batch_size, generators, runs, self.device, self.counts)

    def longest(self, index: torch.Tensor) -> int:
        """The longest episode among ``index`` [R, B] (one host synchronisation)."""
        return int(self.storage.filled[index].sum(dim=-1).max())

    def gather(self, index: torch.Tensor, steps: int) -> Episodes:
        """The episodes ``index`` [R, B], their first ``steps`` transitions, as [R, B, steps (+1), ...]
        float32: the layout of a replay batch of that padded length."""
        return self.storage.trim(steps).index(index).as_float32()

