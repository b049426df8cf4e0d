"""Fused rollouts on JAX environments: one compiled call collects a whole batch of episodes.

Stepping a JAX environment from a Python loop costs, per step, one JAX dispatch, two DLPack
hand-overs and a few dozen small torch launches; at 8 parallel environments that fixed cost, not
the GPU, bounds throughput (BENCHMARKS.md). Here the acting side of pymarl's controller (the
shared GRU agent and epsilon-greedy selection) is written once more in JAX, reading the torch
agent's weights through DLPack without a copy, and the lock-step episode batch of
:class:`~marlrepro.runner.EpisodeRunner` runs inside one ``lax.while_loop`` on the device where
the environment lives. Learning stays in torch; the two agent implementations are tested to
agree (``tests/test_jax_rollout.py``). DMIX's implicit-quantile agent has a twin too: it acts on
the mean over ``N̂`` quantile fractions drawn per environment, as its torch controller does; so do
ME-IGM's softmax agents: while exploring they sample ``softmax(f(g(Q; s); s) / α)`` with the state
of each step (:func:`opt_logits`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import torch

from marlrepro.buffer import Episodes
from marlrepro.controller import AgentController
from marlrepro.envs.jax_smax import SMAXBatch, packed_widths, unpack_outputs
from marlrepro.learners.max_entropy import ALPHA_FLOOR
from marlrepro.nets.stacked_mlp import LAYER_NORM_EPS

# acting in full float32 matmuls, as the torch agent on CPU (the update may use TF32 on CUDA,
# run.matmul_precision; acting needs no speed from it)
_HIGHEST = jax.lax.Precision.HIGHEST


def _linear(x: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
    """``x W^T + b``, torch's ``nn.Linear`` convention."""
    return jnp.dot(x, weight.T, precision=_HIGHEST) + bias


def gru_cell(x: jax.Array, h: jax.Array, params: dict[str, jax.Array]) -> jax.Array:
    """One GRU step with torch's gate layout and equations (Cho et al. 2014):

    ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``, ``z = σ(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, ``h' = (1 − z) ⊙ n + z ⊙ h``.
    """
    gi = _linear(x, params["rnn.weight_ih_l0"], params["rnn.bias_ih_l0"])
    gh = _linear(h, params["rnn.weight_hh_l0"], params["rnn.bias_hh_l0"])
    i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(i_r + h_r)
    z = jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


def rnn_agent_step(
    params: dict[str, jax.Array], inputs: jax.Array, h: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:meth:`marlrepro.nets.agent.RNNAgent.step` in JAX: Linear → ReLU → GRU cell → Linear."""
    x = jax.nn.relu(_linear(inputs, params["fc1.weight"], params["fc1.bias"]))
    h = gru_cell(x, h, params)
    return _linear(h, params["fc2.weight"], params["fc2.bias"]), h


def iqn_agent_step(
    params: dict[str, jax.Array], inputs: jax.Array, h: jax.Array, taus: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:meth:`marlrepro.nets.iqn_agent.IQNRNNAgent.expected_step` in JAX: the GRU body, then
    ``Q_i(u) = (1/N̂) Σ_k fc2(h_i ⊙ φ(τ_k))_u`` with ``φ(τ) = ReLU(W [cos(π j τ)]_j + b)``.

    ``inputs`` [M, in], ``h`` [M, H], ``taus`` [G, N̂] shared by ``G`` groups of ``M / G``
    consecutive rows (one group per environment) -> (Q [M, A], h).
    """
    x = jax.nn.relu(_linear(inputs, params["fc1.weight"], params["fc1.bias"]))
    h = gru_cell(x, h, params)
    freqs = jnp.pi * jnp.arange(params["phi.weight"].shape[1], dtype=h.dtype)
    phi = jax.nn.relu(_linear(jnp.cos(taus[..., None] * freqs), params["phi.weight"], params["phi.bias"]))
    g, m = taus.shape[0], h.shape[0]
    grouped = h.reshape(g, m // g, 1, -1) * phi[:, None]  # [G, R, N̂, H]
    z = _linear(grouped, params["fc2.weight"], params["fc2.bias"])  # [G, R, N̂, A]
    return z.mean(axis=-2).reshape(m, -1), h


def per_agent_policy_step(params: dict[str, jax.Array], inputs: jax.Array) -> jax.Array:
    """:class:`marlrepro.nets.stacked_mlp.PerAgentPolicy` in JAX: agent ``k``'s own MLP,
    ``[LayerNorm →] Linear → [ReLU → [LayerNorm →] Linear]×L`` (the LayerNorms where the weights
    hold them: HARL's actors; none for the DDPG family's), on its row; ``inputs`` [B, N, in]
    -> logits [B, N, A]. A network of one copy with ``N > 1`` agents is a joint policy: it reads
    the agents' inputs concatenated and its output is every agent's logits. Where the weights hold a
    ``joint_map`` (:class:`~marlrepro.nets.stacked_mlp.FactoredPolicy`), the MLP's move and word
    logits are mapped to the joint actions' logits."""
    b, n = inputs.shape[:2]
    joint = params["mlp.weights.0"].shape[0] == 1 and n > 1  # static: a shape
    x = inputs.reshape(b, 1, -1) if joint else inputs
    layers = sum(name.startswith("mlp.weights.") for name in params)
    for i in range(layers):
        if i > 0:
            x = jax.nn.relu(x)
        if f"mlp.norms.{i}" in params:
            mean = x.mean(axis=-1, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
            norm = params[f"mlp.norms.{i}"]
            x = (x - mean) / jnp.sqrt(var + LAYER_NORM_EPS) * norm[:, 0] + norm[:, 1]
        x = jnp.einsum("bki,kio->bko", x, params[f"mlp.weights.{i}"], precision=_HIGHEST) + params[f"mlp.biases.{i}"]
    if "joint_map" in params:  # FactoredPolicy: move and word logits summed into the joint actions'
        x = jnp.einsum("bko,koa->bka", x, params["joint_map"], precision=_HIGHEST)
    return x.reshape(b, n, -1)


def agent_inputs(
    obs: jax.Array, last_actions: jax.Array, avail: jax.Array, n_actions: int, *,
    last_action: bool, agent_id: bool, avail_actions: bool,
) -> jax.Array:
    """:meth:`AgentController.build_inputs` for one step: ``[x_i, onehot(u_i^{t-1}), avail_i, onehot(i)]``.

    ``obs`` [B, N, dim], ``last_actions`` [B, N] (-1 = none; its one-hot is all zeros), ``avail``
    [B, N, A] bool (an input only with ``avail_actions``).
    """
    b, n = obs.shape[:2]
    parts = [obs]
    if last_action:
        parts.append(jax.nn.one_hot(last_actions, n_actions, dtype=obs.dtype))  # -1 -> zeros
    if avail_actions:
        parts.append(avail.astype(obs.dtype))
    if agent_id:
        parts.append(jnp.broadcast_to(jnp.eye(n, dtype=obs.dtype), (b, n, n)))
    return jnp.concatenate(parts, axis=-1)


def masked_greedy(q: jax.Array, avail: jax.Array) -> jax.Array:
    """:func:`marlrepro.exploration.masked_greedy` in JAX: the greedy available action."""
    return jnp.argmax(jnp.where(avail, q, -jnp.inf), axis=-1)


def epsilon_mix(key: jax.Array, actions: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """:func:`marlrepro.exploration.epsilon_mix` in JAX: each of ``actions`` replaced, with
    probability ``epsilon``, by a uniform available action (``avail`` [..., A]); the ε-greedy of
    greedy ``actions``."""
    score_key, explore_key = jax.random.split(key)
    scores = jnp.where(avail, jax.random.uniform(score_key, avail.shape), -1.0)
    explore = jax.random.uniform(explore_key, actions.shape) < epsilon
    return jnp.where(explore, jnp.argmax(scores, axis=-1), actions)


def epsilon_greedy(key: jax.Array, q: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """:func:`marlrepro.exploration.epsilon_greedy` in JAX: with probability ``epsilon`` a uniform
    available action, else the greedy available one. ``q``, ``avail`` [..., A]."""
    return epsilon_mix(key, masked_greedy(q, avail), avail, epsilon)


def _hypernet(params: dict[str, jax.Array], prefix: str, x: jax.Array) -> jax.Array:
    """:func:`marlrepro.nets.mixers._hypernet` in JAX: linear layers (``prefix.weight`` for one,
    ``prefix.0``, ``prefix.2``, … for a stack) with ReLU between them."""
    if f"{prefix}.weight" in params:
        return _linear(x, params[f"{prefix}.weight"], params[f"{prefix}.bias"])
    index = 0
    while f"{prefix}.{index}.weight" in params:
        x = _linear(jax.nn.relu(x) if index else x, params[f"{prefix}.{index}.weight"], params[f"{prefix}.{index}.bias"])
        index += 2
    return x


def opt_logits(params: dict[str, jax.Array], q: jax.Array, state: jax.Array, non_negative: bool) -> jax.Array:
    """:class:`marlrepro.nets.opt.OrderPreservingTransform` in JAX, ``f_i(g_i(q; s); s)``:
    ``q`` [B, N, A], ``state`` [B, S] -> [B, N, A]; ``params`` hold the transform's weights
    (``hyper_w1.…``); ``non_negative`` applies ``abs`` to the weights (False: the MLP ablation)."""
    b, n = q.shape[:2]
    weight = jnp.abs if non_negative else (lambda w: w)
    w1 = weight(_hypernet(params, "hyper_w1", state)).reshape(b, n, -1, 1)
    b1 = _hypernet(params, "hyper_b1", state).reshape(b, n, -1, 1)
    w2 = weight(_hypernet(params, "hyper_w2", state)).reshape(b, n, -1, 1)
    b2 = _hypernet(params, "hyper_b2", state).reshape(b, n, 1)
    inner = q + b2 + (w2 * jax.nn.elu(w1 * q[:, :, None, :] + b1)).sum(axis=-2)
    w5 = weight(_hypernet(params, "hyper_w5", state))[..., None]
    return w5 * inner + _hypernet(params, "hyper_b5", state)[..., None]


def softmax_sample(key: jax.Array, logits: jax.Array, avail: jax.Array, alpha: jax.Array) -> jax.Array:
    """A sample of ``softmax(logits / α)`` over the available actions (``logits``, ``avail`` [..., A])."""
    return jax.random.categorical(key, jnp.where(avail, logits / alpha, -1e9), axis=-1)


class _Carry(NamedTuple):
    """Loop state of the fused rollout; ``outputs`` [T+1, B, F] holds every step's packed outputs."""

    t: jax.Array
    env_state: Any
    env_key: jax.Array
    policy_key: jax.Array
    hidden: jax.Array  # [B·N, H] ([B, H]: a joint recurrent network)
    last_actions: jax.Array  # [B, N] int32, -1 before the first action
    active: jax.Array  # [B] bool: this environment's first episode is still running
    outputs: jax.Array
    actions: jax.Array  # [T, B, N] int32
    filled: jax.Array  # [T, B] float32


def _advance(c: _Carry, policy_key: jax.Array, hidden: jax.Array, actions: jax.Array, env_state: Any,
             env_key: jax.Array, packed: jax.Array) -> _Carry:
    """The carry after step ``c.t``: its actions taken and the environment's outputs stored."""
    ended = (packed[:, -3] > 0.5) | (packed[:, -2] > 0.5)  # terminated | truncated
    return _Carry(
        t=c.t + 1, env_state=env_state, env_key=env_key, policy_key=policy_key,
        hidden=hidden, last_actions=actions, active=c.active & ~ended,
        outputs=c.outputs.at[c.t + 1].set(packed),
        actions=c.actions.at[c.t].set(actions),
        filled=c.filled.at[c.t].set(c.active.astype(jnp.float32)),
    )


def joint_action_step(params: dict[str, jax.Array], inputs: jax.Array, avail: jax.Array, table: jax.Array,
                      epsilon: jax.Array, act_key: jax.Array, pick_key: jax.Array) -> jax.Array:
    """:class:`~marlrepro.controller.JointActionController`'s acting step in JAX: its MLP
    (``params`` ``weights.i``, ``biases.i``) on the joint inputs [B, 1, N·in] gives a value per
    joint action of ``table`` [K, N]; with probability ``epsilon`` a uniformly random available
    joint action, else the greedy available one; returns the agents' actions [B, N]."""
    q = per_agent_policy_step({f"mlp.{name}": p for name, p in params.items()}, inputs)[:, 0]  # [B, K]
    joint_avail = avail[:, jnp.arange(table.shape[1])[None, :], table].all(axis=-1)  # [B, K]
    chosen = masked_greedy(q, joint_avail)
    scores = jnp.where(joint_avail, jax.random.uniform(pick_key, joint_avail.shape), -1.0)
    at_random = jax.random.uniform(act_key, chosen.shape) < epsilon
    return table[jnp.where(at_random, scores.argmax(axis=-1), chosen)]


def _select_key(keep_new: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """``new`` where ``keep_new`` else ``old``, for typed PRNG keys."""
    data = jnp.where(keep_new, jax.random.key_data(new), jax.random.key_data(old))
    return jax.random.wrap_key_data(data)


_PROGRAMS: dict[tuple, Callable] = {}

#: the acting steps a controller's ``jax_twin`` names (:class:`~marlrepro.controller.AgentController`):
#: :func:`rnn_agent_step` per agent ("rnn") or on the joint inputs ("joint_rnn"), :func:`iqn_agent_step`,
#: :func:`per_agent_policy_step` ("policy_mlp") and :func:`joint_action_step` ("joint_actions")
JAX_TWINS = ("rnn", "joint_rnn", "iqn", "policy_mlp", "joint_actions")


def _shared_program(rollout: FusedRollout) -> Callable:
    """The jitted rollout of ``rollout``, shared with every earlier rollout of the process that
    traces to the same program: the same env (:func:`marlrepro.envs.make`'s ``program_key``: name,
    options, device), width and controller (class, input source and agent config). JAX caches a
    compiled program per function object, so without this each trainer of a process (the runs
    of a test, an evaluation width, a resumed run) traced and compiled its own copy; the weights,
    keys and epsilons are arguments, so sharing changes no number."""
    env, controller = rollout.env, rollout.controller
    transform = getattr(controller, "transform", None)
    table = getattr(controller, "joint_actions", None)  # a joint-action DQN's table is traced in
    key = (getattr(env, "program_key", None), env.num_envs, type(controller), controller.source,
           repr(controller.config), getattr(transform, "non_negative", None),
           None if table is None else tuple(table.flatten().tolist()))
    if key[0] is None:  # an env built outside the registry: nothing to say it is the same
        return jax.jit(jax.vmap(rollout._collect))
    if key not in _PROGRAMS:
        _PROGRAMS[key] = jax.jit(jax.vmap(rollout._collect))
    return _PROGRAMS[key]


class FusedRollout:
    """Collects one episode per environment for every run of a pack, in one JAX call.

    Same semantics as the stepwise :class:`~marlrepro.runner.EpisodeRunner`: every environment is
    reset, all run in lock-step, a finished environment steps on masked out (without restarting:
    ``advance_batch``), and a run's loop stops when all its environments have finished or at the
    episode limit. With ``num_envs``, each run steps that many environments instead of its own
    batch's (wider evaluation batches; the pure functions read the width from ``num_envs``
    alone), drawing from the same key stream. The
    ``R`` runs are a ``vmap`` of the one-run rollout over their stacked agent weights, their
    environment keys and their epsilons; a run that is not ``active`` collects nothing and keeps
    its key, so a run's episodes never depend on the other runs of its pack. Exploration
    randomness comes from each run's environment key stream (a ``fold_in`` of it), so the key
    that a checkpoint saves (:meth:`SMAXBatch.rng_state`) carries the exploration's random state too.
    """

    def __init__(self, envs: list[SMAXBatch], controller: AgentController, num_envs: int | None = None) -> None:
        self.envs = envs  # each run's key stream
        self.env = envs[0]  # the pure step/reset functions; every run's env has the same config
        if num_envs is not None and num_envs != self.env.num_envs:
            self.env = copy.copy(self.env)
            self.env.num_envs = num_envs
        if controller.jax_twin not in JAX_TWINS:
            raise ValueError(f"{type(controller).__name__}.jax_twin: {controller.jax_twin!r} is no acting step of "
                             f"the fused rollout (one of {', '.join(JAX_TWINS)})")
        self.controller = controller
        self._rollout = _shared_program(self)

    def _collect(
        self, params: dict[str, jax.Array], key: jax.Array, epsilon: jax.Array, run_active: jax.Array,
        explore: jax.Array,
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
        """The traced rollout of one run: returns (next env key, steps, outputs, actions, filled).
        ``params``: the controller's weights (``agent.…``; softmax agents also ``transform.…`` and
        ``log_alpha``)."""
        env, spec, cfg = self.env, self.env.spec, self.controller.config
        b, n, limit = env.num_envs, spec.n_agents, spec.episode_limit
        n_obs, n_state, n_avail = packed_widths(spec)[:3]
        avail_from = n_obs + n_state
        source = {  # the controller's input columns: (first column, width per agent)
            "obs": (0, spec.obs_dim), "full_obs": (avail_from + n_avail, spec.full_obs_dim),
            "state": (n_obs, None),
        }[self.controller.source]
        twin = self.controller.jax_twin
        rows = b if twin == "joint_rnn" else b * n  # the memory's rows: one per environment, or per agent
        softmax = self.controller.samples_policy
        if twin == "joint_actions":  # a joint-action DQN's table [K, N] (static)
            table = jnp.asarray(self.controller.joint_actions.cpu().numpy(), dtype=jnp.int32)
        agent = {name[len("agent."):]: p for name, p in params.items() if name.startswith("agent.")}
        transform = {name[len("transform."):]: p for name, p in params.items() if name.startswith("transform.")}
        policy_key = jax.random.fold_in(key, 1)
        env_state, next_key, first = env.reset_batch(key)
        outputs = jnp.zeros((limit + 1, *first.shape), first.dtype).at[0].set(first)

        def observe(packed: jax.Array) -> jax.Array:
            start, width = source
            if width is None:  # the global state, seen by every agent
                return jnp.broadcast_to(packed[:, None, n_obs:n_obs + n_state], (b, n, n_state))
            return packed[:, start:start + n * width].reshape(b, n, width)

        def body(c: _Carry) -> _Carry:
            packed = c.outputs[c.t]
            avail = packed[:, avail_from:avail_from + n_avail].reshape(b, n, spec.n_actions) > 0.5
            inputs = agent_inputs(observe(packed), c.last_actions, avail, spec.n_actions,
                                  last_action=cfg.obs_last_action, agent_id=cfg.obs_agent_id,
                                  avail_actions=cfg.obs_avail_actions)
            # extra_key draws DMIX's quantile fractions, or a softmax agent's policy sample
            policy_key, act_key, extra_key = jax.random.split(c.policy_key, 3)
            if twin == "joint_actions":  # ε-greedy over the available joint actions
                actions = joint_action_step(agent, inputs.reshape(b, 1, -1), avail, table, epsilon, act_key, extra_key)
                env_state, env_key, packed = env.advance_batch(c.env_state, c.env_key, actions)
                return _advance(c, policy_key, c.hidden, actions, env_state, env_key, packed)
            if twin == "policy_mlp":  # no recurrence: the carried hidden state passes through
                q, hidden = per_agent_policy_step(agent, inputs), c.hidden
            elif twin == "iqn":
                taus = jax.random.uniform(extra_key, (b, cfg.n_greedy_quantiles), first.dtype)
                q, hidden = iqn_agent_step(agent, inputs.reshape(b * n, -1), c.hidden, taus)
            else:  # "rnn", "joint_rnn"
                q, hidden = rnn_agent_step(agent, inputs.reshape(rows, -1), c.hidden)
            q = q.reshape(b, n, -1)
            actions = masked_greedy(q, avail)
            if softmax:  # exploring: sample the policy; evaluating (explore false): greedy
                logits = q if not transform else opt_logits(
                    transform, q, packed[:, n_obs:n_obs + n_state], self.controller.transform.non_negative)
                alpha = jnp.maximum(jnp.exp(params["log_alpha"]), ALPHA_FLOOR)
                actions = jnp.where(explore, softmax_sample(extra_key, logits, avail, alpha), actions)
            actions = epsilon_mix(act_key, actions, avail, epsilon).astype(jnp.int32)
            env_state, env_key, packed = env.advance_batch(c.env_state, c.env_key, actions)
            return _advance(c, policy_key, hidden, actions, env_state, env_key, packed)

        start = _Carry(
            t=jnp.int32(0), env_state=env_state, env_key=next_key, policy_key=policy_key,
            hidden=jnp.zeros((rows, cfg.hidden_dim), first.dtype),
            last_actions=jnp.full((b, n), -1, jnp.int32), active=jnp.full(b, run_active),
            outputs=outputs, actions=jnp.zeros((limit, b, n), jnp.int32),
            filled=jnp.zeros((limit, b), jnp.float32),
        )
        end = jax.lax.while_loop(lambda c: (c.t < limit) & c.active.any(), body, start)
        return _select_key(run_active, end.env_key, key), end.t, end.outputs, end.actions, end.filled

    @torch.no_grad()
    def __call__(
        self, weights: dict[str, torch.Tensor], epsilons: list[float], active: list[bool], explore: bool = True,
    ) -> tuple[Episodes, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batch of episodes for each run, from the controller's stacked ``weights`` [R, ...]
        (ε-greedy with ``epsilons``; softmax agents sample their policy while ``explore``):
        (episodes [R, B, ...], returns [R, B], won [R, B], lengths [R, B]) on the env's device,
        trimmed to the longest episode of the pack. Inactive runs' rows are empty."""
        params = {name: jax.dlpack.from_dlpack(p.detach()) for name, p in weights.items()}
        keys = jnp.stack([env.key for env in self.envs])
        keys, steps, outputs, actions, filled = self._rollout(
            params, keys, jnp.asarray(epsilons, jnp.float32), jnp.asarray(active),
            jnp.full(len(self.envs), explore))
        for r, env in enumerate(self.envs):
            env.key = keys[r]
        t = int(steps.max())  # one host synchronisation per rollout
        spec = self.env.spec
        flat = torch.from_dlpack(outputs)[:, : t + 1].transpose(1, 2)  # [R, B, t+1, F]
        runs, b = flat.shape[:2]
        batch = unpack_outputs(flat.reshape(runs * b, t + 1, -1), spec)
        filled_t = torch.from_dlpack(filled)[:, :t].transpose(1, 2).reshape(runs * b, t)
        reward = batch.reward[:, 1:] * filled_t
        episodes = Episodes(
            obs=batch.obs, state=batch.state, avail_actions=batch.avail_actions,
            actions=torch.from_dlpack(actions)[:, :t].transpose(1, 2).reshape(runs * b, t, -1).long(),
            reward=reward, terminated=batch.terminated[:, 1:].float() * filled_t, filled=filled_t, full_obs=batch.full_obs,
        )
        won = (batch.won[:, 1:] & (filled_t > 0)).any(dim=1)
        per_run = Episodes(**{name: v.view(runs, b, *v.shape[1:]) for name, v in episodes.tensors().items()})
        return (per_run, reward.sum(dim=1).view(runs, b), won.view(runs, b),
                filled_t.sum(dim=1).view(runs, b))
