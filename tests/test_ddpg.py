"""The DDPG family (MADDPG, independent DDPG, CESMA's centralised expert): the Gumbel-softmax, what
each critic reads, the JAX actor, masks, the update's phases, learning and packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from episode_batches import masked_cases_batch, trainer_with_one_rollout

from marlrepro.config import load_config
from marlrepro.envs import make
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.learners.ddpg import DDPGLearner
from marlrepro.learners.gumbel import (
    UNIFORM_BITS,
    gumbel_of_bits,
    gumbel_softmax,
    hashed_gumbel,
)
from marlrepro.policy_file import evaluate_policy, export_policy, load_policy
from marlrepro.train import PackMember, train, train_pack

SPEC = EnvSpec("test", n_agents=3, obs_dim=4, state_dim=12, n_actions=3, episode_limit=5)
CPU = torch.device("cpu")


def _config(algo: str, *extra: str):
    """``algo``'s file on ME-IGM's one-step matrix game, small and fast (the learning and pack tests)."""
    return load_config([f"config/algos/{algo}.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=32", "learner.batch_size=32", "learner.buffer_size=256",
        "agent.hidden_dim=32", "learner.learning_starts=0", "run.eval_episodes=4", "run.device=cpu",
        "run.progress=false", "tracking.uri=", *extra,
    ])


def _learner(algo: str, seed: int = 0) -> DDPGLearner:
    torch.manual_seed(seed)
    return DDPGLearner(SPEC, _config(algo), CPU)


# ------------------------------------------------------------------------------ Gumbel-softmax
def test_the_gumbel_softmax_is_differentiable_and_its_straight_through_sample_one_hot():
    """The soft sample is a distribution with a gradient in the logits; the straight-through
    sample, with the same noise, is the one-hot of its argmax and has exactly its gradient."""
    logits = torch.randn(64, 5, requires_grad=True)
    noise = hashed_gumbel(torch.tensor([7, 0]), (64, 5))
    weights = torch.randn(64, 5)
    soft = gumbel_softmax(logits, 0.5, noise=noise)
    torch.testing.assert_close(soft.sum(dim=-1), torch.ones(64))
    (soft_grad,) = torch.autograd.grad((soft * weights).sum(), logits)
    assert soft_grad.abs().sum() > 0
    hard = gumbel_softmax(logits, 0.5, hard=True, noise=noise)
    assert set(hard.detach().unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(hard.sum(dim=-1), torch.ones(64))
    assert torch.equal(hard.argmax(dim=-1), soft.argmax(dim=-1))
    (hard_grad,) = torch.autograd.grad((hard * weights).sum(), logits)
    torch.testing.assert_close(hard_grad, soft_grad)


def test_the_argmax_of_hashed_gumbel_samples_samples_the_categorical():
    """The Gumbel-max trick with the hashed noise: argmax frequencies over 40 000 draws match
    softmax(logits) (to 0.01, about 5 standard errors), and the noise has the Gumbel's mean."""
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    noise = hashed_gumbel(torch.tensor([3, 11]), (40_000, 4))
    assert noise.mean().item() == pytest.approx(0.5772, abs=0.02)  # Euler–Mascheroni
    frequencies = torch.bincount(gumbel_softmax(logits.expand(40_000, 4), noise=noise).argmax(dim=-1), minlength=4)
    torch.testing.assert_close(frequencies / 40_000.0, torch.softmax(logits, dim=0), atol=0.01, rtol=0)


def test_the_noise_of_the_extreme_hashed_bits_is_finite():
    """The largest and smallest uniform draws map strictly inside (0, 1): Gumbel noise of every
    23-bit value is finite (24 bits rounded the largest to 1 in float32: infinite noise, NaN
    losses, once in 2^24 draws)."""
    extremes = gumbel_of_bits(torch.tensor([0, 1, 2 ** UNIFORM_BITS - 2, 2 ** UNIFORM_BITS - 1]))
    assert bool(torch.isfinite(extremes).all())
    assert extremes[0] < extremes[1] < extremes[2] < extremes[3]


def test_hashed_noise_depends_on_each_runs_key_alone_under_vmap():
    keys = torch.tensor([[0, 5], [1, 5], [0, 6]])
    packed = torch.vmap(lambda key: hashed_gumbel(key, (8, 3)))(keys)
    for key, draws in zip(keys, packed, strict=True):
        assert torch.equal(draws, hashed_gumbel(key, (8, 3)))
    assert not torch.equal(packed[0], packed[1]) and not torch.equal(packed[0], packed[2])


# ------------------------------------------------------------------------------ what the critics read
def _q(learner: DDPGLearner, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    onehot = torch.nn.functional.one_hot(actions, SPEC.n_actions).float()
    return learner.critic(obs, learner._per_copy(onehot)).detach()


@pytest.mark.parametrize(("algo", "copies", "reads_others"), [("maddpg", 3, True), ("ddpg", 3, False),
                                                              ("ddpg_central", 1, True)])
def test_a_critic_reads_every_agents_observation_and_action_where_central(algo, copies, reads_others):
    """Changing agent 2's action, or its observation, changes agent 0's Q under MADDPG's central
    critics (and the expert's one joint critic), and leaves it exactly as it was under independent
    DDPG's own-observation critics; agent 2's own Q changes under all."""
    learner = _learner(algo)
    obs = torch.randn(16, SPEC.n_agents, SPEC.obs_dim)
    actions = torch.randint(0, SPEC.n_actions, (16, SPEC.n_agents))
    q = _q(learner, obs, actions)
    assert q.shape == (16, copies)
    other_action = actions.clone()
    other_action[:, 2] = (other_action[:, 2] + 1) % SPEC.n_actions
    other_obs = obs.clone()
    other_obs[:, 2] += 1.0
    for changed in (_q(learner, obs, other_action), _q(learner, other_obs, actions)):
        assert (not torch.equal(changed[:, 0], q[:, 0])) == reads_others
        assert not torch.equal(changed[:, -1], q[:, -1])  # agent 2's critic (the joint one)


# ------------------------------------------------------------------------------ acting in JAX
@pytest.mark.parametrize("algo", ["maddpg", "ddpg_central"])
def test_the_jax_actor_equals_the_torch_actor(algo):
    """The fused rollout's twin (:func:`per_agent_policy_step`) gives the torch actor's logits, so
    the same policy probabilities and greedy actions, for per-agent actors and the joint one."""
    import jax.numpy as jnp

    from marlrepro.envs.jax_rollout import masked_greedy, per_agent_policy_step

    learner = _learner(algo)
    inputs = torch.randn(6, SPEC.n_agents, SPEC.obs_dim)
    expected, _ = learner.actor.agent.step(inputs.reshape(-1, SPEC.obs_dim), learner.actor.initial_hidden(6))
    expected = expected.detach().view(6, SPEC.n_agents, -1)
    params = {name: jnp.asarray(p.detach().numpy()) for name, p in learner.actor.agent.named_parameters()}
    ours = np.asarray(per_agent_policy_step(params, jnp.asarray(inputs.numpy())))
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(jax_softmax(ours)), torch.softmax(expected, -1).numpy(), atol=1e-6)
    avail = jnp.ones(ours.shape, bool)
    assert np.asarray(masked_greedy(jnp.asarray(ours), avail)).tolist() == expected.argmax(dim=-1).tolist()


def jax_softmax(x):
    import jax

    return jax.nn.softmax(x, axis=-1)


# ------------------------------------------------------------------------------ masks
def _loss_and_grads(learner: DDPGLearner, batch, stage: int):
    learner.zero_grad()
    terms = learner(batch, torch.tensor(0.0), torch.tensor(stage), stage)
    terms.loss.backward()
    return terms.loss.detach(), [p.grad.clone() for p in learner.parameters() if p.grad is not None]


@pytest.mark.parametrize("algo", ["maddpg", "ddpg", "ddpg_central"])
@pytest.mark.parametrize("stage", [0, 1])
def test_unfilled_transitions_contribute_nothing(algo, stage):
    """Episode 2 of the batch ends after step 2: whatever its later observations, actions and
    rewards, the critics' loss (stage 0) and the actors' (stage 1) and their gradients are
    exactly the same; a change at a filled step changes them."""
    spec = EnvSpec("test", n_agents=3, obs_dim=4, state_dim=12, n_actions=3, episode_limit=6)
    torch.manual_seed(0)
    learner = DDPGLearner(spec, _config(algo), CPU)
    batch, padded, filled = (masked_cases_batch(spec, 0) for _ in range(3))
    padded.obs[2, 4:] += 1.0  # observation 3 is the last one episode 2 reaches
    padded.actions[2, 3:] = (padded.actions[2, 3:] + 1) % spec.n_actions
    padded.reward[2, 3:] = 5.0
    filled.obs[2, 1] += 1.0
    filled.reward[2, 1] += 1.0
    reference = _loss_and_grads(learner, batch, stage)
    assert len(reference[1]) > 0
    for changed, same in ((padded, True), (filled, False)):
        loss, grads = _loss_and_grads(learner, changed, stage)
        equal = torch.equal(loss, reference[0]) and all(torch.equal(a, b) for a, b in zip(grads, reference[1], strict=True))
        assert equal == same


# ------------------------------------------------------------------------------ the update
def test_an_update_trains_the_critics_then_the_actors_and_moves_the_targets_by_polyak(tmp_path):
    """One update: phase 0 moves the critics alone, phase 1 the actors alone; then each target
    network moves by τ = 0.01 towards its online one, and the noise key has counted both phases.
    Actors and critics are clipped each on its own gradient norm."""
    trainer = trainer_with_one_rollout(_config("maddpg", "learner.updates_per_env_step=null",
                                               "learner.updates_per_rollout=1"), tmp_path)
    params, buffers = trainer.learners.params, trainer.learners.buffers
    nets = {net: [name for name in params if name.startswith(f"{net}.")] for net in ("actor", "critic")}
    targets = {name: p.clone() for name, p in params.items() if name.startswith("target_")}
    step, moved = trainer._step, []

    def recorded(inputs, mask, stage):
        before = {name: params[name].clone() for names in nets.values() for name in names}
        terms = step(inputs, mask, stage)
        moved.append({net: any(not torch.equal(params[n], before[n]) for n in names) for net, names in nets.items()})
        return terms

    trainer._step = recorded
    trainer._train_step([True])
    assert moved == [{"actor": False, "critic": True}, {"actor": True, "critic": False}]
    for name, before in targets.items():
        online = params[name.removeprefix("target_")]
        torch.testing.assert_close(params[name], before + 0.01 * (online - before))
    assert buffers["gumbel_key"][0].tolist() == [0, 2]
    # the actors' gradient norm leaves out the critics' gradient of their loss, which phase 1 does not apply
    sets = [{id(p) for p in group} for group in trainer._clip_sets]
    owners = [sorted({name.split(".")[0] for name in params if id(params[name]) in group}) for group in sets]
    assert sorted(owners) == [["actor"], ["critic"]]


# ------------------------------------------------------------------------------ learning, packing
def test_maddpg_beats_random_policies_on_the_matrix_game(tmp_path):
    """ME-IGM's one-step matrix game, [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]: uniformly random
    policies expect -40/9 ≈ -4.4. MADDPG's policies must expect more than -1 (less than a 1/12
    chance that one agent plays A while the other does not), with updates every 20 env steps
    instead of 100 so that 1600 steps (80 updates) suffice; seeds 0, 1 and 3 reach the optimum 8,
    seed 2 the safe 0."""
    final = train(_config("maddpg", "run.t_max=1600", "run.eval_interval=800", "learner.updates_per_env_step=0.05",
                          "run.seed=0"), tmp_path)
    policies = torch.tensor(final["policy"])
    expected = float(policies[0] @ torch.tensor(final["payoff"]) @ policies[1])
    assert expected > -1.0, (expected, final["policy"])


@pytest.mark.parametrize("algo", ["maddpg", "ddpg", "ddpg_central"])
def test_the_family_trains_on_jaxmpe_spread_through_the_fused_rollout(tmp_path, algo):
    """A pack of two seeds on CESMA's cooperative navigation (3 agents, shared reward), acting in
    the fused JAX rollout (the per-agent and the joint actor's twin): every actor and critic
    trains, the losses stay finite, the greedy evaluation's returns are those of the task."""
    from training_checks import run_and_check_training

    from marlrepro.train import Trainer

    members = [PackMember(load_config([f"config/algos/{algo}.yaml"], [
        "env.name=jaxmpe:simple_spread", "env.options.shared_reward=true", "env.options.max_cycles=10",
        "env.num_envs=4", "learner.batch_size=4", "learner.learning_starts=8", "learner.updates_per_env_step=0.05",
        "agent.hidden_dim=16",
        "run.t_max=400", "run.eval_interval=200", "run.eval_episodes=4", "run.device=cpu", "run.progress=false",
        "tracking.uri=", f"run.seed={seed}"]), tmp_path / f"seed{seed}") for seed in (0, 1)]
    trainer = Trainer(members)
    assert trainer.runner.fused
    for final in run_and_check_training(trainer):
        assert final["updates"] > 0 and final["test_return_mean"] < 0


@pytest.mark.parametrize("algo", ["maddpg", "ddpg_central"])
def test_a_ddpg_pack_equals_its_runs_alone(tmp_path, algo):
    """Two seeds packed in one process equal, run by run, the runs trained alone (CPU): metrics
    and final summary exactly, weights to float rounding (the actors' gradient reductions run in
    another order under the pack's vmap, as MAPPO's; the critics' come out exact). The Gumbel
    noise of the losses is hashed from each run's own key, so no random draw is shared by the
    pack: drawn from torch's generator, the runs' metrics would differ from the first update."""
    import json

    from run_outputs import assert_packed_run_equals_alone

    def member(seed: int, where: str) -> PackMember:
        return PackMember(_config(algo, "run.t_max=640", "run.eval_interval=320", "learner.updates_per_env_step=0.05",
                                  f"run.seed={seed}"), tmp_path / where / f"seed{seed}")

    train_pack([member(seed, "pack") for seed in (0, 1)])
    for seed in (0, 1):
        train_pack([member(seed, "alone")])
        run = tmp_path / "pack" / f"seed{seed}"
        weights = assert_packed_run_equals_alone(run, tmp_path / "alone" / f"seed{seed}", exact_weights=False)
        updates = json.loads((run / "final.json").read_text())["updates"]
        assert weights["gumbel_key"].tolist() == [seed, 2 * updates]  # two phases an update


@pytest.mark.parametrize(("learning_starts", "updates"), [(0, 16), (96, 12)])
def test_learning_starts_once_the_replay_holds_enough_episodes(tmp_path, learning_starts, updates):
    """MADDPG's first update waits for ``batch_size · max_episode_len`` transitions
    (``learner.learning_starts``, in episodes): with 32 one-step episodes a rollout, a run of 10
    rollouts credits all 320 steps (one update per 20) when a batch suffices, and only the 256 from
    the third rollout on when 96 episodes must be stored first."""
    final = train(_config("maddpg", "run.t_max=320", "run.eval_interval=320", "learner.updates_per_env_step=0.05",
                          f"learner.learning_starts={learning_starts}"), tmp_path)
    assert final["updates"] == updates


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize(("setting", "field"), [
    ("ddpg.critic=own", "ddpg.critic"), ("ddpg.temperature=0", "ddpg.temperature"), ("ddpg.polyak=0", "ddpg.polyak"),
    ("ddpg.polyak=1.5", "ddpg.polyak"), ("ddpg.actor_reg=-1", "ddpg.actor_reg"), ("ddpg.actor=both", "ddpg.actor"),
    ("imitation.mode=dagger", "imitation.mode"), ("learner.learning_starts=300", "learner.learning_starts"),
])
def test_bad_ddpg_settings_are_refused_with_the_field_named(setting, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _config("ddpg_central", setting)


# ------------------------------------------------------------------------------ CESMA's expert learns
NAV3 = {"shared_reward": True, "collision_penalty": True, "max_cycles": 25}  # CESMA's reward (E.2)


def _greedy_return(policy_file, episodes: int, seed: int) -> float:
    """Mean team return of the policy file's greedy agents (``evaluate_policy``: its run's own
    evaluation) over ``episodes`` episodes of CESMA's cooperative navigation, played at once on an
    env seeded ``seed`` (the same start states for every policy)."""
    env = make("jaxmpe:simple_spread", episodes, seed, **NAV3)
    mean_return, _ = evaluate_policy(load_policy(policy_file), env, episodes)
    env.close()
    return mean_return


def _uniform_return(episodes: int, seed: int) -> float:
    """Mean team return of uniformly random agents on the same episodes as :func:`_greedy_return`."""
    env = make("jaxmpe:simple_spread", episodes, seed, **NAV3)
    env.reset()
    generator = torch.Generator().manual_seed(seed)
    shape = (episodes, env.spec.n_agents)
    returns = sum(env.step(torch.randint(env.spec.n_actions, shape, generator=generator)).reward
                  for _ in range(env.spec.episode_limit))
    env.close()
    return float(returns.mean())


def test_cesmas_expert_beats_random_on_cooperative_navigation_and_dagger_decentralises_it(tmp_path):
    """Issue 15's learning test. The DDPG-GS centralised expert (``ddpg_central.yaml``: E.2's
    3-agent recipe, here at hidden 128, tau 5e-3 and one update per 2 env steps so that CPU minutes
    suffice) on 3-agent cooperative navigation with CESMA's reward, 3 seeds packed, 8000 env steps
    (4000 updates). On these 100 greedy evaluation episodes uniformly random agents score -51.4 and
    the three experts -44.1, -42.9 and -41.3 (7 to 10 above random), so each must beat random by 4
    and their mean by 5. DAgger's students of seed 0's expert (``dagger.yaml``, 2000 steps, one
    cross-entropy update each) then act alone on their own observations and must score within 3 of
    their expert on the same episodes (they scored -43.8 against its -44.1)."""
    episodes, seed = 100, 12345
    common = ["env.name=jaxmpe:simple_spread", *(f"env.options.{k}={str(v).lower()}" for k, v in NAV3.items()),
              "run.device=cpu", "run.progress=false", "tracking.uri="]
    experts = [PackMember(load_config(["config/algos/ddpg_central.yaml"], [
        *common, "agent.hidden_dim=128", "ddpg.polyak=0.005", "learner.updates_per_env_step=0.5",
        "learner.learning_starts=8", "run.t_max=8000", "run.eval_interval=8000", "run.eval_episodes=8",
        f"run.seed={s}"]), tmp_path / f"expert{s}") for s in range(3)]
    train_pack(experts)
    uniform = _uniform_return(episodes, seed)
    scores = []
    for s in range(3):
        export_policy(tmp_path / f"expert{s}", tmp_path / f"expert{s}.zip")
        scores.append(_greedy_return(tmp_path / f"expert{s}.zip", episodes, seed))
    assert min(scores) > uniform + 4 and np.mean(scores) > uniform + 5, (uniform, scores)

    students = load_config(["config/algos/dagger.yaml"], [
        *common, f"dagger.expert={tmp_path / 'expert0.zip'}", "run.t_max=2000", "run.eval_interval=2000",
        "run.eval_episodes=8", "run.seed=0"])
    train(students, tmp_path / "students")
    export_policy(tmp_path / "students", tmp_path / "students.zip")
    decentralised = _greedy_return(tmp_path / "students.zip", episodes, seed)
    assert decentralised > scores[0] - 3, (scores[0], decentralised, uniform)
