"""``K`` independent MLPs evaluated at once: HASAC's per-agent actors and its twin critics, the
DDPG family's actors and critics (learners/ddpg.py).

HARL's actors (``StochasticMlpPolicy``: ``MLPBase`` with ``use_feature_normalization``;
PKU-MARL/HARL) are ``LayerNorm(in) → [Linear → ReLU → LayerNorm]×L → Linear``, orthogonally
initialised (gain ``√2`` in the body, 0.01 for the head, biases 0); its Q critics
(``ContinuousQNet``: ``PlainMLP``) are ``[Linear → ReLU]×L → Linear`` with torch's default
initialisation. Here the ``K`` copies keep their weights in tensors with a leading copy axis
``[K, ...]`` and run as batched matmuls, so ``K`` heterogeneous agents cost one kernel per
layer, not a Python loop over agents.
"""

from __future__ import annotations

import torch
from torch import nn

# the gain of orthogonal initialisation after a ReLU (torch.nn.init.calculate_gain("relu"))
RELU_GAIN = 2 ** 0.5
HEAD_GAIN = 0.01  # HARL's model ``gain``: the policy head's initial logits are near uniform
LAYER_NORM_EPS = 1e-5


def _orthogonal(copies: int, fan_in: int, fan_out: int, gain: float) -> torch.Tensor:
    """``copies`` orthogonal matrices [K, in, out], each as ``nn.init.orthogonal_`` on a Linear."""
    weight = torch.empty(copies, fan_out, fan_in)
    for w in weight:  # initialisation only, once per network
        nn.init.orthogonal_(w, gain=gain)
    return weight.transpose(1, 2).contiguous()


def _torch_default(copies: int, fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear``'s default initialisation for ``copies`` layers: weights [K, in, out] and
    biases [K, out] uniform in ``±1/√in``."""
    bound = fan_in ** -0.5
    return (torch.empty(copies, fan_in, fan_out).uniform_(-bound, bound),
            torch.empty(copies, fan_out).uniform_(-bound, bound))


def _per_copy_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``y[..., k, :] = x[..., k, :] W_k + b_k``: ``x`` [..., K, in], ``weight`` [K, in, out],
    ``bias`` [K, out]; one batched matmul over the copies (faster than the equivalent einsum
    under a pack's vmap)."""
    copies, lead = x.shape[-2], x.shape[:-2]
    y = torch.matmul(x.movedim(-2, 0).reshape(copies, -1, x.shape[-1]), weight)
    return y.reshape(copies, *lead, -1).movedim(0, -2) + bias


class StackedMLP(nn.Module):
    """``K`` MLPs ``in → hidden^L → out`` with their own weights; input ``[..., K, in]`` →
    ``[..., K, out]``, row ``k`` through copy ``k``. With ``layer_norm`` (HARL's actors), every
    layer's input is layer-normalised per copy (the feature normalisation of the input, then a
    LayerNorm after each hidden ReLU; ``norms.i`` [K, 2, width] holds each copy's scale and shift)
    and the weights are orthogonal; without (its critics), a plain MLP with torch's default
    initialisation."""

    def __init__(self, copies: int, input_dim: int, hidden_dim: int, output_dim: int, layers: int = 2,
                 layer_norm: bool = True) -> None:
        super().__init__()
        self.copies = copies
        widths = [input_dim] + [hidden_dim] * layers
        self.norms = nn.ParameterList()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (fan_in, fan_out) in enumerate(zip(widths, [*widths[1:], output_dim])):
            if layer_norm:
                scale_shift = torch.stack([torch.ones(copies, fan_in), torch.zeros(copies, fan_in)], 1)
                self.norms.append(nn.Parameter(scale_shift))
                weight = _orthogonal(copies, fan_in, fan_out, HEAD_GAIN if i == layers else RELU_GAIN)
                bias = torch.zeros(copies, fan_out)
            else:
                weight, bias = _torch_default(copies, fan_in, fan_out)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [..., K, in] -> [..., K, out]."""
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if i > 0:
                x = torch.relu(x)
            if self.norms:
                norm = self.norms[i]
                x = nn.functional.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS) * norm[:, 0] + norm[:, 1]
            x = _per_copy_linear(x, weight, bias)
        return x


class PerAgentPolicy(nn.Module):
    """Each agent's own policy network (:class:`StackedMLP`, one copy per agent), or with
    ``joint`` one network on the agents' concatenated inputs whose output is every agent's logits
    (CESMA's centralised DDPG expert: one actor on the joint observation, a head per agent),
    behind the recurrent agent's interface (:class:`~marlrepro.nets.agent.RNNAgent`), so the
    controller and the runners drive it alike: rows are ordered (environment, agent) and the
    hidden state passes through unchanged (the network has none). ``layer_norm``: HARL's actor
    (see :class:`StackedMLP`); without it a plain ReLU MLP (MADDPG's)."""

    def __init__(self, n_agents: int, input_dim: int, hidden_dim: int, n_actions: int, layer_norm: bool = True,
                 joint: bool = False) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.joint = joint
        copies, fan_in, fan_out = (1, n_agents * input_dim, n_agents * n_actions) if joint else \
            (n_agents, input_dim, n_actions)
        self.mlp = StackedMLP(copies, fan_in, hidden_dim, fan_out, layer_norm=layer_norm)

    def initial_hidden(self, batch: int, device: torch.device) -> torch.Tensor:
        """A placeholder [1, batch, 1]: the runners carry it, nothing reads it."""
        return torch.zeros(1, batch, 1, device=device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The agents' inputs ``x`` [..., N, in] -> their logits [..., N, A]."""
        if not self.joint:
            return self.mlp(x)
        return self.mlp(x.flatten(-2).unsqueeze(-2)).view(*x.shape[:-1], -1)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` [B·N, T, in] -> (logits [B·N, T, A], ``hidden``)."""
        rows, t = inputs.shape[:2]
        x = inputs.view(rows // self.n_agents, self.n_agents, t, -1).transpose(1, 2)  # [B, T, N, in]
        return self.logits(x).transpose(1, 2).reshape(rows, t, -1), hidden

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` [B·N, in] -> (logits [B·N, A], ``hidden``)."""
        return self.logits(inputs.view(-1, self.n_agents, inputs.shape[-1])).reshape(inputs.shape[0], -1), hidden


class FactoredPolicy(PerAgentPolicy):
    """A :class:`PerAgentPolicy` of agents whose discrete action is a (move, word) pair (CESMA's
    communicating agents, §4.4: ``π_i(o_i, c_i) = (a_i, b_i)``): agent ``k``'s network outputs
    ``M`` move logits, then ``W`` word logits (its :meth:`heads`: the action head and the
    communication head on one body), and its logits over the env's joint actions are
    ``heads @ joint_map[k]``, the sum of the action's move logit and word logit, so the softmax
    over them is the product of the two heads' softmaxes and its argmax the pair of their argmaxes.
    ``joint_map`` [N, M + W, A] is a frozen parameter (0/1, never trained), so the fused rollout's
    twin (:func:`marlrepro.envs.jax_rollout.per_agent_policy_step`) receives it with the weights."""

    def __init__(self, n_agents: int, input_dim: int, hidden_dim: int, joint_map: torch.Tensor,
                 layer_norm: bool = True) -> None:
        super().__init__(n_agents, input_dim, hidden_dim, joint_map.shape[1], layer_norm=layer_norm)
        self.joint_map = nn.Parameter(joint_map.clone(), requires_grad=False)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """The agents' inputs ``x`` [..., N, in] -> their move then word logits [..., N, M + W]."""
        return super().logits(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The agents' inputs ``x`` [..., N, in] -> their joint-action logits [..., N, A]."""
        return torch.einsum("...ko,koa->...ka", self.heads(x), self.joint_map)
