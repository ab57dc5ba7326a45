"""Linear and spherical interpolation of tensors.

``lerp`` is ``(1 - t) * a + t * b`` (written that way so t=0 returns ``a`` and t=1 returns ``b`` bit for bit).

``slerp`` moves along the great circle between ``a`` and ``b`` and interpolates their norms linearly, so a
Gaussian noise tensor keeps its expected norm halfway (a lerp of two independent noises shrinks it by ~√2,
which gives washed-out frames). ``dim=None`` (default) treats each whole tensor as one vector: use this for
starting noise. ``dim=-1`` treats every vector along that axis separately, e.g. each token of a 77×768 text
embedding. When the vectors are (nearly) parallel the angle is ill-conditioned and slerp falls back to lerp;
when either is zero the direction is undefined and it also falls back to lerp.
"""
from __future__ import annotations

import torch

#: |cos θ| above this counts as parallel (θ < ~1.8°): sin θ is too small to divide by safely.
PARALLEL_DOT = 0.9995


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Linear interpolation; exact at both ends."""
    t = float(t)
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    return (1.0 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dim: int | None = None) -> torch.Tensor:
    """Spherical interpolation from ``a`` (t=0) to ``b`` (t=1); exact at both ends.

    Computed in float32 (or float64 for float64 input) and returned in ``a``'s dtype. The result's norm is
    the linear interpolation of the two norms (for ``dim=None``, of the whole tensors; otherwise per vector).
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp needs tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    t = float(t)
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    work = torch.float64 if a.dtype == torch.float64 else torch.float32
    x, y = a.to(work), b.to(work)
    if dim is None:
        xs, ys = x.reshape(1, -1), y.reshape(1, -1)
    else:
        xs, ys = x.movedim(dim, -1), y.movedim(dim, -1)
        shape = xs.shape
        xs, ys = xs.reshape(-1, shape[-1]), ys.reshape(-1, shape[-1])
    na = xs.norm(dim=-1, keepdim=True)
    nb = ys.norm(dim=-1, keepdim=True)
    ua = xs / na.clamp_min(1e-30)
    ub = ys / nb.clamp_min(1e-30)
    dot = (ua * ub).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    theta = torch.arccos(dot)
    sin_theta = torch.sin(theta)
    # Unit direction along the arc, scaled by the interpolated norm.
    safe_sin = torch.where(sin_theta.abs() < 1e-12, torch.ones_like(sin_theta), sin_theta)
    direction = (torch.sin((1.0 - t) * theta) * ua + torch.sin(t * theta) * ub) / safe_sin
    spherical = direction * ((1.0 - t) * na + t * nb)
    linear = (1.0 - t) * xs + t * ys
    use_linear = (dot.abs() > PARALLEL_DOT) | (na == 0) | (nb == 0)
    out = torch.where(use_linear, linear, spherical)
    if dim is None:
        out = out.reshape(a.shape)
    else:
        out = out.reshape(shape).movedim(-1, dim)
    return out.to(a.dtype)
