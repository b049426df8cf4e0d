"""Defining properties of QPLEX's mixer, DMIX (IQN agent, mean-shape mixer) and the quantile Huber loss."""

from __future__ import annotations

import pytest
import torch

from marlrepro.config import MixerConfig
from marlrepro.envs.matrix import PAYOFFS
from marlrepro.learners.quantile import quantile_huber_loss
from marlrepro.nets.dmix import DMixer
from marlrepro.nets.iqn_agent import IQNRNNAgent
from marlrepro.nets.mixers import QMixer
from marlrepro.nets.qplex import QPLEXMixer

N_AGENTS, N_ACTIONS, STATE_DIM = 3, 4, 5


def _scramble(module: torch.nn.Module, std: float) -> None:
    """Far-from-init weights, like a trained network's."""
    for p in module.parameters():
        p.data.normal_(0, std)


def _random_games(cases: int, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-agent Q-vectors [C, N, A], availability [C, N, A] (each agent has one), states [C, S]."""
    q = torch.randn(cases, N_AGENTS, N_ACTIONS) * scale
    avail = torch.rand(cases, N_AGENTS, N_ACTIONS) < 0.6
    avail.scatter_(-1, torch.randint(0, N_ACTIONS, (cases, N_AGENTS, 1)), True)
    return q, avail, torch.randn(cases, STATE_DIM) * scale


def _all_joint_actions(
    mixer: QPLEXMixer, q: torch.Tensor, avail: torch.Tensor, states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``Q_tot`` of every joint action [C, J], which joint actions are available [C, J], and the
    index of the agents' greedy available joint action [C]."""
    cases = q.shape[0]
    joint = torch.cartesian_prod(*[torch.arange(N_ACTIONS)] * N_AGENTS)  # [J, N]
    actions = joint.expand(cases, -1, -1)  # [C, J, N]
    chosen = q.gather(-1, actions.transpose(1, 2)).transpose(1, 2)  # [C, J, N]
    masked = q.masked_fill(~avail, float("-inf"))
    max_q = masked.max(-1).values.unsqueeze(1).expand_as(chosen)
    s = states.unsqueeze(1).expand(-1, len(joint), -1)
    q_tot = mixer(chosen, s, actions, max_q).squeeze(-1)
    joint_avail = avail.gather(-1, actions.transpose(1, 2)).all(1)  # [C, J]
    greedy = (joint == masked.argmax(-1).unsqueeze(1)).all(-1).float().argmax(-1)  # [C]
    return q_tot, joint_avail, greedy


def _igm_gap(mixer: QPLEXMixer, q: torch.Tensor, avail: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """``max_u Q_tot(u) − Q_tot(greedy)`` over available joint actions, per game: > 0 breaks IGM."""
    q_tot, joint_avail, greedy = _all_joint_actions(mixer, q, avail, states)
    best = q_tot.masked_fill(~joint_avail, float("-inf")).max(-1).values
    return best - q_tot.gather(-1, greedy.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize(("minus_one", "weighted_head"), [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize(("seed", "layers", "kernels"), [(0, 2, 4), (1, 2, 4), (2, 1, 4), (0, 3, 10), (1, 3, 10)])
def test_qplex_greedy_available_actions_maximise_q_tot(seed, layers, kernels, minus_one, weighted_head):
    """IGM: each agent's greedy AVAILABLE action forms the argmax of Q_tot over all available joint
    actions, for the initial weights and for far-from-init ones; with pymarl2's attention (2 layers,
    4 heads), a 1-layer one, and the IGM-DA authors' (3 layers, 10 heads)."""
    torch.manual_seed(seed)
    mixer = QPLEXMixer(
        N_AGENTS, N_ACTIONS, STATE_DIM, MixerConfig(), minus_one=minus_one, weighted_head=weighted_head,
        adv_hypernet_layers=layers, num_kernel=kernels,
    )
    assert len(mixer.keys) == kernels
    assert sum(isinstance(m, torch.nn.Linear) for m in mixer.action_heads[0].modules()) == layers
    with torch.no_grad():
        for std in (None, 0.3, 1.0):
            if std is not None:
                _scramble(mixer, std)
            q, avail, states = _random_games(64, scale=3.0)
            q_tot, joint_avail, greedy = _all_joint_actions(mixer, q, avail, states)
            assert joint_avail.gather(-1, greedy.unsqueeze(-1)).all()
            gap = _igm_gap(mixer, q, avail, states)
            tol = 1e-5 * (1 + q_tot.abs().amax(-1))
            assert (gap <= tol).all(), gap.max()


def test_igm_check_catches_negative_lambdas():
    """The IGM check above fails for a mixer whose weights λ may be negative."""
    torch.manual_seed(3)
    mixer = QPLEXMixer(N_AGENTS, N_ACTIONS, STATE_DIM, MixerConfig())
    _scramble(mixer, 1.0)
    positive = mixer.lambdas
    mixer.lambdas = lambda s, a: 1.0 - 2.0 * positive(s, a)
    with torch.no_grad():
        assert (_igm_gap(mixer, *_random_games(64, scale=3.0)) > 1e-3).any()


@pytest.mark.parametrize("minus_one", [True, False])
def test_qplex_lambdas_positive_and_greedy_q_tot_is_sum_of_values(minus_one):
    """λ > 0, and Q_tot = Σ V'_i + Σ λ_i A'_i: equal to Σ V'_i at the greedy joint action."""
    torch.manual_seed(4)
    mixer = QPLEXMixer(N_AGENTS, N_ACTIONS, STATE_DIM, MixerConfig(), minus_one=minus_one)
    _scramble(mixer, 1.0)
    b, t = 8, 6
    states = torch.randn(b, t, STATE_DIM) * 3
    q = torch.randn(b, t, N_AGENTS, N_ACTIONS) * 3
    greedy = q.argmax(-1)
    max_q = q.max(-1).values
    with torch.no_grad():
        lam = mixer.lambdas(states, torch.randint(0, N_ACTIONS, (b, t, N_AGENTS)))
        assert (lam > 0).all()
        values = mixer.transform(max_q, states).sum(-1, keepdim=True)
        assert torch.allclose(mixer(max_q, states, greedy, max_q), values, atol=1e-5)
        actions = torch.randint(0, N_ACTIONS, (b, t, N_AGENTS))
        chosen = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        adv = mixer.transform(chosen, states) - mixer.transform(max_q, states)
        expected = values + (mixer.lambdas(states, actions) * adv).sum(-1, keepdim=True)
        assert torch.allclose(mixer(chosen, states, actions, max_q), expected, rtol=1e-5, atol=1e-4)


def test_qplex_stop_gradient_sends_w_to_the_agents():
    """With is_minus_one and is_stop_gradient, ∂Q_tot/∂Q_i = w_i(s) and the max gets no gradient."""
    torch.manual_seed(5)
    mixer = QPLEXMixer(N_AGENTS, N_ACTIONS, STATE_DIM, MixerConfig())
    states = torch.randn(4, 5, STATE_DIM)
    q = torch.randn(4, 5, N_AGENTS, N_ACTIONS)
    actions = torch.randint(0, N_ACTIONS, (4, 5, N_AGENTS))
    chosen = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1).requires_grad_()
    max_q = q.max(-1).values.requires_grad_()
    mixer(chosen, states, actions, max_q).sum().backward()
    w = mixer.hyper_w(states).abs() + 1e-10
    assert torch.allclose(chosen.grad, w, atol=1e-6)
    assert max_q.grad is None or (max_q.grad == 0).all()
    assert all(p.grad is not None for p in mixer.action_heads.parameters())  # λ still learns


ME_IGM_PAYOFF = torch.tensor(PAYOFFS["me_igm"])


def _fit_payoff(mixer: torch.nn.Module, seed: int, steps: int = 800) -> torch.Tensor:
    """Regress ``Q_tot`` of every joint action of the 2-agent, 3-action ME-IGM game onto its
    payoff (MSE, Adam on the mixer's weights) with the agents' utilities held at
    ``Q_i = (4, 0, 0)`` (both greedy at A) and a constant state: the fitted ``Q_tot`` [3, 3]."""
    torch.manual_seed(seed)
    utilities = torch.tensor([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    joint = torch.cartesian_prod(torch.arange(3), torch.arange(3)).unsqueeze(1)  # [9, 1, 2]
    chosen = utilities[torch.arange(2), joint]  # [9, 1, 2]
    states = torch.ones(9, 1, STATE_DIM)
    target = ME_IGM_PAYOFF.flatten()
    optimiser = torch.optim.Adam(mixer.parameters(), lr=1e-2)
    for _ in range(steps):
        if isinstance(mixer, QPLEXMixer):
            q_tot = mixer(chosen, states, joint, utilities.max(-1).values.expand(9, 1, 2))
        else:
            q_tot = mixer(chosen, states)
        loss = (q_tot.flatten() - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return q_tot.detach().view(3, 3)


@pytest.mark.parametrize("seed", range(3))
def test_qplex_represents_the_non_monotonic_me_igm_payoff_where_qmix_cannot(seed):
    """QPLEX's claim (its §3: the duplex-dueling mixer spans every IGM-consistent Q_tot): with the
    agents greedy at the optimum (A, A), QPLEX's mixer fits the ME-IGM payoff in every cell
    (within 0.5 where the payoffs differ by 8 to 20). QMIX's cannot: Q_tot is monotone in each
    Q_i, so Q_tot(A, B) ≥ Q_tot(B, B) where the payoff wants -12 against 0, and some cell stays at
    least 5 off.

    The advantage's stop-gradient (pymarl2's ``is_stop_gradient``) is off here: with it, ``w_i``
    learns only through ``Σ_i Q'_i`` and this fit collapsed to a constant Q_tot. Whether RL finds
    the optimum, with the utilities learned too, depends on the seed (docs/validation.md)."""
    fitted = _fit_payoff(QPLEXMixer(2, 3, STATE_DIM, MixerConfig(), stop_gradient=False), seed)
    assert torch.allclose(fitted, ME_IGM_PAYOFF, atol=0.5), fitted
    fitted = _fit_payoff(QMixer(2, STATE_DIM, MixerConfig()), seed)
    assert (fitted - ME_IGM_PAYOFF).abs().max() > 5.0, fitted
    assert fitted[0, 1] >= fitted[1, 1] - 1e-4  # monotone: A's Q_1 is higher, so is Q_tot


def _dmixer(seed: int) -> DMixer:
    torch.manual_seed(seed)
    mixer = DMixer(N_AGENTS, STATE_DIM, MixerConfig()).double()  # values reach 1e3: check in float64
    _scramble(mixer, 1.0)
    return mixer


def test_dmix_mean_part_is_monotone_and_shape_has_zero_mean():
    """∂Z_tot(τ)/∂E[Z_i] ≥ 0, and E_τ[Z_tot] = QMIX(E_τ[Z_1..N]; s) (the shape part has zero mean)."""
    mixer = _dmixer(6)
    b, t, k = 16, 8, 8
    states = torch.randn(b, t, STATE_DIM, dtype=torch.float64)
    shape = torch.randn(b, t, N_AGENTS, k, dtype=torch.float64) * 2
    shape = shape - shape.mean(-1, keepdim=True)
    means = torch.randn(b, t, N_AGENTS, dtype=torch.float64, requires_grad=True)
    z_tot = mixer(shape + means.unsqueeze(-1), states)  # [B, T, K]
    assert z_tot.shape == (b, t, k)
    for j in range(k):
        (grad,) = torch.autograd.grad(z_tot[..., j].sum(), means, retain_graph=True)
        assert (grad >= 0).all()
    q_mean = mixer.mean_mixer(means, states).squeeze(-1)
    assert torch.allclose(z_tot.mean(-1), q_mean, atol=1e-8)
    # the shape enters unmixed: Z_tot(τ) − E_τ[Z_tot] = Σ_i (Z_i(τ) − E_τ[Z_i])
    assert torch.allclose(z_tot - z_tot.mean(-1, keepdim=True), shape.sum(-2), atol=1e-8)


def test_dmix_greedy_means_maximise_expected_z_tot():
    """DIGM: agents greedy on their means maximise E_τ[Z_tot] over all joint actions."""
    mixer = _dmixer(7)
    k = 8
    with torch.no_grad():
        for _ in range(20):
            z = torch.randn(N_AGENTS, N_ACTIONS, k, dtype=torch.float64) * 2  # Z_i(τ_k, u)
            joint = torch.cartesian_prod(*[torch.arange(N_ACTIONS)] * N_AGENTS)
            zs = z[torch.arange(N_AGENTS), joint]  # [J, N, K]
            state = torch.randn(STATE_DIM, dtype=torch.float64).expand(1, len(joint), STATE_DIM)
            expected = mixer(zs.unsqueeze(0), state).mean(-1).view(-1)
            greedy = (joint == z.mean(-1).argmax(-1)).all(-1)
            assert expected[greedy].item() >= expected.max().item() - 1e-9


def test_iqn_step_by_step_equals_sequence_unroll():
    torch.manual_seed(8)
    b, n, t, k = 2, 3, 6, 5
    agent = IQNRNNAgent(input_dim=7, hidden_dim=16, n_actions=N_ACTIONS)
    inputs = torch.randn(b * n, t, 7)
    taus = torch.rand(b, t, k)
    with torch.no_grad():
        whole, _ = agent(inputs, agent.initial_hidden(b * n, torch.device("cpu")), taus)
        assert whole.shape == (b * n, t, k, N_ACTIONS)
        hidden = agent.initial_hidden(b * n, torch.device("cpu"))
        for step in range(t):
            z, hidden = agent.step(inputs[:, step], hidden, taus[:, step])
            assert torch.allclose(z, whole[:, step], atol=1e-5)


def test_iqn_agents_of_an_environment_share_tau():
    """Rows are (environment, agent); taus [B, ...] give every agent of an environment the same τ."""
    torch.manual_seed(9)
    b, n, t, k = 3, 4, 2, 6
    agent = IQNRNNAgent(input_dim=5, hidden_dim=16, n_actions=N_ACTIONS)
    hidden = agent.initial_hidden(b * n, torch.device("cpu"))
    with torch.no_grad():
        distinct = torch.randn(b * n, t, 5)
        taus = torch.rand(b, t, k)
        grouped, _ = agent(distinct, hidden, taus)
        per_row, _ = agent(distinct, hidden, taus.repeat_interleave(n, dim=0))  # row (e, i) gets env e's τ
        assert torch.allclose(grouped, per_row, atol=1e-6)
    inputs = torch.randn(1, 1, t, 5).expand(b, n, t, 5).reshape(b * n, t, 5)  # identical inputs
    with torch.no_grad():
        z, _ = agent(inputs, hidden, torch.rand(b, t, k))
        z = z.view(b, n, t, k, N_ACTIONS)
        assert torch.allclose(z, z[:, :1].expand_as(z), atol=1e-6)  # same τ within an environment
        assert not torch.allclose(z[0], z[1], atol=1e-3)  # other environments sampled other τ
        per_row, _ = agent(inputs, hidden, torch.rand(b * n, t, k))  # one τ per agent row
        assert not torch.allclose(per_row.view(b, n, t, k, -1)[:, 0], per_row.view(b, n, t, k, -1)[:, 1])
        # the embedding is ReLU(Linear(cos(π j τ))), j = 0..63
        tau = torch.tensor([0.3])
        features = torch.cos(torch.pi * torch.arange(64) * 0.3)
        assert torch.allclose(agent.embed(tau)[0], torch.relu(agent.phi(features)), atol=1e-6)
        # acting averages the quantiles of N̂ = 32 fractions shared within each environment
        torch.manual_seed(10)
        q, _ = agent.expected_step(inputs[:, 0], hidden, groups=b)
        torch.manual_seed(10)
        z_act, _ = agent.step(inputs[:, 0], hidden, torch.rand(b, 32))
        assert q.shape == (b * n, N_ACTIONS)
        assert torch.allclose(q, z_act.mean(-2), atol=1e-6)
    with pytest.raises(ValueError, match="cannot share"):
        agent(inputs, hidden, torch.rand(5, t, k))


def test_quantile_loss_is_zero_iff_predictions_equal_targets():
    """Zero iff every predicted quantile equals every target sample (a point-mass target)."""
    torch.manual_seed(11)
    mask = torch.ones(2, 3)
    taus = torch.rand(2, 3, 8)
    point = torch.full((2, 3, 8), 1.7)
    assert quantile_huber_loss(point, taus, point, mask).item() == 0.0
    for _ in range(10):
        pred = point.clone()
        pred.view(-1)[torch.randint(0, pred.numel(), ())] += torch.randn(()).item()
        assert quantile_huber_loss(pred, taus, point, mask).item() > 0
    # a spread target cannot be matched by one prediction per fraction, even by itself
    spread = torch.randn(2, 3, 8)
    assert quantile_huber_loss(spread, taus, spread, mask).item() > 0


def test_quantile_loss_matches_a_hand_computed_case():
    """Σ_i (1/N') Σ_j |τ_i − 1{u_ij < 0}| L_1(u_ij), N = 2, N' = 3, averaged over real steps only."""
    pred = torch.tensor([[[0.0, 0.0], [9.0, 9.0]]])  # [B=1, T=2, N=2]; step 2 is padding
    taus = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]])
    target = torch.tensor([[[0.5, 2.0, -3.0], [-9.0, 0.0, 9.0]]])
    # Huber(0.5, 2, -3) = 0.125, 1.5, 2.5; τ=0.25: (0.25·0.125 + 0.25·1.5 + 0.75·2.5) / 3,
    # τ=0.75: (0.75·0.125 + 0.75·1.5 + 0.25·2.5) / 3; total 4.125 / 3 = 1.375
    loss = quantile_huber_loss(pred, taus, target, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(1.375)


def test_quantile_loss_is_convex_in_the_prediction():
    torch.manual_seed(12)
    taus = torch.rand(1, 1, 4, dtype=torch.float64)
    target = torch.randn(1, 1, 16, dtype=torch.float64) * 2
    pred = torch.randn(1, 1, 4, dtype=torch.float64)
    sweep = torch.linspace(-6, 6, 601, dtype=torch.float64)
    values = []
    for x in sweep:
        pred[..., 1] = x
        values.append(quantile_huber_loss(pred, taus, target, torch.ones(1, 1)))
    second = torch.diff(torch.stack(values), n=2)
    assert (second >= -1e-12).all()
    assert second.max() > 0  # not flat: the sweep crosses the targets


def test_quantile_loss_learns_the_tau_quantiles_of_a_uniform_target():
    """Minimising the loss drives each prediction to its τ-quantile; the gradient pushes up below it."""
    torch.manual_seed(13)
    taus = (torch.arange(8) + 0.5) / 8
    target = torch.rand(1, 1, 4096) * 100  # U(0, 100): Huber's κ = 1 is small against the spread
    truth = torch.quantile(target.view(-1), taus)
    mask = torch.ones(1, 1)
    below = (truth - 5).view(1, 1, 8).requires_grad_()
    quantile_huber_loss(below, taus.view(1, 1, 8), target, mask).backward()
    assert (below.grad < 0).all()  # gradient descent raises predictions that sit below
    theta = torch.full((1, 1, 8), 50.0, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=2.0)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.985)
    for _ in range(400):
        opt.zero_grad()
        quantile_huber_loss(theta, taus.view(1, 1, 8), target, mask).backward()
        opt.step()
        sched.step()
    assert torch.allclose(theta.detach().view(-1), truth, atol=1.0), (theta.view(-1), truth)


def test_quantile_loss_ignores_padded_steps():
    torch.manual_seed(14)
    b, t, n, n_target = 3, 5, 4, 6
    pred = torch.randn(b, t, n, requires_grad=True)
    taus = torch.rand(b, t, n)
    target = torch.randn(b, t, n_target)
    mask = torch.ones(b, t)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    garbage = torch.where(mask.bool().unsqueeze(-1), target, torch.full_like(target, 1e6))
    loss = quantile_huber_loss(pred, taus, garbage, mask)
    loss.backward()
    assert (pred.grad[~mask.bool()] == 0).all()
    real = mask.bool()
    alone = quantile_huber_loss(
        pred[real].unsqueeze(0),
        taus[real].unsqueeze(0),
        target[real].unsqueeze(0),
        torch.ones(1, int(real.sum())),
    )
    assert torch.allclose(loss, alone)
