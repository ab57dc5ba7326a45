"""Pacing as pure functions: metrics, midpoint, insert planning, and the pacing loop on synthetic morphs."""
import math
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageDraw

from morph import pacing


def test_max_over_mean_and_gini_of_even_and_uneven_steps():
    assert pacing.max_over_mean([2, 2, 2]) == pytest.approx(1.0)
    assert pacing.one_minus_gini([2, 2, 2]) == pytest.approx(1.0)
    assert pacing.max_over_mean([0, 0, 3]) == pytest.approx(3.0)
    # Gini of [0, 0, 3] is 2/3: one step does all the changing.
    assert pacing.one_minus_gini([0, 0, 3]) == pytest.approx(1 / 3)
    assert pacing.one_minus_gini([1, 2, 3, 4]) == pytest.approx(1 - 0.25)
    # Degenerate inputs: nothing changes, nothing to measure.
    assert pacing.max_over_mean([0, 0]) == 1.0 and pacing.one_minus_gini([]) == 1.0


def test_midpoint_is_half_the_path_not_half_the_frames():
    assert pacing.midpoint_index([1, 1, 1, 1]) == 2
    # Frame 1 is already 3/6 of the way: the big first step moves the midpoint there.
    assert pacing.midpoint_index([3, 1, 1, 1]) == 1
    assert pacing.midpoint_index([1, 1, 1, 1, 1, 1, 10]) == 7 - 1
    assert pacing.midpoint_index([0, 0, 0, 0]) == 2  # no change: middle frame


@pytest.mark.parametrize("mid,n,k,expected", [
    (5, 10, 3, [4, 5, 6]),
    (5, 10, 4, [4, 5, 6, 7]),
    (0, 10, 5, [0, 1, 2, 3, 4]),
    (9, 10, 5, [5, 6, 7, 8, 9]),
    (1, 3, 9, [0, 1, 2]),
    (2, 5, 1, [2]),
])
def test_candidates_surround_the_midpoint_inside_the_range(mid, n, k, expected):
    assert pacing.candidate_indices(mid, n, k) == expected


def test_uniform_and_coarse_grids():
    assert pacing.uniform_ts(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pacing.coarse_ts(24) == [i / 23 for i in (0, 4, 8, 12, 16, 20, 23)]
    assert pacing.coarse_ts(9) == [i / 8 for i in (0, 2, 4, 6, 8)]
    assert pacing.coarse_ts(3) == [0.0, 0.5, 1.0]
    assert pacing.coarse_ts(2) == [0.0, 1.0]


def test_inserts_go_to_the_largest_gap_and_split_it_evenly():
    ts = [0.0, 0.5, 1.0]
    assert pacing.plan_inserts(ts, [1.0, 5.0], 1) == [0.75]
    # Gap 2 is 5x bigger: it takes 3 inserts (5/4 > 1) before gap 1 gets its first.
    assert pacing.plan_inserts(ts, [1.0, 5.0], 3) == pytest.approx([0.625, 0.75, 0.875])
    assert pacing.plan_inserts(ts, [1.0, 5.0], 5) == pytest.approx([0.25, 0.6, 0.7, 0.8, 0.9])
    assert pacing.plan_inserts(ts, [1.0, 5.0], 0) == []
    with pytest.raises(ValueError):
        pacing.plan_inserts(ts, [1.0], 2)


def test_inserts_snap_to_the_final_uniform_grid_when_one_is_near():
    # Gap 0..3/6 of a 7-frame grid: its midpoint 1.5/6 snaps to the grid point 1/6 (or 2/6), not off-grid.
    new = pacing.plan_inserts([0.0, 3 / 6, 1.0], [1.0, 1.0], 1, grid=7)
    assert len(new) == 1 and new[0] in (1 / 6, 2 / 6)
    # A gap one cell wide has no free grid point inside: its insert stays at the midpoint.
    assert pacing.plan_inserts([0.0, 1 / 6], [1.0], 1, grid=7) == [pytest.approx(1 / 12)]


def _profile_run(profile, total, batch, perceptual):
    calls = []

    def render(ts):
        calls.append(list(ts))
        return [profile(t) for t in ts]

    ts, dist = pacing.pace(render, lambda a, b: abs(a - b), total, batch, perceptual=perceptual)
    return ts, dist, calls


def _dog_changes_breed_at_frame_3(t):
    """The article's dog: almost all of the change happens around t = 0.1."""
    return 1.0 / (1.0 + math.exp(-(t - 0.1) / 0.02)) + 0.3 * t


@pytest.mark.parametrize("total,batch", [(16, 4), (24, 8), (24, 48), (60, 16)])
def test_perceptual_pacing_flattens_an_early_jump(total, batch):
    ts_u, d_u, calls_u = _profile_run(_dog_changes_breed_at_frame_3, total, batch, perceptual=False)
    ts_p, d_p, calls_p = _profile_run(_dog_changes_breed_at_frame_3, total, batch, perceptual=True)
    assert pacing.max_over_mean(d_u) > 7
    # With the whole morph in one batch (a GPU) there is one insert round: less even than several rounds.
    assert pacing.max_over_mean(d_p) < (0.3 if batch < total else 0.5) * pacing.max_over_mean(d_u)
    assert pacing.one_minus_gini(d_p) > pacing.one_minus_gini(d_u) + 0.2
    # UNet work within one batch of uniform spacing: at most one more render call.
    assert len(calls_u) == math.ceil(total / batch) and len(calls_p) <= len(calls_u) + 1
    for ts, calls in ((ts_u, calls_u), (ts_p, calls_p)):
        assert len(ts) == total and ts == sorted(ts) and ts[0] == 0.0 and ts[-1] == 1.0
        rendered = [t for call in calls for t in call]
        assert sorted(rendered) == ts  # every frame rendered exactly once: same UNet work as uniform
        assert all(len(call) <= batch for call in calls)
    # Frames crowd into the jump: more than a third of them sit in t < 0.2.
    assert sum(t < 0.2 for t in ts_p) > total / 3
    assert sum(t < 0.2 for t in ts_u) <= total / 5 + 1


@pytest.mark.parametrize("total", [2, 3, 5, 8, 16, 24, 50, 61, 120])
@pytest.mark.parametrize("batch", [1, 2, 4, 7, 16, 48, 200])
def test_perceptual_pacing_takes_at_most_one_render_call_more_than_uniform(total, batch):
    _, _, calls = _profile_run(_dog_changes_breed_at_frame_3, total, batch, perceptual=True)
    assert sum(len(c) for c in calls) == total and all(len(c) <= batch for c in calls)
    assert len(calls) <= math.ceil(total / batch) + 1
    coarse = len(pacing.coarse_ts(total, pacing.default_stride(total, batch)))
    assert len(calls) == math.ceil(coarse / batch) + pacing.insert_rounds(total, coarse, batch)


def test_coarse_stride_is_finer_when_only_one_insert_round_follows():
    assert pacing.default_stride(24) == pacing.default_stride(24, 8) == 4  # three rounds follow
    assert pacing.default_stride(24, 48) == 2  # one batch holds the morph: one round
    assert pacing.default_stride(50, 48) == 4  # uniform takes 2 batches: two rounds fit
    assert pacing.default_stride(8, 4) == 2 and pacing.default_stride(3, 4) == 1
    assert len(pacing.coarse_ts(24, 2)) == 13


def test_insert_rounds_use_the_spare_batch_for_up_to_three_rounds():
    assert pacing.insert_rounds(24, 7, 48) == 1  # one batch holds everything: coarse pass + one round
    assert pacing.insert_rounds(50, 13, 48) == 2  # uniform needs 48 + 2: two rounds fit
    assert pacing.insert_rounds(16, 5, 4) == 3  # CPU: 2 coarse batches + 3 rounds = 4 + 1
    assert pacing.insert_rounds(120, 31, 4) == 23  # the inserts alone need 23 batches
    assert pacing.insert_rounds(24, 7, 4, rounds=1) == 5
    assert pacing.insert_rounds(5, 5, 4) == 0


def test_an_evenly_changing_morph_stays_exactly_uniform():
    for total in (5, 16, 24, 37):
        ts, _, _ = _profile_run(lambda t: 3 * t, total, 4, perceptual=True)
        assert ts == pytest.approx(pacing.uniform_ts(total), abs=1e-12)


def test_perceptual_is_never_worse_than_uniform_on_random_smooth_morphs():
    rng = np.random.default_rng(42)
    ratios = []
    for k in range(24):
        if k % 3 == 0:
            amp, freq, phase = rng.uniform(0.01, 0.08, 3), rng.uniform(2, 20, 3), rng.uniform(0, 6, 3)
            def f(t, a=amp, w=freq, p=phase):
                return t + float(np.sum(a * np.sin(w * t + p) / w * 5))
        elif k % 3 == 1:
            c, s, h = rng.uniform(0.02, 0.98, 2), rng.uniform(0.003, 0.05, 2), rng.uniform(0.2, 1, 2)
            def f(t, c=c, s=s, h=h):
                return 0.3 * t + float(np.sum(h / (1 + np.exp(-(t - c) / s))))
        else:
            power = rng.uniform(0.3, 4)
            def f(t, p=power):
                return t ** p
        # several insert rounds (CPU-sized batches), and one (the whole morph in one GPU batch)
        for total, batch in ((16, 4), (24, 16), (40, 8), (24, 48), (16, 200), (60, 64)):
            _, d_u, _ = _profile_run(f, total, batch, perceptual=False)
            _, d_p, _ = _profile_run(f, total, batch, perceptual=True)
            ratios.append(pacing.max_over_mean(d_p) / pacing.max_over_mean(d_u))
    assert max(ratios) <= 1.001
    assert float(np.median(ratios)) < 0.9


def test_pacing_reports_rounds_and_rejects_a_bad_renderer():
    seen = []
    pacing.pace(lambda ts: [t for t in ts], lambda a, b: abs(a - b), 16, 4,
                on_round=lambda ts, d: seen.append(len(ts)))
    assert seen and seen == sorted(seen) and seen[0] == len(pacing.coarse_ts(16))
    with pytest.raises(ValueError, match="items"):
        pacing.pace(lambda ts: [0.0], lambda a, b: 0.0, 8, 4)


def _picture(shape="circle", colour=(200, 40, 40), offset=0, noise=0.0, seed=0):
    im = Image.new("RGB", (128, 128), (30, 30, 60))
    d = ImageDraw.Draw(im)
    box = (30 + offset, 30, 98 + offset, 98)
    (d.ellipse if shape == "circle" else d.rectangle)(box, fill=colour)
    arr = np.asarray(im, dtype=np.float32)
    if noise:
        arr = arr + np.random.default_rng(seed).normal(0, noise, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_image_distance_sees_content_not_pixel_noise():
    base = _picture()
    assert pacing.image_distance(base, base) == 0.0
    noisy = pacing.image_distance(base, _picture(noise=8, seed=1))
    moved_a_bit = pacing.image_distance(base, _picture(offset=4))
    moved_more = pacing.image_distance(base, _picture(offset=16))
    other_shape = pacing.image_distance(base, _picture(shape="square"))
    assert noisy < moved_a_bit < moved_more
    assert other_shape > 3 * noisy
    # The edge (gradient) term responds to a shape change far more than to pixel noise.
    def edges(a, b):
        return float(np.sqrt(np.mean((pacing.image_features(a)[1] - pacing.image_features(b)[1]) ** 2)))
    assert edges(base, _picture(shape="square")) > 4 * edges(base, _picture(noise=8, seed=1))
    # Works on arrays and on images of different sizes (all are compared at 64x64).
    small = base.resize((64, 64))
    assert pacing.image_distance(np.asarray(base), small) < noisy


# ------------------------------------------------------------------------------------------- chains
def test_path_grid_puts_a_frame_on_every_knot_and_shares_the_rest_evenly():
    for n in (2, 3, 7, 24):
        assert pacing.path_grid(n) == pacing.uniform_ts(n)  # bit for bit
    grid = pacing.path_grid(12, [0.0, 1.0, 2.0])  # 11 steps over two segments: 6 + 5
    assert grid == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1.2, 1.4, 1.6, 1.8, 2])
    assert {0.0, 1.0, 2.0} <= set(grid)
    # A refine range crossing a prompt: pieces share the steps by length (0.75 : 0.25).
    assert pacing.path_grid(5, [0.25, 1.0, 1.25]) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25])
    # Every piece gets a step even when it is short.
    assert pacing.path_grid(4, [0.0, 2.9, 2.95, 3.0]) == [0.0, 2.9, 2.95, 3.0]
    with pytest.raises(ValueError):
        pacing.path_grid(3, [0.0, 1.0, 2.0, 3.0])


def test_coarse_pass_starts_afresh_at_every_knot():
    knots = [0.0, 1.0, 2.0]
    grid = pacing.path_grid(20, knots)  # 10 + 9 steps
    coarse = pacing.coarse_ts(20, 4, knots)
    assert coarse == [grid[i] for i in (0, 4, 8, 10, 14, 18, 19)] and {0.0, 1.0, 2.0} <= set(coarse)
    assert pacing.coarse_ts(24) == pacing.coarse_ts(24, None, (0.0, 1.0))


def test_inserts_snap_to_a_chains_grid():
    grid = pacing.path_grid(12, [0.0, 1.0, 2.0])
    new = pacing.plan_inserts([0.0, 1.0, 1.4, 2.0], [0.0, 1.0, 3.0], 3, grid=grid)
    assert all(t in grid for t in new) and all(1.0 < t < 2.0 for t in new)  # none in the still segment


def _segment_profile(t):
    """Three segments that change 1, 3 and 0.2 units (a chain where the middle morph is the big one)."""
    k = min(int(t), 2)
    start = (0.0, 1.0, 4.0)[k]
    return start + (1.0, 3.0, 0.2)[k] * (t - k)


@pytest.mark.parametrize("total,batch", [(24, 4), (36, 8), (24, 48)])
def test_pacing_over_a_chain_gives_each_segment_frames_by_its_change(total, batch):
    knots = [0.0, 1.0, 2.0, 3.0]
    calls = []

    def render(ts):
        calls.append(list(ts))
        return [_segment_profile(t) for t in ts]

    ts, dist = pacing.pace(render, lambda a, b: abs(a - b), total, batch, knots=knots)
    assert len(ts) == total and set(knots) <= set(ts)
    assert sorted(t for c in calls for t in c) == ts  # each frame once: the UNet work of uniform spacing
    counts = [sum(k <= t < k + 1 for t in ts) for k in range(3)]
    counts[2] += 1  # the end frame
    assert counts[1] > counts[0] > counts[2]  # uniform spacing gives each a third
    uniform = [abs(_segment_profile(b) - _segment_profile(a))
               for a, b in pairwise(pacing.path_grid(total, knots))]
    assert pacing.max_over_mean(dist) < 0.75 * pacing.max_over_mean(uniform)


def test_segment_picks_split_the_frames_between_the_prompts():
    ts = [0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0]
    d = [1, 1, 1, 1, 1, 1]
    assert pacing.segment_picks(ts, d, [0.0, 1.0, 2.0], 3) == [
        (0, 1, 1, [0, 1]),  # owns 0..1 (frame 2 is the next prompt's): at most 2 candidates
        (2, 6, 4, [3, 4, 5]),  # the last segment owns the end frame too
    ]
    # A closed loop: the last position is the first frame again, owned by nobody.
    assert pacing.segment_picks(ts, d, [0.0, 1.0, 2.0], 1, closed=True)[-1] == (2, 5, 4, [4])


#: Pairs of Sharma, Wu and Dalal's CIEDE2000 test data (2005) with the difference they publish.
SHARMA = [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425), ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0),
          ((50, 0, 0), (50, -1, 2), 2.3669), ((50, 2.5, 0), (50, 0, -2.5), 4.3065),
          ((50, 2.5, 0), (73, 25, -18), 27.1492), ((50, 2.5, 0), (50, 3.1736, 0.5854), 1.0),
          ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
          ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
          ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082)]


def test_the_frame_distance_measures_colour_by_ciede2000():
    """pacing.ciede2000 gives the published CIEDE2000 differences and scikit-image's on any colours (greys,
    whose hue is undefined, included)."""
    from skimage.color import deltaE_ciede2000

    got = pacing.ciede2000(np.array([p[0] for p in SHARMA]), np.array([p[1] for p in SHARMA]))
    assert np.allclose(got, [p[2] for p in SHARMA], atol=5e-5)
    rng = np.random.default_rng(0)
    a = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-100, 100, 5000), rng.uniform(-100, 100, 5000)], -1)
    b = a + rng.normal(0, 20, a.shape)
    a[:100, 1:] = 0
    assert np.allclose(pacing.ciede2000(a, b), deltaE_ciede2000(a, b), atol=1e-9)
    assert pacing.ciede2000(a, a).max() == 0
