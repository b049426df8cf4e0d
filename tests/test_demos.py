"""Demonstration files (:mod:`marlrepro.demos`, ``marlrepro collect-demos``): a collection holds the
exported expert's greedy episodes, each reproducible alone from its seed, so a smaller collection
is a prefix of a larger one; the file round-trips; a missing, corrupt, truncated, mismatched or too
short file fails with a clear error before training builds anything."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch
from archive_files import flip_byte, manifest_of, rewrite

from marlrepro import train as train_module
from marlrepro.cli import main
from marlrepro.config import load_config
from marlrepro.demos import (
    EPISODE_FIELDS,
    EPISODES_MEMBER,
    FORMAT,
    VERSION,
    collect_demos,
    load_demos,
    read_demo_manifest,
)
from marlrepro.envs.registry import validate_env
from marlrepro.errors import DemoFileError
from marlrepro.exploration import masked_greedy
from marlrepro.policy_file import export_policy, load_policy, read_policy_file
from marlrepro.train import PackMember, Trainer, train_pack

ENV = "mpe:simple_spread"  # random landmarks and starts: each seed gives another episode
SPEC, _ = validate_env(ENV, {})
SETTINGS = ["run.device=cpu", "run.progress=false", "tracking.uri=", "agent.hidden_dim=16", "run.eval_episodes=4",
            f"env.name={ENV}", "env.num_envs=4", "learner.batch_size=4", "run.t_max=200", "run.eval_interval=100"]


@pytest.fixture(scope="module")
def expert(tmp_path_factory) -> Path:
    """A QMIX policy briefly trained on the task, exported."""
    root = tmp_path_factory.mktemp("expert")
    train_pack([PackMember(load_config(["config/algos/qmix.yaml"], SETTINGS), root / "run")])
    export_policy(root / "run", root / "expert.zip")
    return root / "expert.zip"


@pytest.fixture(scope="module")
def demos(expert, tmp_path_factory) -> Path:
    """Six greedy episodes of the expert, four at a time, seeds 0-5."""
    path = tmp_path_factory.mktemp("demos") / "demos.zip"
    collect_demos(expert, path, 6, width=4)
    return path


def test_a_collection_round_trips_with_its_expert_and_score(expert, demos, tmp_path):
    """The manifest names the task, the seeds, the expert (file checksum and manifest) and its
    score, which is that of the stored episodes; the arrays have the Episodes layout padded to
    the episode limit; collecting again gives the same bytes."""
    loaded = load_demos(demos, SPEC, 6)
    manifest = loaded.manifest
    assert manifest == read_demo_manifest(demos)
    assert (manifest.format, manifest.version, manifest.env, manifest.episodes) == (FORMAT, VERSION, ENV, 6)
    assert (manifest.seeds, manifest.acting, manifest.spec) == (list(range(6)), "greedy", dataclasses.asdict(SPEC))
    assert manifest.expert_file_sha256 == hashlib.sha256(expert.read_bytes()).hexdigest()
    assert manifest.expert == dataclasses.asdict(read_policy_file(expert)[0])
    episodes, t, n = loaded.episodes, SPEC.episode_limit, SPEC.n_agents
    assert episodes.obs.shape == (6, t + 1, n, SPEC.obs_dim) and episodes.obs.dtype == torch.float32
    assert episodes.state.shape == (6, t + 1, SPEC.state_dim)
    assert episodes.avail_actions.shape == (6, t + 1, n, SPEC.n_actions) and episodes.avail_actions.dtype == torch.bool
    assert episodes.actions.shape == (6, t, n) and episodes.actions.dtype == torch.int64
    assert all(getattr(episodes, name).shape == (6, t) for name in ("reward", "terminated", "filled"))
    assert episodes.full_obs is None
    assert bool((episodes.filled.sum(dim=1) > 0).all())
    returns = (episodes.reward * episodes.filled).sum(dim=1)
    torch.testing.assert_close(loaded.returns, returns)
    assert manifest.expert_return_mean == pytest.approx(float(returns.mean()))
    assert manifest.expert_won_mean == float(loaded.won.float().mean())
    assert torch.equal(loaded.seeds, torch.arange(6))
    collect_demos(expert, tmp_path / "again.zip", 6, width=4)
    assert (tmp_path / "again.zip").read_bytes() == demos.read_bytes()


def test_fewer_episodes_are_a_prefix_and_each_episode_is_reproducible_alone(expert, demos, tmp_path):
    """Three episodes collected (two at a time) are the six-episode file's first three, episode by
    episode, and equal what ``load_demos`` returns for a count of 3; episode 4 collected alone
    (seed 4) is the file's fifth; the seeds really give different episodes."""
    collect_demos(expert, tmp_path / "three.zip", 3, width=2)
    collect_demos(expert, tmp_path / "fifth.zip", 1, seed=4, width=1)
    six, three = load_demos(demos, SPEC, 6), load_demos(tmp_path / "three.zip", SPEC, 3)
    prefix, fifth = load_demos(demos, SPEC, 3), load_demos(tmp_path / "fifth.zip", SPEC, 1)
    for name in EPISODE_FIELDS:
        for k in range(3):
            assert torch.equal(getattr(three.episodes, name)[k], getattr(six.episodes, name)[k]), (name, k)
        assert torch.equal(getattr(prefix.episodes, name), getattr(three.episodes, name)), name
        assert torch.equal(getattr(fifth.episodes, name)[0], getattr(six.episodes, name)[4]), name
    assert torch.equal(three.returns, six.returns[:3]) and torch.equal(fifth.returns, six.returns[4:5])
    assert len({tuple(six.episodes.obs[k, 0].flatten().tolist()) for k in range(6)}) == 6


def test_the_episodes_are_the_experts_greedy_available_actions(expert, demos):
    """Replaying each episode's observations through the loaded expert, its greedy available
    action at every filled step is the stored action, which is available."""
    episodes = load_demos(demos, SPEC, 6).episodes
    controller = load_policy(expert).controller
    with torch.no_grad():
        q = controller.sequence(controller.observe(episodes), episodes.actions, episodes.avail_actions)
    greedy = masked_greedy(q[:, :-1], episodes.avail_actions[:, :-1])
    filled = episodes.filled.bool()
    assert bool(filled.any())
    assert torch.equal(greedy[filled], episodes.actions[filled])
    taken_available = episodes.avail_actions[:, :-1].gather(-1, episodes.actions.unsqueeze(-1)).squeeze(-1)
    assert bool(taken_available[filled].all())
    assert bool((episodes.actions[~filled] == 0).all())  # padding





def _other_episodes(path: Path, target: Path, change=lambda tensors: tensors.update(reward=tensors["reward"] + 1)):
    """The file with its episodes changed and the archive rebuilt around them (the zip's own CRC is
    right): only the manifest's checksum tells."""
    with zipfile.ZipFile(path) as archive:
        tensors = torch.load(io.BytesIO(archive.read(EPISODES_MEMBER)), weights_only=True)
    change(tensors)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return rewrite(path, target, members={EPISODES_MEMBER: buffer.getvalue()})


def _other_shapes(path: Path, target: Path) -> Path:
    """Episodes of the wrong shape under a manifest whose checksum matches them."""
    with zipfile.ZipFile(path) as archive:
        tensors = torch.load(io.BytesIO(archive.read(EPISODES_MEMBER)), weights_only=True)
    tensors["obs"] = tensors["obs"][:, :, :, :-1]
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    data = buffer.getvalue()
    return rewrite(path, target, {**manifest_of(path), "episodes_sha256": hashlib.sha256(data).hexdigest()},
                   {EPISODES_MEMBER: data})


def _spec_changed(field: str, delta: int):
    def damage(path: Path, target: Path) -> Path:
        manifest = manifest_of(path)
        return rewrite(path, target, {**manifest, "spec": {**manifest["spec"], field: manifest["spec"][field] + delta}})
    return damage


@pytest.mark.parametrize(("damage", "count", "words"), [
    (lambda path, target: target, 6, ["no such file"]),
    (lambda path, target: target.write_bytes(path.read_bytes()[: path.stat().st_size // 2]) and target, 6,
     ["not a marlrepro-demos file", "not a zip archive", "truncated", "collect the demonstrations again"]),
    (lambda path, target: target.write_text("hello") and target, 6, ["not a marlrepro-demos file"]),
    (lambda path, target: flip_byte(path, target, EPISODES_MEMBER), 6, ["corrupt", EPISODES_MEMBER, "collect the demonstrations again"]),
    (_other_episodes, 6, ["corrupt", "checksum", "episodes_sha256"]),
    (_other_shapes, 6, ["corrupt", "obs has shape [6, 26, 3, 17]", "expected [6, 26, 3, 18]"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "version": 7}), 6,
     ["marlrepro-demos version 7 is not supported", "supported versions: 1"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "format": "marlrepro-policy"}), 6,
     ["not a marlrepro-demos file", "'marlrepro-policy'"]),
    (lambda path, target: rewrite(path, target, {k: v for k, v in manifest_of(path).items() if k != "seeds"}), 6,
     ["lacks the fields seeds"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "env": "mpe:simple_reference"}), 6,
     ["another task", "env 'mpe:simple_reference' (the run's is 'mpe:simple_spread')"]),
    (_spec_changed("obs_dim", 1), 6, ["another task", "obs_dim=19 (the run's env has 18)"]),
    (_spec_changed("n_agents", -1), 6, ["another task", "n_agents=2 (the run's env has 3)"]),
    (_spec_changed("episode_limit", 5), 6, ["another task", "episode_limit=30 (the run's env has 25)"]),
    (lambda path, target: path, 7, ["holds 6 episodes, fewer than the 7 asked for (demos.count)"]),
], ids=["missing", "truncated", "not-a-zip", "flipped-byte", "other-episodes", "other-shapes", "version-7",
        "other-format", "missing-field", "other-env", "other-obs-dim", "other-agents", "other-limit", "too-few"])
def test_a_bad_demo_file_fails_with_a_clear_error_before_training(demos, tmp_path, monkeypatch, damage, count, words):
    """Each problem raises DemoFileError naming the file and what is wrong, from load_demos and from
    a BC trainer, which checks the file before it builds any environment or learner."""
    target = damage(demos, tmp_path / "bad.zip")
    with pytest.raises(DemoFileError) as err:
        load_demos(target, SPEC, count)
    assert str(err.value).startswith(f"{target}: ")
    for word in words:
        assert word in str(err.value)

    def nothing_yet(*args, **kwargs):
        raise AssertionError("the trainer built something before checking the demonstrations")

    monkeypatch.setattr(train_module, "make", nothing_yet)
    monkeypatch.setattr(train_module, "build_learner", nothing_yet)
    config = load_config(["config/algos/bc.yaml"], [*SETTINGS, f"demos.path={target}", f"demos.count={count}",
                                                     "demos.batch_size=2"])
    with pytest.raises(DemoFileError, match=words[0].replace("(", r"\(").replace(")", r"\)")):
        Trainer.solo(config, tmp_path / "run")


def test_the_command_line_writes_the_same_file_within_the_papers_cap(expert, demos, tmp_path, capsys):
    """``collect-demos`` writes collect_demos's file; more episodes than config/demos.yaml allows
    for the backend (MPE: 128) is refused (status 2) before anything is played, as is a bad config."""
    assert main(["collect-demos", str(expert), str(tmp_path / "cli.zip"), "--episodes", "6", "--width", "4"]) == 0
    assert (tmp_path / "cli.zip").read_bytes() == demos.read_bytes()
    assert main(["collect-demos", str(expert), str(tmp_path / "x.zip"), "--episodes", "129"]) == 2
    assert "episodes: 129 is more than the 128 the paper collects for this task" in capsys.readouterr().err
    (tmp_path / "demos.yaml").write_text("acting: greedyy\n")
    assert main(["collect-demos", str(expert), str(tmp_path / "x.zip"), "--episodes", "2", "--config",
                 str(tmp_path / "demos.yaml")]) == 2
    err = capsys.readouterr().err
    assert "acting: unknown value 'greedyy' (did you mean 'greedy'?)" in err and "missing keys" in err
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(SystemExit) as done:
        main(["collect-demos", "--help"])
    assert done.value.code == 0
    assert "the first N episodes of a larger collection" in " ".join(capsys.readouterr().out.split())


def test_sampled_demonstrations_draw_from_each_episodes_own_stream(tmp_path):
    """A softmax expert (MAPPO) acting ``sampled``: each episode's samples come from its own seed's
    stream, so two episodes collected alone are the first two of four collected two at a time;
    and they are samples, not the greedy actions."""
    root = tmp_path / "mappo"
    config = load_config(["config/algos/mappo.yaml"], [*SETTINGS, "learner.buffer_size=4", "ppo.critic_input=state",
                                                       "run.t_max=100"])
    train_pack([PackMember(config, root)])
    export_policy(root, tmp_path / "mappo.zip")
    collect_demos(tmp_path / "mappo.zip", tmp_path / "four.zip", 4, acting="sampled", width=2)
    collect_demos(tmp_path / "mappo.zip", tmp_path / "second.zip", 1, seed=1, acting="sampled", width=1)
    four, second = load_demos(tmp_path / "four.zip", SPEC, 4), load_demos(tmp_path / "second.zip", SPEC, 1)
    assert four.manifest.acting == "sampled"
    for name in EPISODE_FIELDS:
        assert torch.equal(getattr(second.episodes, name)[0], getattr(four.episodes, name)[1]), name
    episodes = four.episodes
    controller = load_policy(tmp_path / "mappo.zip").controller
    with torch.no_grad():
        logits = controller.sequence(controller.observe(episodes), episodes.actions, episodes.avail_actions)
    filled = episodes.filled.bool()
    greedy = masked_greedy(logits[:, :-1], episodes.avail_actions[:, :-1])
    assert not torch.equal(greedy[filled], episodes.actions[filled])
