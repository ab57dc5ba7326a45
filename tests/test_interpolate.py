"""lerp/slerp math: exact endpoints, norms, angles, per-token mode, safe fallbacks."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from morph.interpolate import lerp, slerp

torch.set_num_threads(1)


def _pair(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("fn", [lerp, slerp])
@pytest.mark.parametrize("shape", [(7,), (1, 77, 32), (2, 4, 8, 8)])
def test_endpoints_are_exact(fn, shape):
    a, b = _pair(shape)
    assert torch.equal(fn(a, b, 0.0), a)
    assert torch.equal(fn(a, b, 1.0), b)
    assert torch.equal(fn(a, b, 0), a) and torch.equal(fn(a, b, 1), b)


def test_per_token_slerp_endpoints_exact():
    a, b = _pair((1, 77, 32))
    assert torch.equal(slerp(a, b, 0.0, dim=-1), a)
    assert torch.equal(slerp(a, b, 1.0, dim=-1), b)


def test_lerp_midpoint_is_the_average():
    a, b = _pair((3, 5))
    assert torch.allclose(lerp(a, b, 0.5), (a + b) / 2)
    assert torch.allclose(lerp(a, b, 0.25), 0.75 * a + 0.25 * b)


def test_slerp_of_orthogonal_unit_vectors_follows_the_circle():
    a = torch.tensor([1.0, 0.0, 0.0])
    b = torch.tensor([0.0, 1.0, 0.0])
    for t in (0.1, 0.25, 0.5, 0.9):
        out = slerp(a, b, t)
        expected = torch.tensor([math.cos(t * math.pi / 2), math.sin(t * math.pi / 2), 0.0])
        assert torch.allclose(out, expected, atol=1e-6)
        assert out.norm().item() == pytest.approx(1.0, abs=1e-6)


def test_slerp_keeps_the_norm_of_noise_where_lerp_shrinks_it():
    a, b = _pair((1, 4, 64, 64), seed=3)
    mid_s, mid_l = slerp(a, b, 0.5), lerp(a, b, 0.5)
    # Independent Gaussian noises are nearly orthogonal: lerp's midpoint is ~1/sqrt(2) as long.
    assert mid_s.norm().item() == pytest.approx(((a.norm() + b.norm()) / 2).item(), rel=1e-5)
    assert mid_l.norm().item() == pytest.approx(mid_s.norm().item() / math.sqrt(2), rel=0.05)
    # Midpoint is equally far in angle from both ends.
    cos_a = torch.nn.functional.cosine_similarity(mid_s.flatten(), a.flatten(), dim=0)
    cos_b = torch.nn.functional.cosine_similarity(mid_s.flatten(), b.flatten(), dim=0)
    assert cos_a.item() == pytest.approx(cos_b.item(), abs=1e-5)


def test_slerp_interpolates_norms_linearly():
    a = torch.tensor([2.0, 0.0])
    b = torch.tensor([0.0, 4.0])
    assert slerp(a, b, 0.5).norm().item() == pytest.approx(3.0, rel=1e-6)
    assert slerp(a, b, 0.25).norm().item() == pytest.approx(2.5, rel=1e-6)


def test_per_token_slerp_treats_each_token_separately():
    a, b = _pair((1, 5, 16), seed=7)
    whole = slerp(a, b, 0.3)
    tokens = slerp(a, b, 0.3, dim=-1)
    for i in range(5):
        assert torch.allclose(tokens[0, i], slerp(a[0, i], b[0, i], 0.3), atol=1e-6)
    assert not torch.allclose(whole, tokens, atol=1e-4)


@pytest.mark.parametrize("b_factor", [2.0, 1.0, -1.0, 0.0])
def test_parallel_antiparallel_and_zero_fall_back_to_lerp(b_factor):
    a = torch.tensor([[0.3, -1.2, 2.0, 0.5]])
    b = a * b_factor
    for t in (0.2, 0.5, 0.8):
        out = slerp(a, b, t)
        assert torch.isfinite(out).all()
        assert torch.allclose(out, lerp(a, b, t), atol=1e-6)
    zero = torch.zeros_like(a)
    assert torch.allclose(slerp(zero, a, 0.5), a / 2)


def test_nearly_parallel_vectors_stay_finite_and_close_to_lerp():
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([1.0, 1e-4])
    out = slerp(a, b, 0.5)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, lerp(a, b, 0.5), atol=1e-6)


def test_half_precision_in_half_precision_out():
    a, b = _pair((1, 4, 8, 8), dtype=torch.float16)
    out = slerp(a, b, 0.5)
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), slerp(a.float(), b.float(), 0.5), atol=2e-3)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        slerp(torch.zeros(3), torch.zeros(4), 0.5)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.0, 1.0), n=st.integers(2, 40))
def test_slerp_angle_from_a_is_t_times_the_total_angle(seed, t, n):
    a, b = _pair((n,), seed=seed, dtype=torch.float64)
    total = torch.arccos(torch.dot(a, b) / (a.norm() * b.norm())).item()
    out = slerp(a, b, t)
    if total < 0.05 or total > math.pi - 0.05:
        return  # (anti)parallel: lerp fallback, covered above
    got = torch.arccos((torch.dot(out, a) / (out.norm() * a.norm())).clamp(-1, 1)).item()
    assert got == pytest.approx(t * total, abs=1e-6)
    # The result stays in the plane spanned by a and b.
    basis = torch.linalg.qr(torch.stack([a, b], dim=1)).Q
    assert torch.allclose(basis @ (basis.T @ out), out, atol=1e-8)
