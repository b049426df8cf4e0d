"""MAGAIL (algo ``magail``, :mod:`marlrepro.learners.magail`): the discriminator's logistic loss and
the reward against plain loops over episodes, steps and agents, with padding and dead agents
masked; imitation of a known per-state expert; training through the trainer's demonstration hook,
packs, resumes, several discriminator steps per update; the config's checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from episode_batches import masked_cases_batch, trainer_with_one_rollout
from run_outputs import (
    assert_crashed_pack_resumes_exactly,
    assert_packed_run_equals_alone,
)
from scripted_demos import KNOWN, write_scripted_demos
from training_checks import run_and_check_training

from marlrepro.buffer import Episodes
from marlrepro.config import load_config
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.learners.magail import MAGAILLearner
from marlrepro.nets.stacked_mlp import LAYER_NORM_EPS
from marlrepro.train import PackMember, Trainer, train_pack

SPEC = EnvSpec("test", n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=5)
SETTINGS = ["run.device=cpu", "run.progress=false", "tracking.uri=", "agent.hidden_dim=16", "ppo.critic_input=state"]


def _config(*extra: str):
    return load_config(["config/algos/magail.yaml"], [*SETTINGS, "env.name=matrix:monotonic", "demos.path=d.zip",
                                                      "discriminator.hidden_dim=8", *extra])


def _learner(*extra: str) -> MAGAILLearner:
    """A MAGAIL learner on :data:`SPEC` whose discriminator differs from its behaviour copy (the
    one the rollout was collected under) and has non-trivial LayerNorm scales and shifts."""
    torch.manual_seed(0)
    learner = MAGAILLearner(SPEC, _config(*extra), torch.device("cpu"))
    with torch.no_grad():
        for disc in (learner.discriminator, learner.behaviour_discriminator):
            for p in disc.parameters():
                p.add_(torch.randn_like(p) * 0.5)
    return learner


def _logit_loop(disc, obs: torch.Tensor, action: int, agent: int) -> float:
    """IMAX-PPO's discriminator on one agent-step, from the weights: ``LayerNorm(x) → W₁ → ReLU →
    LayerNorm → w₂``, ``x = [o_i, onehot(a_i), onehot(i)]``."""
    net = disc.net
    x = torch.cat([obs, torch.eye(SPEC.n_actions)[action], torch.eye(SPEC.n_agents)[agent]]).double()
    for k in range(2):
        if k:
            x = torch.relu(x)
        scale, shift = net.norms[k][0].double()
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + LAYER_NORM_EPS) * scale + shift
        x = x @ net.weights[k][0].double() + net.biases[k][0].double()
    return float(x[0].detach())


def _valid(episodes: Episodes, i: int, t: int, agent: int) -> bool:
    """A filled step of a live agent (more than one available action)."""
    return bool(episodes.filled[i, t]) and int(episodes.avail_actions[i, t, agent].sum()) > 1


def _entries(episodes: Episodes):
    b, t, n = episodes.actions.shape
    return [(i, s, a) for i in range(b) for s in range(t) for a in range(n) if _valid(episodes, i, s, a)]


def _demo_cases() -> Episodes:
    """Other masked cases than :func:`masked_cases_batch`'s: episode 0 ends after step 1, agent 0
    dies at step 2 of episode 3."""
    demos = masked_cases_batch(SPEC, 1)
    demos.filled[0, 2:] = 0
    demos.terminated[0, 1] = 1
    demos.avail_actions[3, 2:, 0] = False
    demos.avail_actions[3, 2:, 0, 0] = True
    return demos


def test_the_discriminator_loss_is_the_logistic_loss_over_valid_agent_steps():
    """``L_D = mean_demos[−log D] + mean_own[−log(1 − D)]`` over filled steps of live agents, each
    D computed from the weights one agent-step at a time; the logged means of D too."""
    learner = _learner()
    batch, demos = masked_cases_batch(SPEC, 0), _demo_cases()
    loss, d_expert, d_own = learner.discriminator_loss(batch, demos)
    sides = []
    for episodes, label in ((demos, 1), (batch, 0)):
        entries = _entries(episodes)
        assert 0 < len(entries) < episodes.actions.numel()  # some agent-steps are masked
        ds = [1 / (1 + math.exp(-_logit_loop(learner.discriminator, episodes.obs[i, t, a],
                                             int(episodes.actions[i, t, a]), a))) for i, t, a in entries]
        terms = [-math.log(d if label else 1 - d) for d in ds]
        sides.append((sum(terms) / len(terms), sum(ds) / len(ds)))
    assert float(loss.detach()) == pytest.approx(sides[0][0] + sides[1][0], rel=1e-5)
    assert (float(d_expert), float(d_own)) == pytest.approx((sides[0][1], sides[1][1]), rel=1e-5)


@pytest.mark.parametrize("form", ["softplus", "centred_sigmoid"])
def test_each_agents_reward_is_its_collecting_discriminators_and_zero_where_masked(form):
    """r_i = −log(1 − D_i) (or 2 D_i − 1) of the behaviour discriminator (the rollout's), per agent
    and step; 0 on padded steps and for dead agents."""
    learner = _learner(f"discriminator.reward={form}")
    batch = masked_cases_batch(SPEC, 0)
    rewards = learner.rewards(batch)
    assert rewards.shape == batch.actions.shape
    b, t, n = batch.actions.shape
    for i in range(b):
        for s in range(t):
            for a in range(n):
                if not _valid(batch, i, s, a):
                    assert rewards[i, s, a] == 0
                    continue
                d = 1 / (1 + math.exp(-_logit_loop(learner.behaviour_discriminator, batch.obs[i, s, a],
                                                   int(batch.actions[i, s, a]), a)))
                expected = -math.log(1 - d) if form == "softplus" else 2 * d - 1
                assert float(rewards[i, s, a]) == pytest.approx(expected, rel=1e-5)


def test_masked_entries_and_the_environments_reward_leave_the_loss_and_gradients_unchanged():
    """A dead agent's actions, anything after an episode's end (in the replay and the demo batch)
    and the environment's reward change neither the loss nor any gradient."""
    learner = _learner()
    grads = []
    for changed in (False, True):
        batch, demos = masked_cases_batch(SPEC, 0), _demo_cases()
        if changed:
            for episodes, ended, padded in ((batch, 2, 3), (demos, 0, 2)):  # episode, its first padded step
                episodes.actions[:, 3:, 1] = (episodes.actions[:, 3:, 1] + 1) % SPEC.n_actions  # agent 1 is dead
                episodes.obs[ended, padded:] += 7.0
                episodes.actions[ended, padded:] = (episodes.actions[ended, padded:] + 2) % SPEC.n_actions
            demos.actions[3, 2:, 0] = (demos.actions[3, 2:, 0] + 1) % SPEC.n_actions  # and agent 0 of episode 3
            batch.reward.normal_()
        learner.zero_grad()
        terms = learner(batch, torch.tensor(0.0), demos=demos)
        terms.loss.backward()
        grads.append((terms.loss.detach(), [p.grad.clone() for p in learner.parameters() if p.requires_grad]))
    assert torch.equal(grads[0][0], grads[1][0])
    for first, second in zip(grads[0][1], grads[1][1], strict=True):
        assert torch.equal(first, second)


# ---------------------------------------------------------------- learning a per-state expert
N_STATES, STEPS = 3, 3
CYCLE = EnvSpec(name="cycle", n_agents=2, n_actions=3, obs_dim=N_STATES, state_dim=N_STATES, episode_limit=STEPS)


def _expert(states: torch.Tensor) -> torch.Tensor:
    """Agent ``i`` plays ``(s + i) mod 3``: another action per agent and per state."""
    return (states.unsqueeze(-1) + torch.arange(CYCLE.n_agents)) % CYCLE.n_actions


def _cycle_episodes(states: torch.Tensor, actions: torch.Tensor) -> Episodes:
    """Episodes of the three-state task of tests/test_inverse_q_learning.py: uniform states whatever
    the actions, every agent seeing the one-hot state, all actions available, no reward."""
    b, n = states.shape[0], CYCLE.n_agents
    onehot = torch.nn.functional.one_hot(states, N_STATES).float()
    terminated = torch.zeros(b, STEPS)
    terminated[:, -1] = 1
    return Episodes(obs=onehot.unsqueeze(2).expand(b, STEPS + 1, n, N_STATES).contiguous(), state=onehot,
                    avail_actions=torch.ones(b, STEPS + 1, n, CYCLE.n_actions, dtype=torch.bool), actions=actions,
                    reward=torch.zeros(b, STEPS), terminated=terminated, filled=torch.ones(b, STEPS))


def test_magail_imitates_a_per_state_expert_on_every_state():
    """The on-policy loop (sample 16 episodes of the policy, freeze the behaviour networks, 5
    updates of PPO and the discriminator on them and 16 demonstrations; magail.yaml's learning
    rates tripled for a short test) makes the greedy decentralised policy the expert's in every
    state, for every agent (the actor sees its id: the agents see the same state and act apart),
    in 50 rollouts (it does by 40): the discriminator's reward is the only signal (the task's is
    zero), and the untrained policy is not the expert's. At the end the discriminator can no
    longer tell the two apart (GAIL's equilibrium, D = 1/2 on both sides)."""
    config = load_config(["config/algos/magail.yaml"], [
        "env.name=matrix:monotonic", "ppo.critic_input=state", "agent.hidden_dim=32", "agent.obs_agent_id=true",
        "discriminator.hidden_dim=32", "demos.path=d.zip"])
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    learner = MAGAILLearner(CYCLE, config, torch.device("cpu"))
    optimiser = torch.optim.Adam([{"params": [p for name, p in learner.named_parameters() if name.startswith(group.prefix)],
                                   "lr": 3 * group.lr} for group in learner.param_groups()], eps=1e-5)

    def policy_logits(states: torch.Tensor) -> torch.Tensor:  # the actor sees the observation alone
        episodes = _cycle_episodes(states, torch.zeros(states.shape[0], STEPS, CYCLE.n_agents, dtype=torch.int64))
        return learner.actor.sequence(episodes.obs, episodes.actions, episodes.avail_actions)[:, :-1]

    def accuracy() -> float:
        states = torch.randint(0, N_STATES, (64, STEPS + 1), generator=g)
        with torch.no_grad():
            greedy = policy_logits(states).argmax(dim=-1)
        return (greedy == _expert(states[:, :-1])).float().mean().item()

    assert accuracy() < 0.7
    demo_states = torch.randint(0, N_STATES, (64, STEPS + 1), generator=g)
    demos = _cycle_episodes(demo_states, _expert(demo_states[:, :-1]))
    for _ in range(50):
        states = torch.randint(0, N_STATES, (16, STEPS + 1), generator=g)
        with torch.no_grad():
            probs = policy_logits(states).softmax(dim=-1)
        actions = torch.multinomial(probs.reshape(-1, CYCLE.n_actions), 1, generator=g).view(16, STEPS, -1)
        batch = _cycle_episodes(states, actions)
        for copy, source in learner.behaviour_pairs:
            getattr(learner, copy).load_state_dict(getattr(learner, source).state_dict())
        for _ in range(config.learner.updates_per_rollout):
            terms = learner(batch, torch.tensor(0.0), demos=demos.index(torch.randperm(64, generator=g)[:16]))
            optimiser.zero_grad()
            terms.loss.backward()
            optimiser.step()
            for name, value in terms.buffers.items():  # the value normaliser's moved statistics
                learner.get_buffer(name).copy_(value)
    assert accuracy() == 1.0
    assert abs(float(terms.logged["disc_expert"]) - float(terms.logged["disc_policy"])) < 0.1


# ---------------------------------------------------------------- through the trainer
@pytest.fixture(scope="module")
def scripted_demos(tmp_path_factory) -> Path:
    """The scripted expert's demonstrations on matrix:monotonic (tests/scripted_demos.py)."""
    return write_scripted_demos(tmp_path_factory.mktemp("scripted"))


# the matrix game's agents see the same observation: the shared actor needs their ids to act apart
MATRIX = ["agent.obs_agent_id=true", "env.num_envs=16", "learner.batch_size=16", "learner.buffer_size=16", "learner.updates_per_rollout=2",
          "run.eval_episodes=4", "demos.batch_size=16"]


def _matrix(demos: Path, count: int, seed: int, *extra: str):
    return _config(*MATRIX, f"demos.path={demos}", f"demos.count={count}", f"run.seed={seed}", *extra)


def test_magail_trains_through_the_demonstration_hook_to_the_experts_joint_action(scripted_demos, tmp_path):
    """On the matrix game MAGAIL's greedy agents come to play the expert's usual joint action, which
    the untrained agents do not: the policy, critic and discriminator trained through the trainer
    (the demo batches from the hook), losses finite; the discriminator tells the expert's actions
    from the policy's early on (the logged mean D is higher on the expert's side). With the
    policy's rates at magail.yaml's 5e-4 × 6 and the discriminator's at 1e-3 × 10: the
    discriminator must lead (at 1e-3 the policy settled on (1, 1) or (0, 2) in this budget)."""
    config = _matrix(scripted_demos, 64, 0, "learner.lr=0.003", "ppo.critic_lr=0.003", "discriminator.lr=0.01",
                     "run.t_max=960", "run.eval_interval=320")  # seeds 0-3 all reach KNOWN
    import pandas as pd

    (final,) = run_and_check_training(Trainer.solo(config, tmp_path))
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["test_return_mean"].iloc[0] != 5.0  # the untrained agents play another joint action
    assert final["greedy_joint_action"] == list(KNOWN)
    assert metrics["disc_expert"].iloc[1] > metrics["disc_policy"].iloc[1]


def test_a_pack_of_runs_with_different_demo_counts_equals_the_runs_alone(scripted_demos, tmp_path):
    """Three MAGAIL runs using the first 16, 32 and 64 demonstrations, with other seeds, packed,
    equal the three runs alone (CPU): metrics and final summary exactly, weights to float rounding
    (PPO's gradients reduce in another order under the pack's vmap, as MAPPO's do)."""
    runs = [(16, 0), (32, 1), (64, 2)]
    train_pack([PackMember(_matrix(scripted_demos, count, seed, "run.t_max=160", "run.eval_interval=80"),
                           tmp_path / "pack" / str(count)) for count, seed in runs])
    for count, seed in runs:
        train_pack([PackMember(_matrix(scripted_demos, count, seed, "run.t_max=160", "run.eval_interval=80"),
                               tmp_path / "alone" / str(count))])
        weights = assert_packed_run_equals_alone(tmp_path / "pack" / str(count), tmp_path / "alone" / str(count),
                                                 exact_weights=False)
        assert "discriminator.net.weights.1" in weights and "behaviour_discriminator.net.weights.1" in weights


def test_a_magail_pack_resumed_after_a_crash_equals_an_uninterrupted_one(scripted_demos, tmp_path, monkeypatch):
    """The discriminator, its behaviour copy and its optimiser state are in each run's checkpoint:
    a crashed pack of two runs resumes bit for bit."""
    def pack(name: str) -> list[PackMember]:
        return [PackMember(_matrix(scripted_demos, count, seed, "run.t_max=160", "run.eval_interval=80",
                                   "run.checkpoint_interval=2"), tmp_path / name / f"seed{seed}")
                for count, seed in ((16, 0), (64, 1))]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path, crash_after=3)


def test_several_discriminator_steps_per_update_step_the_policy_once(scripted_demos, tmp_path):
    """With discriminator.steps_per_update=3 an update is three phases: the actor and critic take
    one Adam step, the discriminator three, on the same batches; the rewards come from the
    discriminator that collected the rollout (its behaviour copy keeps those weights)."""
    trainer = trainer_with_one_rollout(_matrix(scripted_demos, 64, 0, "learner.updates_per_rollout=1",
                                               "discriminator.steps_per_update=3"), tmp_path)
    params = trainer.learners.params
    collecting = params["discriminator.net.weights.1"].clone()
    trainer._train_step([True])
    names = {id(p): name for name, p in params.items()}
    steps = {names[id(p)]: int(state["step"].max()) for p, state in zip(trainer.optimizer.params, trainer.optimizer.state)}
    assert {steps[n] for n in steps if n.startswith(("actor.", "critic."))} == {1}
    assert {steps[n] for n in steps if n.startswith("discriminator.")} == {3}
    assert torch.equal(params["behaviour_discriminator.net.weights.1"], collecting)
    assert not torch.equal(params["discriminator.net.weights.1"], collecting)


# ---------------------------------------------------------------- config
@pytest.mark.parametrize(("setting", "words"), [
    ("discriminator.lr=0", "discriminator.lr: must be > 0, got 0.0"),
    ("discriminator.steps_per_update=0", "discriminator.steps_per_update: must be > 0"),
    ("discriminator.hidden_dim=0", "discriminator.hidden_dim: must be > 0"),
    ("discriminator.reward=logit", "discriminator.reward: unknown value 'logit'"),
    ("learner.buffer_size=256", "learner.buffer_size: algo 'magail' trains on its last rollout alone"),
    ("demos.batch_size=8192", "demos.batch_size: a batch draws distinct"),
])
def test_bad_magail_settings_are_refused_with_the_field_named(setting, words):
    with pytest.raises(ConfigError) as err:
        _config(setting)
    assert words in str(err.value)


def test_magail_without_a_demo_file_fails_before_training(tmp_path, monkeypatch):
    """MAGAIL needs demos.path; the trainer says so before it builds an env or a learner."""
    from marlrepro import train as train_module

    def nothing_yet(*args, **kwargs):
        raise AssertionError("the trainer built something before checking the demonstrations")

    monkeypatch.setattr(train_module, "make", nothing_yet)
    monkeypatch.setattr(train_module, "build_learner", nothing_yet)
    config = load_config(["config/algos/magail.yaml"], [*SETTINGS, "env.name=matrix:monotonic"])
    with pytest.raises(ConfigError, match="demos.path: algo 'magail' learns from demonstrations; set it"):
        Trainer.solo(config, tmp_path)
