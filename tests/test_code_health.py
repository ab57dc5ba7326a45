"""Small decisions that live in one place: the bounded id memory, what counts as out of memory, the frame
cap, and file deletion off the event loop."""
from __future__ import annotations

import shutil
import threading

import pytest
import torch

from bot.artifacts import FolderArtifacts
from bot.config import Settings
from bot.jobs import Job, JobState
from bot.messages import failure_text
from bot.recent import RecentIds
from bot.render_output import failure_reason
from bot.store import Limits
from morph.request import MAX_FRAMES, RenderRequest, is_out_of_memory


def test_recent_ids_forget_the_oldest_first():
    ids = RecentIds(size=3)
    for i in (1, 2, 3, 1, 4):  # 1 is added again: now newer than 2 and 3
        ids.add(i)
    assert len(ids) == 3 and 2 not in ids and all(i in ids for i in (1, 3, 4))
    ids.add(5)
    assert 3 not in ids and 1 in ids and 5 in ids


@pytest.mark.parametrize("err,oom", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), True),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("MPS backend out of memory"), True),
    (ValueError("out of memory"), False),
    (RuntimeError("shape mismatch"), False),
])
def test_one_rule_for_out_of_memory(err, oom):
    assert is_out_of_memory(err) is oom
    # the engine halves its batch on exactly these; the bot names them to the user
    assert ("ran out of memory" in failure_text(failure_reason(err))) is oom


def test_the_frame_cap_is_decided_by_the_servers_limits():
    limits = Limits.from_row({"max_frames": 40}, Settings(max_frames=60, default_frames=50))
    assert limits.max_frames == 40
    assert [limits.capped_frames(n) for n in (24, 40, 50, MAX_FRAMES)] == [24, 40, 40, 40]
    assert Limits.from_row({"max_frames": 100}, Settings(max_frames=60)).max_frames == 60  # never looser


async def test_folder_deletion_runs_off_the_event_loop(tmp_path, monkeypatch):
    store = FolderArtifacts(tmp_path)
    job = Job(id=3, guild_id=1, channel_id=2, user_id=4, state=JobState.RENDERED,
              request=RenderRequest(["a", "b"]), token="0a1b2c3d", artifact_dir="3-0a1b2c3d")
    await store.save(job, {"frame_000.png": b"x"})
    threads = []
    real = shutil.rmtree

    def recording(path, *args, **kwargs):
        threads.append(threading.get_ident())
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", recording)
    loop_thread = threading.get_ident()
    await store.delete(job)
    assert not (tmp_path / "3-0a1b2c3d").exists()
    assert threads and all(t != loop_thread for t in threads)
