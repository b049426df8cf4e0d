"""The GRU's recurrence over a whole sequence as one autograd function, with a hand-written backward.

A replay update unrolls the agents' GRU over up to the episode limit (100-180 steps on SMAX), for
the online agents forward and backward and for the target agents forward. Written with torch
ops, each step is about ten elementwise kernels forward and twice that backward, tiny kernels
whose count, not their arithmetic, bounds the update even inside a CUDA graph (BENCHMARKS.md §6).
Here each step is two kernels forward (the recurrent matmul and one fused cell) and three backward
(one fused cell, one concatenation and the matmul that carries the hidden gradient), and the
weight gradients of all steps are one batched matmul at the end.

On CUDA the fused cells are elementwise kernels compiled at run time by PyTorch's jiterator; on
other devices the same equations run as torch ops (the reference the GPU kernels are tested
against, ``tests/test_cuda_graph.py``). The function works on an explicit leading run axis, so a
pack's vmapped loss (:mod:`marlrepro.core.stacked`) reaches it as one batched call: its ``vmap``
rule folds the vmapped axis into the run axis.
"""

from __future__ import annotations

from typing import Any

import torch

# torch's GRU equations (Cho et al. 2014), gate order (r, z, n):
#   r = σ(x_r + h_r),  z = σ(x_z + h_z),  n = tanh(x_n + r ⊙ (h_n + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h
# where x_• = W_i• x + b_i• (+ b_h• for r and z, folded in by the caller) and h_• = W_h• h, the
# recurrent matmul. b_hn enters the cell, which returns h_n + b_hn for the backward.
_CELL_FORWARD = """
template <typename T> void gru_cell_forward(T xr, T xz, T xn, T hr, T hz, T hn, T bn, T h,
                                            T& out, T& r, T& z, T& n, T& hnb) {
    r = T(1) / (T(1) + ::exp(-(xr + hr)));
    z = T(1) / (T(1) + ::exp(-(xz + hz)));
    hnb = hn + bn;
    n = ::tanh(xn + r * hnb);
    out = (T(1) - z) * n + z * h;
}
"""
# The backward of one step. dL/dh' is the sum of the output's gradient and the carried gradient
# of the next step, itself the sum of a direct term (z ⊙ dL/dh'') and the recurrent matmul's:
#   da_n = dh' (1 − z)(1 − n²),  da_r = da_n (h_n + b_hn) r (1 − r),  da_z = dh' (h − n) z (1 − z),
#   dL/dh_n = da_n r,  dL/dh (direct) = dh' z.
_CELL_BACKWARD = """
template <typename T> void gru_cell_backward(T d_out, T d_direct, T d_mm, T r, T z, T n, T hnb, T h,
                                             T& da_r, T& da_z, T& da_n, T& d_hn, T& dh) {
    T d = d_out + d_direct + d_mm;
    da_n = d * (T(1) - z) * (T(1) - n * n);
    da_r = da_n * hnb * r * (T(1) - r);
    da_z = d * (h - n) * z * (T(1) - z);
    d_hn = da_n * r;
    dh = d * z;
}
"""
_jitted: dict[str, Any] = {}


def _kernel(name: str, code: str, outputs: int) -> Any:
    if name not in _jitted:
        _jitted[name] = torch.cuda.jiterator._create_multi_output_jit_fn(code, num_outputs=outputs)
    return _jitted[name]


def cell_forward(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One step: ``(x_r, x_z, x_n, h_r, h_z, h_n, b_hn, h) -> (h', r, z, n, h_n + b_hn)`` (the
    equations above)."""
    if inputs[0].is_cuda:
        return _kernel("forward", _CELL_FORWARD, 5)(*inputs)
    xr, xz, xn, hr, hz, hn, bn, h = inputs
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    hnb = hn + bn
    n = torch.tanh(xn + r * hnb)
    return (1 - z) * n + z * h, r, z, n, hnb


def cell_backward(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One step's backward: ``(dL/dh' from the output, its direct and its matmul part carried from
    the next step, r, z, n, h_n + b_hn, h) -> (da_r, da_z, da_n, dL/dh_n, dL/dh direct)``."""
    if inputs[0].is_cuda:
        return _kernel("backward", _CELL_BACKWARD, 5)(*inputs)
    d_out, d_direct, d_mm, r, z, n, hnb, h = inputs
    d = d_out + d_direct + d_mm
    da_n = d * (1 - z) * (1 - n * n)
    return da_n * hnb * r * (1 - r), d * (h - n) * z * (1 - z), da_n, da_n * r, d * z


class GRURecurrence(torch.autograd.Function):
    """``(gates_x [R, M, T, 3H], h0 [R, M, H], W_hh [R, 3H, H], b_hn [R, H]) -> h [R, M, T, H]``:
    the hidden states of ``R`` GRUs (a run axis) over ``M`` sequences of ``T`` steps, given every
    step's input projections with the recurrent r and z biases folded in,
    ``gates_x = W_ih x + b_ih + (b_hr, b_hz, 0)``. (The other outputs are the saved gates.)"""

    @staticmethod
    def forward(gates_x: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hn: torch.Tensor) -> Any:
        width = h0.shape[-1]
        w_t, bias = w_hh.transpose(1, 2), b_hn.unsqueeze(1)
        h = h0
        outputs, saved = [], []
        for x in gates_x.unbind(2):
            h, *gates = cell_forward(*x.split(width, -1), *torch.bmm(h, w_t).split(width, -1), bias, h)
            outputs.append(h)
            saved.append(gates)
        r, z, n, hnb = (torch.stack(parts) for parts in zip(*saved, strict=True))  # [T, R, M, H]
        return torch.stack(outputs, dim=2), r, z, n, hnb

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, h0, w_hh, _ = inputs
        hs, *gates = output
        ctx.mark_non_differentiable(*gates)
        ctx.save_for_backward(h0, w_hh, hs, *gates)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_hs: torch.Tensor, *_: Any) -> tuple[torch.Tensor, ...]:
        h0, w_hh, hs, r, z, n, hnb = ctx.saved_tensors
        width = h0.shape[-1]
        h_prev = torch.cat([h0.unsqueeze(2), hs[:, :, :-1]], dim=2)  # [R, M, T, H]
        direct = mm = torch.zeros_like(h0)
        d_gates_h, d_an = [], []
        for t in reversed(range(hs.shape[2])):
            da_r, da_z, da_n, d_hn, direct = cell_backward(
                grad_hs[:, :, t], direct, mm, r[t], z[t], n[t], hnb[t], h_prev[:, :, t])
            d_h = torch.cat([da_r, da_z, d_hn], dim=-1)  # dL/d(W_hh h)
            mm = torch.bmm(d_h, w_hh)
            d_gates_h.append(d_h)
            d_an.append(da_n)
        d_x = torch.stack(d_gates_h[::-1], dim=2)  # dL/d(W_hh h) [R, M, T, 3H], for now
        d_w = torch.einsum("rmtg,rmth->rgh", d_x, h_prev)
        d_b = d_x[..., 2 * width:].sum(dim=(1, 2))
        d_x[..., 2 * width:] = torch.stack(d_an[::-1], dim=2)  # now dL/d(gates_x)
        return d_x, direct + mm, d_w, d_b

    @staticmethod
    def vmap(info: Any, in_dims: tuple, *inputs: torch.Tensor) -> tuple[Any, Any]:
        """Under ``vmap`` the inputs carry one more batch axis: fold it into the run axis."""
        folded = [(x.movedim(d, 0) if d is not None else x.expand(info.batch_size, *x.shape)).flatten(0, 1)
                  for x, d in zip(inputs, in_dims, strict=True)]
        outputs = GRURecurrence.apply(*folded)
        return tuple(o.unflatten(0, (info.batch_size, -1)) if i == 0 else o.unflatten(1, (info.batch_size, -1))
                     for i, o in enumerate(outputs)), (0, 1, 1, 1, 1)
