"""Every text the bot shows in Discord, as pure functions (no network), so they can be tested.

Rules every function here keeps:
- user text (prompts, error messages that quote it) goes through :func:`safe`, which defuses mentions,
  markdown and links, so nothing a user typed can ping, format or become a clickable link with a preview
  (the bot also sends with ``AllowedMentions.none()`` as a second guard);
- people are named with ``<@id>``: Discord shows the name, and AllowedMentions.none() keeps it silent;
- every content string stays within Discord's 2,000 characters (:func:`clip`).
"""
from __future__ import annotations

import re

import discord

from bot.result import JobResult
from bot.validation import LINK_RE

MAX_CONTENT = 2000
KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣")
SELECT_LIMIT = 25

#: The marker every result message starts with. Delivery searches the channel for it to avoid posting a
#: result twice after a crash (see bot/delivery.py), and reactions use it to find the job of a message.
RESULT_MARKER = "🎞️ Morph job #{job}"
RESULT_MARKER_RE = re.compile(r"^🎞️ Morph job #(\d+)\b")

_MENTIONISH = re.compile(r"<(?=[@#&:]|a:|/|t:)")  # <@1>, <@!1>, <@&1>, <#1>, <:e:1>, <a:e:1>, </c:1>, <t:1>
_EVERYONE = re.compile(r"@(?=everyone|here)", re.IGNORECASE)


def keycap_index(emoji: str) -> int | None:
    """0 for 1️⃣ … 8 for 9️⃣, with or without the U+FE0F variation selector (some clients and bridges
    send ``3⃣``); None for any other emoji."""
    bare = emoji.replace("\ufe0f", "")
    for n, keycap in enumerate(KEYCAPS):
        if bare == keycap.replace("\ufe0f", ""):
            return n
    return None


def clip(text: str, limit: int = MAX_CONTENT) -> str:
    """Cut ``text`` to ``limit`` characters, ending with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def defang(text: str) -> str:
    """Every :data:`LINK_RE` match with a zero-width space after each ``:`` and before each ``.``: it
    reads the same but Discord no longer sees a link (no click, no preview)."""
    return LINK_RE.sub(lambda m: m.group(0).replace(":", ":\u200b").replace(".", "\u200b."), text)


def safe(text: str, limit: int = 200) -> str:
    """User text made inert for a message: no mentions, no markdown, no links, one line, at most
    ``limit`` chars (plus the zero-width spaces that defuse it)."""
    text = " ".join(str(text).split())
    text = clip(text, limit)
    text = defang(text)
    text = discord.utils.escape_markdown(text)
    text = _MENTIONISH.sub("<\u200b", text)
    text = _EVERYONE.sub("@\u200b", text)
    return text


def user(user_id: int | None) -> str:
    return f"<@{int(user_id)}>" if user_id else "someone"


def duration(seconds: float | None) -> str:
    """'2.4 s', '45 s', '3 min 5 s', '1 h 2 min'; '?' for None."""
    if seconds is None:
        return "?"
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def prompts(prompt_a: str, prompt_b: str) -> str:
    return f"**{safe(prompt_a)}** → **{safe(prompt_b)}**"


def path_prompts(request) -> list[str]:
    """The prompts a job's morph goes through."""
    return list(request.prompts)


def title(request) -> str:
    """What a job morphs, for every message about it: ``**a dog** → **a cat**``; a chain names every prompt
    (``→ **a dog**`` again at the end when it loops); a 🔍 refine adds the part of the path it fills."""
    names = path_prompts(request)
    limit = 200 if len(names) == 2 else 100
    text = " → ".join(f"**{safe(p, limit)}**" for p in names + names[:1] * bool(request.loop))
    if request.t_start is not None:
        text += f" (🔍 t {request.t_start:.3f}–{request.t_end:.3f})"
    return text


def short_segment(request, index: int, limit: int = 12) -> str:
    """``dog→cat``: segment ``index`` of a chain for a button label, each prompt by what sets it apart from the
    others (:func:`distinct_words`) cut to ``limit`` characters."""
    names = distinct_words(path_prompts(request))
    a, b = names[index % len(names)], names[(index + 1) % len(names)]
    return f"{clip(a, limit)}→{clip(b, limit)}"


def distinct_words(names: list[str]) -> list[str]:
    """Each prompt without the words every prompt starts or ends with: ``a photo of a dog, in snow`` and
    ``a photo of a cat, in snow`` → ``dog,`` and ``cat,`` (so short labels still tell them apart). A prompt keeps
    at least one word."""
    words = [n.split() for n in names]

    def common(ws) -> int:  # leading words all of ``ws`` share, leaving each at least one
        n, keep = 0, min(len(w) for w in ws) - 1
        while n < keep and len({w[n] for w in ws}) == 1:
            n += 1
        return n

    head = common(words)
    tail = common([w[head:][::-1] for w in words])
    return [" ".join(w[head:len(w) - tail]) for w in words]


def queued_text(job_id: int, request, user_id: int, position: int | None, paused: bool = False) -> str:
    where = f"position **{position}** in the queue" if position else "waiting in the queue"
    extra = " (queue paused by a server admin)" if paused else ""
    return clip(f"🕓 Morph job #{job_id} queued for {user(user_id)}: {title(request)}, "
                f"{request.frames} frames. {where.capitalize()}{extra}.")


def rendering_text(job_id: int, request, user_id: int, progress=None, eta_s: float | None = None) -> str:
    """Status while rendering; ``progress`` is a :class:`morph.Progress` or None (just started)."""
    head = f"🎨 Morph job #{job_id} for {user(user_id)}: {title(request)} — rendering"
    if progress is None:
        return clip(head + ", loading…")
    pct = int(round(100 * max(0.0, min(1.0, progress.fraction))))
    parts = [f"{progress.stage}", f"frames {progress.frames_done}/{progress.frames_total}"]
    if progress.stage == "denoise" and progress.steps:
        parts.append(f"step {progress.step}/{progress.steps}")
    parts.append(f"{pct}%")
    if eta_s is not None:
        parts.append(f"ETA {duration(eta_s)}")
    bar = progress_bar(progress.fraction)
    return clip(f"{head}\n{bar} " + " · ".join(parts))


def progress_bar(fraction: float, width: int = 16) -> str:
    filled = int(round(width * max(0.0, min(1.0, fraction))))
    return "▰" * filled + "▱" * (width - filled)


#: The private answer to any interaction while the database is down, slow or locked (nothing was done).
QUEUE_UNAVAILABLE = ("⏳ The morph queue is unavailable for a moment (its database is not answering). Nothing was "
                     "queued or changed; try again in a minute.")


def delivered_text(job_id: int, request, user_id: int, link: str | None) -> str:
    where = f": {link}" if link else " below."
    return clip(f"✅ Morph job #{job_id} for {user(user_id)} ({title(request)}) is done{where}")


def failed_text(job_id: int, reason: str | None) -> str:
    return clip(f"⚠️ Morph job #{job_id} failed: {safe(reason or 'unknown error', 1500)}")


def cancelled_text(job_id: int, by_user_id: int | None) -> str:
    return clip(f"🚫 Morph job #{job_id} was cancelled by {user(by_user_id)}.")


def smoothness(result: JobResult) -> str:
    """'smoothness 0.93 (1 − Gini of neighbour distances; 1 = perfectly even), largest jump 1.4× the mean'."""
    return f"smoothness {result.one_minus_gini:.2f}, largest jump {result.max_over_mean:.1f}× the mean"


#: What the result says when an MP4 was asked for and a GIF came instead (the reason, which may name
#: the server's paths, is in the log only).
MP4_FALLBACK = ("No MP4 this time: the video encoder is missing or failed on the bot's side (the details "
                "are in its log), so this is a GIF.")


def result_text(job_id: int, request, user_id: int, result: JobResult, note: str | None = None,
                refined_from: int | None = None) -> str:
    """The result message; it starts with RESULT_MARKER (exactly-once delivery and reactions rely on it).
    ``refined_from``: the job whose two frames this 🔍 refine fills in."""
    k = len(result.candidates)
    lines = [RESULT_MARKER.format(job=job_id) + f" for {user(user_id)}: {title(request)}"]
    if refined_from is not None:
        lines.append(f"🔍 More frames between two neighbouring frames of morph job #{int(refined_from)}.")
    meta = [f"{result.frame_count} frames", f"seed {request.seed}", smoothness(result),
            f"rendered in {duration(result.seconds)}"]
    lines.append(" · ".join(meta))
    if k:
        lines.append(f"Pick the in-between you like: buttons 1–{k} (candidates on the sheet), reactions "
                     f"{KEYCAPS[0]}–{KEYCAPS[min(k, len(KEYCAPS)) - 1]}, or any frame from the menu; "
                     "🔍 the refine menu renders more frames between two neighbours.")
    parts = candidate_parts(request, result)
    if len(parts) > 1:
        lines.append("Candidates by part: " + ", ".join(
            f"{first}–{last} {title_of_segment(request, index)}" if first != last
            else f"{first} {title_of_segment(request, index)}" for index, first, last in parts))
    for anim in result.animations:
        for w in anim.reductions:
            lines.append(f"{anim.kind.upper()} shrunk to fit the upload limit: {safe(w, 100)}")
    if result.fell_back:
        lines.append(MP4_FALLBACK)
    for w in result.warnings:
        lines.append(f"Note: {safe(w, 200)}")
    if note:
        lines.append(safe(note, 300))
    return clip("\n".join(lines))


def title_of_segment(request, index: int) -> str:
    """``**a dog** → **a cat**``: segment ``index`` of the job's path (the last one of a loop goes back to
    the first prompt)."""
    names = path_prompts(request)
    return prompts(names[index % len(names)], names[(index + 1) % len(names)])


def candidate_parts(request, result: JobResult) -> list[tuple[int, int, int]]:
    """``(segment index, first, last)`` candidate numbers (1-based, as on the buttons) of each segment
    of the result that offers candidates, in path order."""
    out, n = [], 0
    for seg in result.segments:
        count = len(seg.candidates)
        if count:
            out.append((seg.index, n + 1, n + count))
            n += count
    return out


def pick_text(job_id: int, frame: int, frame_count: int | None, picker_id: int,
              candidate: int | None = None) -> str:
    which = f"candidate {candidate} (frame {frame + 1}" if candidate else f"frame {frame + 1}"
    of = f" of {frame_count}" if frame_count else ""
    which += f"{of})" if candidate else of
    return clip(f"🖼️ {user(picker_id)} picked {which} from morph job #{job_id}.")


def choose_select_frames(frame_count: int, candidates: list[int] | None = None,
                         limit: int = SELECT_LIMIT) -> list[int]:
    """Up to ``limit`` frame indices for the select menu, ascending.

    All frames when they fit; otherwise the first, the last, every candidate, and the rest evenly spaced
    over the whole morph (so the menu spans it from start to end without gaps larger than needed).
    """
    if frame_count <= 0:
        return []
    if frame_count <= limit:
        return list(range(frame_count))
    chosen = {0, frame_count - 1}
    for c in sorted(set(c for c in (candidates or []) if 0 <= c < frame_count)):
        if len(chosen) < limit:
            chosen.add(c)
    free = limit - len(chosen)
    rest = [i for i in range(frame_count) if i not in chosen]
    if free > 0:  # evenly spaced over the frames not yet chosen (len(rest) > free here)
        step = len(rest) / free
        chosen.update(rest[int((i + 0.5) * step)] for i in range(free))
    return sorted(chosen)[:limit]


def frame_label(frame: int, frame_count: int, ts: list[float] | None, candidates: list[int] | None) -> str:
    label = f"Frame {frame + 1}/{frame_count}"
    if ts and frame < len(ts):
        label += f" (t={float(ts[frame]):.2f})"
    if candidates and frame in candidates:
        label += f" ★ candidate {candidates.index(frame) + 1}"
    return label[:100]


def gap_label(gap: int, ts: list[float]) -> str:
    """A 🔍 refine menu option: the gap between frames ``gap`` and ``gap + 1`` (0-based) and its path positions."""
    return f"Frames {gap + 1}–{gap + 2} (t {float(ts[gap]):.3f}–{float(ts[gap + 1]):.3f})"[:100]


def queue_list_text(rows: list[tuple[int, str, object, int | None]]) -> str:
    """``rows``: (job id, state, request, position) for /morph-queue."""
    if not rows:
        return "You have no queued or running morph jobs."
    lines = ["Your morph jobs:"]
    for job_id, state, request, pos in rows:
        where = f"position {pos}" if pos else state
        lines.append(f"• #{job_id} {title(request)}: {where}")
    return clip("\n".join(lines))
