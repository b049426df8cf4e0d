"""Episode replay buffer kept on the training device (pymarl's ``ReplayBuffer``)."""

from __future__ import annotations

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
        """Keep the first ``steps`` transitions (and ``steps + 1`` observations)."""
        return Episodes(**{name: value[:, : steps + 1 if name in _PER_OBSERVATION else steps]
                           for name, value in self.tensors().items()})

    def max_length(self) -> int:
        """Length of the longest episode in the batch (one host sync)."""
        return int(self.filled.sum(dim=1).max().item())


_PER_OBSERVATION = ("obs", "state", "avail_actions", "full_obs")
_OBSERVATION_SIZED = ("obs", "state", "full_obs")


class EpisodeBuffer:
    """A ring buffer of ``capacity`` episodes on ``device``; sampling never leaves the device.
    ``obs_dtype`` stores observations, states and full observations at lower precision (float16);
    samples come back in float32."""

    def __init__(self, capacity: int, spec: EnvSpec, device: torch.device,
                 obs_dtype: torch.dtype = torch.float32) -> None:
        self.capacity = capacity
        self.storage = Episodes.empty(capacity, spec, device, obs_dtype)
        self.device = device
        self.insert_at = 0
        self.size = 0

    def insert(self, episodes: Episodes) -> None:
        """Write a batch of episodes (padded to the buffer's length) at the ring position."""
        b = episodes.actions.shape[0]
        idx = (torch.arange(b, device=self.device) + self.insert_at) % self.capacity
        for name, target in self.storage.tensors().items():
            value = getattr(episodes, name)
            target[idx] = 0
            target[idx, : value.shape[1]] = value.to(target.dtype)
        self.insert_at = (self.insert_at + b) % self.capacity
        self.size = min(self.size + b, self.capacity)

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def sample(self, batch_size: int) -> Episodes:
        """Uniformly sample ``batch_size`` distinct episodes, trimmed to the longest one."""
        idx = torch.randperm(self.size, device=self.device)[:batch_size]
        batch = self.storage.index(idx)
        return batch.trim(batch.max_length()).as_float32()

    def state_dict(self) -> dict:
        """The filled part of the buffer, for checkpoints of small tasks."""
        return {
            # clone: a saved view would carry the whole ring buffer's storage with it
            "episodes": {name: value[: self.size].cpu().clone() for name, value in self.storage.tensors().items()},
            "insert_at": self.insert_at,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        size = state["size"]
        for name, value in state["episodes"].items():
            getattr(self.storage, name)[:size] = value.to(self.device)
        self.insert_at, self.size = state["insert_at"], size
