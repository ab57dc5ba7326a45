"""The stored result record: what to_json writes from_json reads back, and nothing else."""
import json

import pytest

from bot.result import RESULT_VERSION, Animation, JobResult, ResultFormatError, SegmentResult
from morph.request import Notice

SHRUNK = Notice("reduced_size", {"before": "16", "after": "8"})
UNUSED = Notice("negative_unused", {"guidance": 1.0})

RESULT = JobResult(frame_count=3, ts=(0.0, 0.5, 1.0), distances=(0.1, 0.2), max_over_mean=1.3, one_minus_gini=0.8,
                   midpoint=1, candidates=(1, 2), segments=(SegmentResult(0, 0, 2, 1, (1, 2)),), warnings=(UNUSED,),
                   seconds=1.5, format="mp4", animations=(Animation("gif", 9, 3, (8, 8), (SHRUNK,)),),
                   mp4_error="no PyAV", budget=100, sheet_bytes=5, frame_size=(16, 16), model="toy", unet_evals=6)


def test_round_trip_and_derived_facts():
    stored = json.loads(RESULT.to_json())
    assert stored["version"] == RESULT_VERSION and stored["animations"][0]["kind"] == "gif"
    back = JobResult.from_json(RESULT.to_json())
    assert back == RESULT and back.files == ("gif",) and back.fell_back
    assert back.animation("gif").reductions == (SHRUNK,) and back.animation("mp4") is None
    assert stored["warnings"] == [{"code": "negative_unused", "facts": {"guidance": 1.0}}]


@pytest.mark.parametrize("change", [{"version": None}, {"version": RESULT_VERSION + 1}, {"frame_count": None},
                                    {"animations": [{"kind": "gif"}]}, {"reconstruction": None},
                                    {"warnings": ["The negative prompt was not used"]},  # version 1's sentences
                                    {"warnings": [{"code": "no_such_notice", "facts": {}}]}])
def test_other_shapes_are_refused(change):
    d = json.loads(RESULT.to_json())
    d.update(change)
    d = {k: v for k, v in d.items() if v is not None}
    with pytest.raises(ResultFormatError):
        JobResult.from_json(json.dumps(d))


def test_progress_round_trip_and_the_render_progress_it_carries():
    from bot.result import JobProgress
    from morph.request import Progress

    rendered = Progress(frames_done=4, frames_total=16, step=3, steps=8, fraction=0.3, stage="denoise")
    p = JobProgress.of(rendered, eta_s=12.5)
    assert JobProgress.from_json(p.to_json()) == p and p.eta_s == 12.5
    assert (p.stage, p.frames_done, p.frames_total, p.step, p.steps, p.fraction) == (
        rendered.stage, rendered.frames_done, rendered.frames_total, rendered.step, rendered.steps, rendered.fraction)
    assert json.loads(JobProgress.of(rendered, None).to_json())["eta_s"] is None
    with pytest.raises(ResultFormatError):
        JobProgress.from_json(json.dumps({"stage": "denoise"}))
