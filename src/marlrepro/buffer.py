"""Episode replay buffer kept on the training device (pymarl's ``ReplayBuffer``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch

from marlrepro.envs.base import EnvSpec


@dataclass
class Episodes:
    """A batch of ``B`` padded episodes of at most ``T`` steps.

    Index ``t`` holds the observation, state and available actions seen at step ``t``
    (``T + 1`` entries, the last one only bootstraps), and the action, reward and flags of the
    transition out of it (``T`` entries). ``filled[b, t]`` is 1 for real transitions.
    """

    obs: torch.Tensor  # [B, T+1, N, obs_dim] float32
    state: torch.Tensor  # [B, T+1, state_dim] float32
    avail_actions: torch.Tensor  # [B, T+1, N, n_actions] bool
    actions: torch.Tensor  # [B, T, N] int64
    reward: torch.Tensor  # [B, T] float32
    terminated: torch.Tensor  # [B, T] float32: episode ended here (task end or time limit)
    filled: torch.Tensor  # [B, T] float32
    full_obs: torch.Tensor | None = None  # [B, T+1, N, full_obs_dim]: where the env provides it

    @classmethod
    def empty(cls, batch: int, spec: EnvSpec, device: torch.device,
              obs_dtype: torch.dtype = torch.float32) -> Episodes:
        """Zero-filled storage for ``batch`` episodes of ``spec.episode_limit`` steps; the
        observation-sized fields (``obs``, ``state``, ``full_obs``) are stored as ``obs_dtype``."""
        t, n = spec.episode_limit, spec.n_agents
        f32 = {"dtype": torch.float32, "device": device}
        big = {"dtype": obs_dtype, "device": device}
        full = torch.zeros(batch, t + 1, n, spec.full_obs_dim, **big) if spec.full_obs_dim else None
        return cls(
            obs=torch.zeros(batch, t + 1, n, spec.obs_dim, **big),
            state=torch.zeros(batch, t + 1, spec.state_dim, **big),
            avail_actions=torch.zeros(batch, t + 1, n, spec.n_actions, dtype=torch.bool, device=device),
            actions=torch.zeros(batch, t, n, dtype=torch.int64, device=device),
            reward=torch.zeros(batch, t, **f32),
            terminated=torch.zeros(batch, t, **f32),
            filled=torch.zeros(batch, t, **f32),
            full_obs=full,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields that hold data (``full_obs`` only where present), by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def index(self, idx: torch.Tensor) -> Episodes:
        """The episodes at positions ``idx`` (a gather on the device)."""
        return Episodes(**{name: value[idx] for name, value in self.tensors().items()})

    def as_float32(self) -> Episodes:
        """The same episodes with the observation-sized fields in float32 (no copy if they are)."""
        return Episodes(**{name: value.float() if name in _OBSERVATION_SIZED else value
                           for name, value in self.tensors().items()})

    def trim(self, steps: int) -> Episodes:
        """Keep the first ``steps`` transitions (and ``steps + 1`` observations); the time axis
        is the last of ``filled``, so this serves a batch [B, T] and a pack's [R, B, T] alike."""
        time = self.filled.dim() - 1
        return Episodes(**{name: value.narrow(time, 0, steps + 1 if name in _PER_OBSERVATION else steps)
                           for name, value in self.tensors().items()})


_PER_OBSERVATION = ("obs", "state", "avail_actions", "full_obs")
_OBSERVATION_SIZED = ("obs", "state", "full_obs")


def draw_episodes(available: Sequence[int], batch_size: int, generators: Sequence[torch.Generator],
                  runs: Sequence[bool], device: torch.device, wrap: Sequence[int]) -> torch.Tensor:
    """The episodes [R, B] of each run's batch: ``batch_size`` distinct ones drawn uniformly among
    its first ``available[r]`` by its generator where ``runs[r]`` holds; other runs get
    ``0, 1, … mod wrap[r]`` (a placeholder their update mask discards) and their generators are not
    drawn from. The one way the replay buffer and the demonstrations sample, so that a packed run
    draws exactly what it would alone."""
    return torch.stack([
        torch.randperm(size, generator=generator, device=device)[:batch_size] if take
        else torch.arange(batch_size, device=device) % modulus
        for size, generator, take, modulus in zip(available, generators, runs, wrap, strict=True)])


class EpisodeBuffer:
    """The replay buffers of the ``R`` runs of a pack: one ring of ``capacity`` episodes per run,
    stacked on a leading run axis, so sampling for all runs is one gather per field.

    The rings live on the training ``device``, or with ``on_host`` in pinned host memory (large
    maps: MMM2's 5000-episode buffer is several GB per run); sampled batches are then gathered on
    the host and copied to ``device``.

    Every run keeps its own ring position, fill level and sampling generator, so a run's samples
    do not depend on the other runs of its pack. ``obs_dtype`` stores observations, states and
    full observations at lower precision (float16); samples come back in float32, padded to the
    episode limit (fixed shapes: the same arithmetic whatever the other runs' episode lengths)."""

    def __init__(self, runs: int, capacity: int, spec: EnvSpec, device: torch.device,
                 obs_dtype: torch.dtype = torch.float32, on_host: bool = False) -> None:
        self.runs = runs
        self.capacity = capacity
        self.device = device
        self.where = torch.device("cpu") if on_host else device
        flat = Episodes.empty(runs * capacity, spec, self.where, obs_dtype)
        pin = on_host and torch.cuda.is_available()
        self.storage = Episodes(**{name: (value.pin_memory() if pin else value).view(runs, capacity, *value.shape[1:])
                                   for name, value in flat.tensors().items()})
        self.insert_at = [0] * runs
        self.size = [0] * runs
        self._all_runs = torch.arange(runs, device=self.where)[:, None]

    def episode_bytes(self) -> int:
        """Bytes of one stored episode (all fields)."""
        return sum(t[0, 0].element_size() * t[0, 0].nelement() for t in self.storage.tensors().values())

    def insert(self, episodes: Episodes, runs: list[int]) -> None:
        """Write ``episodes`` [R, B, t, ...] of the listed ``runs`` at each run's ring position."""
        b = episodes.actions.shape[1]
        rows = torch.tensor(runs, device=self.where)
        start = torch.tensor([self.insert_at[r] for r in runs], device=self.where)
        pos = (torch.arange(b, device=self.where) + start[:, None]) % self.capacity  # [len(runs), B]
        for name, target in self.storage.tensors().items():
            value = getattr(episodes, name).to(self.where)[rows]
            target[rows[:, None], pos] = 0
            target[rows[:, None], pos, : value.shape[2]] = value.to(target.dtype)
        for r in runs:
            self.insert_at[r] = (self.insert_at[r] + b) % self.capacity
            self.size[r] = min(self.size[r] + b, self.capacity)

    def can_sample(self, batch_size: int) -> list[bool]:
        """Per run: are at least ``batch_size`` episodes stored?"""
        return [size >= batch_size for size in self.size]

    def sample(self, batch_size: int, generators: list[torch.Generator], runs: list[bool],
               cut: Callable[[int], int] | None = None) -> Episodes:
        """``batch_size`` distinct episodes drawn uniformly for each run where ``runs[r]`` holds,
        by that run's generator, as [R, B, T+1, ...] float32. Other runs get the first slots of
        their ring (a placeholder their update mask discards) and their generators are not drawn
        from.

        With ``cut``, only the first ``cut(longest)`` steps are gathered, ``longest`` being the
        longest sampled episode of all runs (one host synchronisation, none for a host buffer):
        the trainer's bucket length (pymarl's ``max_t_filled`` cut). Without it the batch is
        padded to the episode limit."""
        index = draw_episodes(self.size, batch_size, generators, runs, self.device,
                              [self.capacity] * self.runs).to(self.where)
        steps = None if cut is None else cut(int(self.storage.filled[self._all_runs, index].sum(dim=-1).max()))

        def gather(name: str, value: torch.Tensor) -> torch.Tensor:
            kept = None if steps is None else steps + 1 if name in _PER_OBSERVATION else steps
            return value[self._all_runs, index, :kept].to(self.device, non_blocking=True)

        return Episodes(**{name: gather(name, value) for name, value in self.storage.tensors().items()}).as_float32()

    def run_state(self, r: int) -> dict:
        """Run ``r``'s filled part of the buffer, for its checkpoint."""
        return {
            # clone: a saved view would carry the whole ring buffer's storage with it
            "episodes": {name: value[r, : self.size[r]].cpu().clone()
                         for name, value in self.storage.tensors().items()},
            "insert_at": self.insert_at[r],
            "size": self.size[r],
        }

    def load_run_state(self, r: int, state: dict) -> None:
        size = state["size"]
        for name, value in state["episodes"].items():
            getattr(self.storage, name)[r, :size] = value.to(self.where)
        self.insert_at[r], self.size[r] = state["insert_at"], size
