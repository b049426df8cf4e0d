"""A trained policy in one versioned, checksummed file (``marlrepro export-policy``).

Format ``marlrepro-policy``, version 1: a zip archive (stdlib :mod:`zipfile`, members stored
uncompressed, with fixed timestamps, so one checkpoint always gives the same bytes) of two members:

* ``manifest.json``: the :class:`Manifest` (format name and version, the marlrepro version that
  wrote it, the method, the environment, its :class:`~marlrepro.envs.base.EnvSpec`, which of the
  learner's evaluated controllers this is (``test``: the decentralised agents) with its class and
  input, the run's full train config (it rebuilds the controller: its ``agent`` section and, for
  ME-IGM, the order-preserving transformation's ``mixer``), the source run directory, checkpoint
  and ``t_env``, and the SHA-256 of ``weights.pt``); the checkpoint is the run's latest
  (``checkpoint/state.pt``), the one before it, or its best (``checkpoint/best.pt``, kept by a run
  with ``run.keep_best``: the learner at its best evaluation);
* ``weights.pt``: ``torch.save`` of that controller's ``state_dict`` alone (tensors only, read
  back with ``weights_only=True``).

:func:`load_policy` checks the file before it builds anything: a zip archive, a manifest of this
format in a supported version with every field, the weights' checksum, then their names and shapes
against the rebuilt controller; each failure raises :class:`~marlrepro.errors.PolicyFileError`
naming the file and the problem. :func:`check_env_spec` checks a policy against an environment.
Readers ignore manifest fields they do not know; a change that older readers cannot ignore bumps
:data:`VERSION`.
"""

from __future__ import annotations

import dataclasses
import logging
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
from marlrepro.checkpoint import BEST_FILE, CHECKPOINT_FILE, read_checkpoint
from marlrepro.config import TrainConfig, from_dict, to_dict
from marlrepro.controller import AgentController
from marlrepro.core.stacked import StackedModules
from marlrepro.envs.base import BatchedEnv, EnvSpec
from marlrepro.envs.registry import validate_env
from marlrepro.errors import CheckpointError, PolicyFileError, located, unknown_choice
from marlrepro.io_utils import atomic_write
from marlrepro.learners.base import Learner
from marlrepro.learners.build import build_learner
from marlrepro.runner import EpisodeRunner
from marlrepro.train import method_name

log = logging.getLogger(__name__)

FORMAT = "marlrepro-policy"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
WEIGHTS_MEMBER = "weights.pt"
POLICY_FORMAT = ArchiveFormat(FORMAT, SUPPORTED_VERSIONS, PolicyFileError, "export the policy again")
# what an export reads from a checkpoint (a resumable state, or a run's best: checkpoint.BEST_KEYS)
CHECKPOINT_KEYS = ("config", "progress", "learner")
# the spec fields that every controller's weights are shaped on; full_obs_dim as well for one that reads it
SPEC_FIELDS = ("n_agents", "n_actions", "obs_dim", "state_dim")


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of a policy file (format :data:`FORMAT`, version :data:`VERSION`)."""

    format: str
    version: int
    marlrepro_version: str  # the version that wrote the file
    method: str  # as the papers name it (train.method_name): qmix, me_qmix, qmix_da, mappo, ...
    algo: str
    env: str  # the environment the policy was trained on, e.g. smax:3m
    env_options: dict[str, Any]
    spec: dict[str, Any]  # that environment's EnvSpec
    controller: str  # the learner's eval_controllers() key: test, the decentralised agents
    controller_class: str  # e.g. AgentController, SoftmaxPolicyController
    controller_source: str  # what its agents read: obs, full_obs or state
    config: dict[str, Any]  # the run's resolved train config (config.yaml), which rebuilds the controller
    run_dir: str  # the run directory exported
    checkpoint: str  # its checkpoint file, relative to run_dir
    t_env: int  # the run's environment steps at that checkpoint
    weights_sha256: str  # of the weights.pt member

    @property
    def env_spec(self) -> EnvSpec:
        """The spec of the environment the policy was trained on."""
        try:
            return EnvSpec(**self.spec)
        except TypeError as err:
            raise PolicyFileError(f"manifest field spec is not an environment spec ({err})") from None

    def spec_fields(self) -> tuple[str, ...]:
        """The :class:`EnvSpec` fields that the controller's weights are shaped on."""
        return (*SPEC_FIELDS, "full_obs_dim") if self.controller_source == "full_obs" else SPEC_FIELDS


@dataclass(frozen=True)
class Policy:
    """A loaded policy: its ``controller`` (an :class:`AgentController` holding the exported
    weights, frozen; act with ``step`` and ``choose_actions(..., explore=False)`` for the greedy
    policy that the run's evaluation plays), the file's ``manifest`` and the run's ``config``."""

    controller: AgentController
    manifest: Manifest
    config: TrainConfig


def export_policy(run_dir: str | Path, out: str | Path, controller: str = "test",
                  checkpoint: str = CHECKPOINT_FILE) -> Manifest:
    """Write the weights of ``controller`` (a key of the learner's ``eval_controllers()``) in run
    ``run_dir``'s ``checkpoint`` (a file relative to it) to the policy file ``out``, atomically;
    returns its manifest. A run of a pack exports as a run alone: each run checkpoints into its
    own directory, in the one-run format."""
    run_dir = Path(run_dir)
    path = run_dir / checkpoint
    if not path.is_file():
        written = ("a run with run.keep_best: true writes it at each new best evaluation" if checkpoint == BEST_FILE
                   else "a run writes it every run.checkpoint_interval updates and when it ends")
        raise CheckpointError(f"{path}: no such checkpoint; {written}")
    with located(str(path)):
        state = read_checkpoint(path, CHECKPOINT_KEYS)
        config = from_dict(state["config"])
    if not (run_dir / "final.json").is_file():
        log.warning("%s has not finished (no final.json): exporting its checkpoint at t_env=%d", run_dir,
                    state["progress"]["t_env"])
    spec, _ = validate_env(config.env.name, config.env.options)
    learner = _build_learner(spec, config, torch.device("cpu"))
    learner.load_state_dict(state["learner"])
    policy = _eval_controller(learner, controller)
    weights = tensor_bytes(policy.state_dict())
    manifest = Manifest(
        format=FORMAT, version=VERSION, marlrepro_version=__version__, method=method_name(config),
        algo=config.algo, env=config.env.name, env_options=config.env.options, spec=dataclasses.asdict(spec),
        controller=controller, controller_class=type(policy).__name__, controller_source=policy.source,
        config=to_dict(config), run_dir=str(run_dir.resolve()), checkpoint=checkpoint,
        t_env=state["progress"]["t_env"], weights_sha256=sha256(weights),
    )
    atomic_write(out, lambda tmp: write_archive(tmp, manifest, {WEIGHTS_MEMBER: weights}))
    return manifest


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> Policy:
    """The policy in file ``path``, its controller rebuilt on ``device``. Raises
    :class:`PolicyFileError` naming the file when it is missing, not a policy file, of an
    unsupported version, corrupt (checksum) or holding weights that do not fit the controller."""
    manifest, weights = read_policy_file(path)
    with located(str(path), PolicyFileError):
        with located("manifest field config"):
            config = from_dict(manifest.config)
        controller = _eval_controller(_build_learner(manifest.env_spec, config, torch.device(device)),
                                      manifest.controller)
        if type(controller).__name__ != manifest.controller_class:
            raise PolicyFileError(f"the file's controller is a {manifest.controller_class}; its config builds "
                                  f"a {type(controller).__name__}")
        _check_weights(weights, controller.state_dict())
    controller.load_state_dict(weights)
    return Policy(controller.requires_grad_(False).eval(), manifest, config)


def read_policy_file(path: str | Path) -> tuple[Manifest, dict[str, torch.Tensor]]:
    """The manifest and weights in policy file ``path``, checked (format, version, fields,
    checksum), on the CPU; the weights are not yet matched to a controller."""
    with located(str(path), PolicyFileError):
        return _read(Path(path))


def _read(path: Path) -> tuple[Manifest, dict[str, torch.Tensor]]:
    with open_archive(path, POLICY_FORMAT) as archive:
        manifest = parse_manifest(read_member(archive, MANIFEST_MEMBER, POLICY_FORMAT), Manifest, POLICY_FORMAT)
        data = read_member(archive, WEIGHTS_MEMBER, POLICY_FORMAT)
    weights = load_tensors(data, WEIGHTS_MEMBER, manifest.weights_sha256, "weights_sha256", POLICY_FORMAT,
                           "a torch state dict")
    return manifest, weights


def check_env_spec(manifest: Manifest, spec: EnvSpec) -> None:
    """Raise :class:`PolicyFileError` unless environment ``spec`` has the policy's agents, actions
    and input widths, naming each mismatched field with the policy's value and the env's."""
    trained = manifest.env_spec
    wrong = [f"{name}={getattr(trained, name)} (the env has {getattr(spec, name)})"
             for name in manifest.spec_fields() if getattr(trained, name) != getattr(spec, name)]
    if wrong:
        raise PolicyFileError(f"the policy ({manifest.method} from {manifest.env}) does not fit env {spec.name}: "
                              f"it was trained with {', '.join(wrong)}")


def evaluate_policy(policy: Policy, env: BatchedEnv, episodes: int | None = None) -> tuple[float, float]:
    """``policy``'s greedy (mean return, win rate) on ``env`` over ``episodes`` episodes, played as
    its run's evaluation plays them (default: ``run.eval_episodes``; ``run.rollout``,
    ``run.eval_at_once``): on an env of the run's task in the random state of the trainer's, the
    trainer's own evaluation of those weights."""
    check_env_spec(policy.manifest, env.spec)
    run = policy.config.run
    width = run.eval_episodes if run.eval_at_once else None
    runner = EpisodeRunner([env], StackedModules([nn.ModuleDict({"policy": policy.controller})]), "policy",
                           run.rollout, width)
    means = runner.evaluate(episodes or run.eval_episodes, [True], [torch.Generator(env.device)])
    mean_return, win_rate = means[0].tolist()
    return mean_return, win_rate


def _build_learner(spec: EnvSpec, config: TrainConfig, device: torch.device) -> Learner:
    """The run's learner, freshly initialised, leaving torch's global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        return build_learner(spec, config, device)


def _eval_controller(learner: Learner, prefix: str) -> AgentController:
    controllers = learner.eval_controllers()
    if prefix not in controllers:
        raise unknown_choice("controller", prefix, controllers, what=f"evaluated controller of {type(learner).__name__}")
    return controllers[prefix]


def _check_weights(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Raise :class:`PolicyFileError` unless ``weights`` has exactly the names and shapes of ``expected``."""
    problems = [f"missing {name}" for name in expected if name not in weights]
    problems += [f"unexpected {name}" for name in weights if name not in expected]
    problems += [f"{name} has shape {list(weights[name].shape)}, the controller {list(t.shape)}"
                 for name, t in expected.items() if name in weights and weights[name].shape != t.shape]
    if problems:
        raise PolicyFileError(f"its weights do not fit the controller its manifest rebuilds: {'; '.join(problems)}")
