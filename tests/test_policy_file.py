"""``marlrepro export-policy`` and :mod:`marlrepro.policy_file`: an exported policy loads back and
reproduces its run's evaluation; a wrong, corrupt or unfitting file fails with a clear error."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
import torch
from archive_files import flip_byte, manifest_of, rewrite

from marlrepro.checkpoint import PREVIOUS_FILE, read_checkpoint
from marlrepro.cli import main
from marlrepro.config import load_config
from marlrepro.envs import make
from marlrepro.errors import PolicyFileError
from marlrepro.exploration import masked_greedy
from marlrepro.policy_file import (
    FORMAT,
    MANIFEST_MEMBER,
    VERSION,
    WEIGHTS_MEMBER,
    check_env_spec,
    evaluate_policy,
    export_policy,
    load_policy,
    read_policy_file,
)
from marlrepro.train import PackMember, Trainer, train_pack

# A checkpoint after every update: state.prev.pt holds the state in which the final evaluation began.
SETTINGS = ["run.device=cpu", "run.progress=false", "tracking.uri=", "agent.hidden_dim=16", "run.eval_episodes=8",
            "run.checkpoint_interval=1"]
# MAPPO's actor on SMAX (fused rollouts), trained alone, and QMIX on the matrix game (stepwise), a
# pack of two seeds whose second run is exported
RUNS = {
    "mappo": (["env.name=smax:3m", "env.num_envs=4", "learner.batch_size=4", "learner.buffer_size=4",
               "learner.updates_per_rollout=1", "run.t_max=120", "run.eval_interval=60"], (0,)),
    "qmix": (["env.name=matrix:me_igm", "env.num_envs=8", "learner.batch_size=8", "run.t_max=160",
              "run.eval_interval=80"], (0, 1)),
}


def _members(root: Path, algo: str) -> list[PackMember]:
    extra, seeds = RUNS[algo]
    return [PackMember(load_config([f"config/algos/{algo}.yaml"], [*SETTINGS, *extra, f"run.seed={s}"]),
                       root / f"seed{s}") for s in seeds]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[PackMember]]:
    """The trained runs of :data:`RUNS`, by algorithm."""
    trained = {}
    for algo in RUNS:
        trained[algo] = _members(tmp_path_factory.mktemp(algo), algo)
        train_pack(trained[algo])
    return trained


@pytest.fixture(scope="module")
def policy_path(runs, tmp_path_factory) -> Path:
    """The QMIX pack's second run, exported."""
    path = tmp_path_factory.mktemp("policy") / "qmix.zip"
    export_policy(runs["qmix"][1].run_dir, path)
    return path


def _same_greedy_actions(policy: torch.nn.Module, reference: torch.nn.Module, n_agents: int, obs_dim: int,
                         n_actions: int) -> None:
    """Both controllers give equal values, hence equal greedy actions, on the same sequence of random
    observations, last actions and available actions."""
    generator = torch.Generator().manual_seed(0)
    hidden = [policy.initial_hidden(5), reference.initial_hidden(5)]
    last = torch.full((5, n_agents), -1)
    for _ in range(4):
        obs = torch.randn(5, n_agents, obs_dim, generator=generator)
        avail = torch.rand(5, n_agents, n_actions, generator=generator) < 0.6
        avail[..., 0] = True
        (q, hidden[0]), (q_ref, hidden[1]) = (c.step(obs, last, h, avail) for c, h in zip((policy, reference), hidden))
        assert torch.equal(q, q_ref)
        last = masked_greedy(q, avail)
        assert torch.equal(last, masked_greedy(q_ref, avail))


@pytest.mark.parametrize("algo", list(RUNS))
def test_an_exported_policy_acts_and_evaluates_as_its_run(runs, tmp_path, algo):
    """Each run's loaded controller holds the run's final weights and acts as the trainer's
    controller; on an env of the run's task in the random state in which the run's final evaluation
    began (the checkpoint before the final one), its greedy evaluation gives the run's final test
    return and win rate exactly."""
    members = runs[algo]
    trainer = Trainer(members)  # the finished runs, restored from their checkpoints
    spec = trainer.spec
    for r, member in enumerate(members):
        export_policy(member.run_dir, tmp_path / f"policy{r}.zip")
        policy = load_policy(tmp_path / f"policy{r}.zip")
        reference = trainer.learners.module_for(r, trainer.eval_policies["test"])
        assert policy.controller.state_dict().keys() == reference.state_dict().keys()
        assert all(torch.equal(t, reference.state_dict()[k]) for k, t in policy.controller.state_dict().items())
        _same_greedy_actions(policy.controller, reference, spec.n_agents, spec.obs_dim, spec.n_actions)
        final = json.loads((member.run_dir / "final.json").read_text())
        before_last_eval = read_checkpoint(member.run_dir / PREVIOUS_FILE)
        assert before_last_eval["progress"]["t_env"] == final["t_env"]
        cfg = member.config
        env = make(cfg.env.name, cfg.env.num_envs, cfg.run.seed, torch.device("cpu"), **cfg.env.options)
        env.set_rng_state(before_last_eval["env_rng"])
        assert evaluate_policy(policy, env) == (final["test_return_mean"], final["test_won_mean"])


def test_the_manifest_describes_the_run_and_the_file_is_reproducible(runs, policy_path, tmp_path):
    member = runs["qmix"][1]
    manifest, weights = read_policy_file(policy_path)
    final = json.loads((member.run_dir / "final.json").read_text())
    assert (manifest.format, manifest.version, manifest.method, manifest.env) == (FORMAT, VERSION, "qmix",
                                                                                  "matrix:me_igm")
    assert (manifest.controller, manifest.controller_class, manifest.controller_source) == \
        ("test", "AgentController", "obs")
    assert (manifest.t_env, manifest.config["run"]["seed"]) == (final["t_env"], 1)
    assert manifest.spec == dataclasses.asdict(Trainer(runs["qmix"]).spec)
    assert Path(manifest.run_dir) == member.run_dir.resolve()
    assert set(weights) == set(load_policy(policy_path).controller.state_dict())
    export_policy(member.run_dir, tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == policy_path.read_bytes()
    rng = torch.get_rng_state()
    load_policy(policy_path)
    assert torch.equal(torch.get_rng_state(), rng)  # loading draws no random numbers of the caller's





def _truncated(path: Path, target: Path) -> Path:
    target.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return target


def _not_a_zip(path: Path, target: Path) -> Path:
    target.write_text("hello")
    return target


def _other_weights(path: Path, target: Path) -> Path:
    """The file with its weights changed and the archive rebuilt around them (the zip's own CRC
    is right): only the manifest's checksum tells."""
    state = load_policy(path).controller.state_dict()
    state = {name: t + 1 for name, t in state.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return rewrite(path, target, members={WEIGHTS_MEMBER: buffer.getvalue()})


@pytest.mark.parametrize(("damage", "words"), [
    (lambda path, target: flip_byte(path, target, WEIGHTS_MEMBER), ["corrupt", WEIGHTS_MEMBER, "export the policy again"]),
    (_other_weights, ["corrupt", "checksum", "weights_sha256"]),
    (_truncated, ["not a marlrepro-policy file", "not a zip archive", "truncated"]),
    (_not_a_zip, ["not a marlrepro-policy file", "not a zip archive"]),
    (lambda path, target: target, ["no such file"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "version": 7}),
     ["version 7 is not supported", "supported versions: 1"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "format": "something"}),
     ["not a marlrepro-policy file", "'something'"]),
    (lambda path, target: rewrite(path, target, {k: v for k, v in manifest_of(path).items() if k != "t_env"}),
     ["lacks the fields t_env"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "t_env": "many"}),
     ["fields of the wrong type: t_env (str)"]),
    (lambda path, target: rewrite(path, target, members={WEIGHTS_MEMBER: b"hello"}), ["corrupt", "checksum"]),
    (lambda path, target: rewrite(
        path, target, {**(m := manifest_of(path)), "config": {**m["config"], "agent": {"hidden_dim": 8}}}),
     ["weights do not fit", "agent.fc2.weight has shape [3, 16], the controller [3, 8]"]),
    (lambda path, target: rewrite(path, target, {**manifest_of(path), "controller": "tset"}),
     ["unknown evaluated controller", "did you mean 'test'?"]),
], ids=["flipped-byte", "other-weights", "truncated", "not-a-zip", "missing", "version-7", "other-format",
        "missing-field", "wrong-type", "bad-weights", "weights-do-not-fit", "unknown-controller"])
def test_a_wrong_or_corrupt_file_fails_with_a_clear_error(policy_path, tmp_path, damage, words):
    target = damage(policy_path, tmp_path / "bad.zip")
    with pytest.raises(PolicyFileError) as err:
        load_policy(target)
    assert str(err.value).startswith(f"{target}: ")
    for word in words:
        assert word in str(err.value)


def test_a_checkpoint_is_not_a_policy_file(runs):
    checkpoint = runs["qmix"][1].run_dir / "checkpoint" / "state.pt"  # a zip archive too (torch.save)
    with pytest.raises(PolicyFileError, match=f"not a {FORMAT} file \\(no {MANIFEST_MEMBER} in the archive\\)"):
        load_policy(checkpoint)


@pytest.mark.parametrize("field", ["n_agents", "obs_dim", "n_actions"])
def test_an_env_of_another_shape_is_refused_naming_the_field(policy_path, field):
    manifest, _ = read_policy_file(policy_path)
    trained = manifest.env_spec
    other = dataclasses.replace(trained, name="matrix:other", **{field: getattr(trained, field) + 1})
    check_env_spec(manifest, dataclasses.replace(trained, episode_limit=9))  # what the agents do not read
    with pytest.raises(PolicyFileError) as err:
        check_env_spec(manifest, other)
    assert f"{field}={getattr(trained, field)} (the env has {getattr(other, field)})" in str(err.value)
    assert "does not fit env matrix:other" in str(err.value)


def test_evaluating_on_an_env_with_other_agents_is_refused(policy_path):
    three_agents = make("matrix:me_igm", 2, 0, torch.device("cpu"), payoff=[[[0, 1]] * 2] * 2)
    with pytest.raises(PolicyFileError, match=r"n_agents=2 \(the env has 3\)"):
        evaluate_policy(load_policy(policy_path), three_agents)


def test_the_command_line_writes_the_same_file(runs, policy_path, tmp_path, capsys):
    run_dir = runs["qmix"][1].run_dir
    assert main(["export-policy", str(run_dir), str(tmp_path / "cli.zip")]) == 0
    assert (tmp_path / "cli.zip").read_bytes() == policy_path.read_bytes()
    assert main(["export-policy", str(run_dir), str(tmp_path / "prev.zip"), "--checkpoint", "previous"]) == 0
    assert read_policy_file(tmp_path / "prev.zip")[0].checkpoint == "checkpoint/state.prev.pt"
    assert main(["export-policy", str(run_dir), str(tmp_path / "x.zip"), "--controller", "tset"]) == 2
    assert "did you mean 'test'?" in capsys.readouterr().err
    assert main(["export-policy", str(tmp_path / "nowhere"), str(tmp_path / "x.zip")]) == 2
    assert "checkpoint/state.pt: no such checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
