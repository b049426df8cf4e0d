"""The fused JAX rollout collects the same episodes as the stepwise Python loop; packed, each run's as alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
import torch

from marlrepro.config import AgentConfig, MixerConfig, load_config
from marlrepro.controller import (
    AgentController,
    DistributionalController,
    PerAgentPolicyController,
    SoftmaxPolicyController,
)
from marlrepro.core.stacked import StackedModules
from marlrepro.envs import make
from marlrepro.envs.jax_rollout import (
    JAX_TWINS,
    FusedRollout,
    agent_inputs,
    epsilon_greedy,
    iqn_agent_step,
    opt_logits,
    rnn_agent_step,
)
from marlrepro.envs.jax_smax import packed_widths
from marlrepro.errors import ConfigError
from marlrepro.nets.opt import OrderPreservingTransform
from marlrepro.runner import EpisodeRunner, RolloutStats

ENV = "smax:3m"


def _softmax_controller(spec, config: AgentConfig, source: str, non_negative: bool = True,
                        layers: int = 2) -> SoftmaxPolicyController:
    """ME-IGM's agents with a transformation far from its initialisation and a high temperature."""
    transform = OrderPreservingTransform(spec.n_agents, spec.state_dim, MixerConfig(), non_negative, layers)
    for p in transform.parameters():
        p.data.normal_(0, 0.5)
    return SoftmaxPolicyController(spec, config, transform, alpha_init=2.0, source=source)


def _per_agent_controller(spec, config: AgentConfig, source: str) -> PerAgentPolicyController:
    """HASAC's agents, each its own MLP, with weights far from their near-uniform initial head."""
    controller = PerAgentPolicyController(spec, config)
    for p in controller.agent.parameters():
        p.data.add_(torch.randn_like(p) * 0.5)
    return controller


def _collect(mode: str, epsilon: float, episode_limit: int = 40, source: str = "obs", avail: bool = False,
             controller_class=AgentController, explore: bool = True):
    env = make(ENV, 4, 0, "cpu", episode_limit=episode_limit, full_sight_obs=True)
    torch.manual_seed(1)
    holder = torch.nn.Module()  # a pack of one run whose learner is just this controller
    holder.controller = controller_class(env.spec, AgentConfig(obs_avail_actions=avail), source)
    runner = EpisodeRunner([env], StackedModules([holder]), "controller", mode)
    assert (runner._fused is not None) == (mode == "fused")
    episodes, stats = runner.run([epsilon], [True], [torch.Generator().manual_seed(0)], explore=explore)
    assert stats.returns.shape == stats.won.shape == stats.lengths.shape == (1, 4)
    return ({name: value[0].clone() for name, value in episodes.tensors().items()},
            RolloutStats(stats.returns[0], stats.won[0], stats.lengths[0]))


def _assert_equal_within_episodes(fused: dict, stepwise: dict, lengths: torch.Tensor) -> None:
    """Each field of ``fused`` equals ``stepwise``'s over each episode's span: its transitions, and
    its observations up to its final one. After an episode's end the stepwise runner's environment
    restarts while the fused one's steps on; both are masked (``filled`` is 0 there)."""
    for name, value in fused.items():
        per_observation = name in ("obs", "state", "avail_actions", "full_obs")
        steps = torch.arange(value.shape[1])[None]
        span = steps <= lengths.long()[:, None] - int(not per_observation)
        span = span.view(*span.shape, *[1] * (value.dim() - 2))
        assert torch.equal(value * span, stepwise[name][:, :value.shape[1]] * span), name


@pytest.mark.parametrize(("with_avail", "last_action", "agent_id"),
                         [(False, True, True), (True, True, True), (False, False, False)])  # last: MAPPO's actor
def test_jax_agent_matches_torch_agent(with_avail, last_action, agent_id):
    env = make(ENV, 1, 0, "cpu")
    spec = env.spec
    torch.manual_seed(1)
    controller = AgentController(spec, AgentConfig(obs_avail_actions=with_avail, obs_last_action=last_action,
                                                   obs_agent_id=agent_id))
    b, n = 5, spec.n_agents
    obs = torch.randn(b, n, spec.obs_dim)
    last = torch.randint(-1, spec.n_actions, (b, n))
    avail = torch.rand(b, n, spec.n_actions) < 0.6
    hidden = torch.randn(1, b * n, controller.config.hidden_dim)
    q_torch, h_torch = controller.step(obs, last, hidden, avail)

    params = {k: jnp.asarray(v.detach().numpy()) for k, v in controller.agent.named_parameters()}
    inputs = agent_inputs(jnp.asarray(obs.numpy()), jnp.asarray(last.numpy()), jnp.asarray(avail.numpy()),
                          spec.n_actions, last_action=last_action, agent_id=agent_id, avail_actions=with_avail)
    q_jax, h_jax = rnn_agent_step(params, inputs.reshape(b * n, -1), jnp.asarray(hidden[0].numpy()))
    assert torch.allclose(torch.tensor(jax.device_get(q_jax)).view(b, n, -1), q_torch, atol=1e-5)
    assert torch.allclose(torch.tensor(jax.device_get(h_jax)), h_torch[0], atol=1e-5)


@pytest.mark.parametrize("with_avail", [False, True])
def test_jax_iqn_agent_matches_torch_agent(with_avail):
    """DMIX's acting values: the mean of Z over fractions shared by each environment's agents, from
    the same agent input (with the available-actions mask: the authors' IQN controller)."""
    spec = make(ENV, 1, 0, "cpu").spec
    torch.manual_seed(2)
    controller = DistributionalController(spec, AgentConfig(obs_avail_actions=with_avail))
    b, n, k = 5, spec.n_agents, 8
    obs, last = torch.randn(b, n, spec.obs_dim), torch.randint(-1, spec.n_actions, (b, n))
    avail = torch.rand(b, n, spec.n_actions) < 0.6
    rows = controller.step_rows(obs, last, avail)
    hidden = torch.randn(1, b * n, controller.config.hidden_dim)
    taus = torch.rand(b, k)
    z_torch, h_torch = controller.agent.step(rows, hidden, taus)

    params = {name: jnp.asarray(v.detach().numpy()) for name, v in controller.agent.named_parameters()}
    inputs = agent_inputs(jnp.asarray(obs.numpy()), jnp.asarray(last.numpy()), jnp.asarray(avail.numpy()),
                          spec.n_actions, last_action=True, agent_id=True, avail_actions=with_avail)
    q_jax, h_jax = iqn_agent_step(params, inputs.reshape(b * n, -1), jnp.asarray(hidden[0].numpy()),
                                  jnp.asarray(taus.numpy()))
    assert torch.allclose(torch.tensor(jax.device_get(q_jax)), z_torch.mean(dim=-2), atol=1e-5)
    assert torch.allclose(torch.tensor(jax.device_get(h_jax)), h_torch[0], atol=1e-5)


def test_jax_epsilon_greedy_respects_mask():
    key = jax.random.key(0)
    q = jax.random.normal(key, (2000, 6))
    avail = jax.random.uniform(jax.random.key(1), (2000, 6)) < 0.5
    avail = avail.at[:, 2].set(True)  # at least one available action per row
    explored = epsilon_greedy(jax.random.key(2), q, avail, jnp.float32(1.0))
    assert bool(jnp.take_along_axis(avail, explored[:, None], axis=1).all())
    assert len(set(jax.device_get(explored).tolist())) == 6  # every action gets explored
    greedy = epsilon_greedy(jax.random.key(3), q, avail, jnp.float32(0.0))
    assert bool((greedy == jnp.argmax(jnp.where(avail, q, -jnp.inf), axis=1)).all())


@pytest.mark.parametrize(("source", "avail"), [("obs", False), ("obs", True), ("full_obs", False), ("state", True)])
def test_fused_greedy_rollout_equals_stepwise(source, avail):
    stepwise, step_stats = _collect("stepwise", 0.0, source=source, avail=avail)
    fused, fused_stats = _collect("fused", 0.0, source=source, avail=avail)
    assert fused.keys() == stepwise.keys() and "full_obs" in fused
    t = fused["actions"].shape[1]
    assert t == int(fused_stats.lengths.max())  # fused stops when the last episode ends
    _assert_equal_within_episodes(fused, stepwise, fused_stats.lengths)
    assert stepwise["filled"][:, t:].sum() == 0  # the stepwise loop's extra steps are masked
    for field in ("returns", "won", "lengths"):
        assert torch.equal(getattr(fused_stats, field), getattr(step_stats, field)), field


@pytest.mark.parametrize(("limit", "controller_class", "avail"),
                         [(5, AgentController, False), (40, AgentController, True),
                          (40, DistributionalController, False), (40, DistributionalController, True),
                          (40, _softmax_controller, True), (40, _per_agent_controller, True)])
def test_fused_exploring_rollout_is_consistent(limit, controller_class, avail):
    episodes, stats = _collect("fused", 0.7, episode_limit=limit, controller_class=controller_class, avail=avail)
    filled = episodes["filled"]
    assert torch.equal(stats.lengths, filled.sum(dim=1))
    assert torch.allclose(stats.returns, episodes["reward"].sum(dim=1))
    # an episode ends once, at its last filled step: by the battle (terminated) or by the limit
    # (truncated: not terminal, so that its return bootstraps from its final observation)
    by_battle = episodes["terminated"].sum(dim=1)
    assert ((by_battle == 1) | (stats.lengths == limit)).all() and (by_battle <= 1).all()
    if limit == 5:
        assert not by_battle.any(), "no battle of 3m ends in 5 steps: every episode is truncated"
    last = (stats.lengths - 1).long()
    assert torch.equal(episodes["terminated"].gather(1, last[:, None]).squeeze(1), by_battle)
    # filled steps are a prefix, and only available actions were taken on them
    assert torch.equal(filled, torch.sort(filled, dim=1, descending=True).values)
    chosen = episodes["avail_actions"][:, :-1].gather(-1, episodes["actions"][..., None]).squeeze(-1)
    assert bool(chosen[filled > 0].all())
    assert int(stats.lengths.max()) <= limit


@pytest.mark.parametrize("controller_class", [_softmax_controller, _per_agent_controller])
def test_fused_greedy_rollout_of_softmax_agents_equals_stepwise(controller_class):
    """Evaluation (``explore=False``) of ME-IGM's agents is greedy on the raw values in both
    runners; HASAC's per-agent policies on their logits."""
    stepwise, _ = _collect("stepwise", 0.0, avail=True, controller_class=controller_class, explore=False)
    fused, stats = _collect("fused", 0.0, avail=True, controller_class=controller_class, explore=False)
    _assert_equal_within_episodes({"actions": fused["actions"]}, stepwise, stats.lengths)


@pytest.mark.parametrize(("non_negative", "layers"), [(True, 2), (False, 2), (True, 1)])
def test_jax_opt_logits_match_the_torch_transform(non_negative, layers):
    spec = make(ENV, 1, 0, "cpu").spec
    torch.manual_seed(4)
    controller = _softmax_controller(spec, AgentConfig(), "obs", non_negative, layers)
    q = torch.randn(6, spec.n_agents, spec.n_actions) * 3
    state = torch.randn(6, spec.state_dim)
    expected = controller.outer(controller.inner(q, state), state)
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in controller.transform.named_parameters()}
    ours = opt_logits(params, jnp.asarray(q.numpy()), jnp.asarray(state.numpy()), non_negative)
    torch.testing.assert_close(torch.tensor(jax.device_get(ours)), expected, atol=1e-4, rtol=1e-5)


def test_fused_rollout_rejected_for_non_jax_backend():
    with pytest.raises(ConfigError, match="run.rollout"):
        load_config([], ["env.name=mpe:simple_spread", "run.rollout=fused"])


def test_every_controller_names_an_acting_step_of_the_fused_rollout_and_an_unknown_one_is_refused():
    """The fused rollout dispatches on the controller's ``jax_twin`` alone (it names no controller
    class): every controller class names one of :data:`JAX_TWINS`, and one that names none is
    refused when the rollout is built, before anything is traced."""
    import marlrepro.controller as controllers

    classes = [c for c in vars(controllers).values()
               if isinstance(c, type) and issubclass(c, AgentController)]
    assert len(classes) >= 8 and all(c.jax_twin in JAX_TWINS for c in classes), classes

    class Unknown(AgentController):
        jax_twin = "transformer"

    env = make(ENV, 2, 0, "cpu")
    with pytest.raises(ValueError, match=r"Unknown.jax_twin: 'transformer' .*one of rnn, joint_rnn"):
        FusedRollout([env], Unknown(env.spec, AgentConfig()))


def test_a_packed_fused_rollout_collects_each_runs_episodes_as_alone():
    """Two runs (own weights, environments and epsilon) in one fused call: each run's episodes are
    those it collects alone; an inactive run collects nothing and its key stream does not move."""
    def pack(seeds: list[int]) -> tuple[list, EpisodeRunner]:
        envs = [make(ENV, 4, seed, "cpu", episode_limit=30) for seed in seeds]
        holders = []
        for seed in seeds:
            torch.manual_seed(seed)
            holders.append(torch.nn.Module())
            holders[-1].controller = AgentController(envs[0].spec, AgentConfig())
        return envs, EpisodeRunner(envs, StackedModules(holders), "controller", "fused")

    generators = [torch.Generator(), torch.Generator()]
    envs, runner = pack([3, 4])
    key = jax.random.key_data(envs[1].key)
    idle, idle_stats = runner.run([0.5, 0.5], [True, False], generators)
    assert bool((jax.random.key_data(envs[1].key) == key).all())
    assert idle.filled[1].sum() == 0 and idle.actions[1].eq(0).all() and idle_stats.lengths[1].eq(0).all()
    both, stats = runner.run([0.5, 0.2], [True, True], generators)
    for r, (seed, epsilon) in enumerate([(3, 0.5), (4, 0.2)]):
        _, alone = pack([seed])
        if r == 0:  # run 0 already collected one batch: replay it alone first
            alone.run([0.5], [True], generators[:1])
        episodes, alone_stats = alone.run([epsilon], [True], generators[:1])
        t = episodes.actions.shape[2]
        for name, value in episodes.tensors().items():
            keep = t + 1 if name in ("obs", "state", "avail_actions", "full_obs") else t
            assert torch.equal(getattr(both, name)[r, :, :keep], value[0]), (r, name)
        assert both.filled[r, :, t:].sum() == 0  # the pack's longer episodes are padding here
        for field in ("returns", "won", "lengths"):
            assert torch.equal(getattr(stats, field)[r], getattr(alone_stats, field)[0]), (r, field)


def test_advancing_without_restarts_equals_stepping_until_an_episode_ends():
    """``advance_batch`` is ``step_batch`` without its restarts: from the same state and key it gives
    the same outputs and keys while no environment has ended, and after an environment's end it
    never raises its flags or pays it a reward again (the lock-step rollout masks it). Overcooked's
    is covered by its fused rollout, equal to the stepwise runner's (tests/test_overcooked.py)."""
    env = make(ENV, 6, 3, "cpu", episode_limit=12)
    spec = env.spec
    n_obs, n_state, n_avail = packed_widths(spec)[:3]
    stepped, key, first = env.reset_batch(jax.random.key(5))
    advanced, advanced_key = stepped, key
    step_batch, advance_batch = jax.jit(env.step_batch), jax.jit(env.advance_batch)
    ended = jnp.zeros(6, bool)
    for t in range(20):
        avail = first[:, n_obs + n_state:n_obs + n_state + n_avail].reshape(6, spec.n_agents, -1) > 0.5
        actions = epsilon_greedy(jax.random.key(100 + t), jnp.zeros(avail.shape), avail, jnp.float32(1.0))
        actions = actions.astype(jnp.int32)
        stepped, key, first = step_batch(stepped, key, actions)
        advanced, advanced_key, out = advance_batch(advanced, advanced_key, actions)
        assert bool((jax.random.key_data(key) == jax.random.key_data(advanced_key)).all())
        live = ~ended
        assert bool((out[live] == first[live]).all()), t
        assert not bool(out[ended][:, -4:].any()), t  # no reward and no flags after the end
        ended |= (out[:, -3] > 0.5) | (out[:, -2] > 0.5)
    assert bool(ended.all())  # every episode ended within 20 steps (limit 12)
