"""Every text the bot shows in Discord, as pure functions (no network), so they can be tested.

Rules every function here keeps:
- user text (prompts, error messages that quote it) goes through :func:`safe`, which defuses mentions,
  markdown and links, so nothing a user typed can ping, format or become a clickable link with a preview
  (the bot also sends with ``AllowedMentions.none()`` as a second guard);
- people are named with ``<@id>``: Discord shows the name, and AllowedMentions.none() keeps it silent;
- every content string stays within Discord's 2,000 characters (:func:`clip`);
- every text is written in English through the catalogue (:mod:`bot.i18n`: ``tr._("… {job} …", job=…)``,
  ``tr.ngettext`` for counts) and shown in the language of the ``locale`` argument: the member's
  (``interaction.locale``) for private answers, the job's (``Job.language``, the server's) for public posts.
  ``make messages`` puts a new text into every catalogue (README, *Languages*).
"""
from __future__ import annotations

import re

import discord

from bot.i18n import N_, Text, text
from bot.jobs import Failure, Refusal, Refused, read_failure
from bot.result import SELECT_LIMIT as SELECT_LIMIT  # re-exported: views and tests read them here
from bot.result import JobResult
from bot.result import choose_select_frames as choose_select_frames
from bot.uploads import Fetch
from bot.validation import LINK_RE
from morph.images import PictureError, Problem
from morph.request import NOTICES, PROBLEMS, Invalid, Notice

MAX_CONTENT = 2000
KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣")

#: The marker every result message starts with. Delivery searches the channel for it to avoid posting a
#: result twice after a crash (see bot/delivery.py), and reactions use it to find the job of a message.
#: (:func:`result_marker`: ``🎞️ Morph job #12``, ``🎞️ モーフ #12``…: the words before ``#`` are the language's)
RESULT_MARKER_RE = re.compile(r"^🎞️ [^#\n]{1,40}#(\d+)\b")

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


def user(user_id: int | None, locale: object = None) -> str:
    return f"<@{int(user_id)}>" if user_id else text(locale)._("someone")


def duration(seconds: float | None, locale: object = None) -> str:
    """'2.4 s', '45 s', '3 min 5 s', '1 h 2 min' (``2.4秒``, ``3分5秒`` in Japanese); '?' for None."""
    if seconds is None:
        return "?"
    tr = text(locale)
    if seconds < 9.95:
        return tr._("{seconds} s", seconds=tr.number(max(0.0, seconds), 1))
    s = int(round(seconds))
    if s < 60:
        return tr._("{seconds} s", seconds=tr.number(s))
    if s < 3600:
        if s % 60:
            return tr._("{minutes} min {seconds} s", minutes=tr.number(s // 60), seconds=tr.number(s % 60))
        return tr._("{minutes} min", minutes=tr.number(s // 60))
    return tr._("{hours} h {minutes} min", hours=tr.number(s // 3600), minutes=tr.number(s % 3600 // 60))


def prompts(prompt_a: str, prompt_b: str) -> str:
    return f"**{safe(prompt_a)}** → **{safe(prompt_b)}**"


#: A picture end without a description (``/morph-images``), as its title names it
PICTURE_ENDS = (N_("first picture"), N_("second picture"))


def path_prompts(request, locale: object = None) -> list[str]:
    """The prompts a job's morph goes through;
    a picture end (``/morph-images``) is ``🖼️`` and its description, or ``🖼️ first picture``."""
    names = list(request.prompts)
    for i, image in enumerate(getattr(request, "images", None) or []):
        if image is not None and i < len(names):
            names[i] = f"🖼️ {names[i] or text(locale)._(PICTURE_ENDS[min(i, 1)])}"
    return names


def title(request, locale: object = None) -> str:
    """What a job morphs, for every message about it: ``**a dog** → **a cat**``; a chain names every prompt
    (``→ **a dog**`` again at the end when it loops); a 🔍 refine adds the part of the path it fills."""
    names = path_prompts(request, locale)
    limit = 200 if len(names) == 2 else 100
    text_ = " → ".join(f"**{safe(p, limit)}**" for p in names + names[:1] * bool(request.loop))
    if request.t_start is not None:
        text_ += f" (🔍 t {request.t_start:.3f}–{request.t_end:.3f})"
    return text_


def short_segment(request, index: int, limit: int = 12, locale: object = None) -> str:
    """``dog→cat``: segment ``index`` of a chain for a button label, each prompt by what sets it apart from the
    others (:func:`distinct_words`) cut to ``limit`` characters."""
    names = distinct_words(path_prompts(request, locale))
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


def queued_text(job_id: int, request, user_id: int, position: int | None, paused: bool = False,
                locale: object = None) -> str:
    tr = text(locale)
    frames = tr.ngettext("{count} frame", "{count} frames", request.frames)
    if position:
        where = tr._("Position **{position}** in the queue", position=tr.number(position))
    else:
        where = tr._("Waiting in the queue")
    if paused:
        where = tr._("{where} (queue paused by a server admin)", where=where)
    return clip(tr._("🕓 Morph job #{job} queued for {user}: {title}, {frames}. {where}.", job=job_id,
                     user=user(user_id, locale), title=title(request, locale), frames=frames, where=where))


#: the stages of a render (:class:`morph.Progress` ``stage``) as a member reads them
STAGES = {"load": N_("loading"), "encode": N_("encoding the prompts"), "pace": N_("pacing the frames"),
          "denoise": N_("denoising"), "decode": N_("decoding"), "output": N_("writing the animation")}


def rendering_text(job_id: int, request, user_id: int, progress=None, eta_s: float | None = None,
                   locale: object = None) -> str:
    """Status while rendering; ``progress`` is the job's :class:`bot.result.JobProgress` (or a
    :class:`morph.Progress`, which has the same fields) or None (just started)."""
    tr = text(locale)
    head = tr._("🎨 Morph job #{job} for {user}: {title} — rendering", job=job_id, user=user(user_id, locale),
                title=title(request, locale))
    if progress is None:
        return clip(tr._("{head}, loading…", head=head))
    pct = int(round(100 * max(0.0, min(1.0, progress.fraction))))
    stage = STAGES.get(progress.stage)
    parts = [tr._(stage) if stage else safe(str(progress.stage), 40),
             tr._("frames {done}/{total}", done=tr.number(progress.frames_done),
                  total=tr.number(progress.frames_total))]
    if progress.stage == "denoise" and progress.steps:
        parts.append(tr._("step {step}/{steps}", step=tr.number(progress.step), steps=tr.number(progress.steps)))
    parts.append(tr._("{percent}%", percent=pct))
    if eta_s is not None:
        parts.append(tr._("ETA {duration}", duration=duration(eta_s, locale)))
    bar = progress_bar(progress.fraction)
    return clip(f"{head}\n{bar} " + " · ".join(parts))


def progress_bar(fraction: float, width: int = 16) -> str:
    filled = int(round(width * max(0.0, min(1.0, fraction))))
    return "▰" * filled + "▱" * (width - filled)


#: The private answer to any interaction while the database is down, slow or locked (nothing was done).
QUEUE_UNAVAILABLE = N_("⏳ The morph queue is unavailable for a moment (its database is not answering). Nothing "
                       "was queued or changed; try again in a minute.")


def delivered_text(job_id: int, request, user_id: int, link: str | None, locale: object = None) -> str:
    tr = text(locale)
    values = dict(job=job_id, user=user(user_id, locale), title=title(request, locale), link=link)
    if link:
        return clip(tr._("✅ Morph job #{job} for {user} ({title}) is done: {link}", **values))
    return clip(tr._("✅ Morph job #{job} for {user} ({title}) is done below.", **values))


def failed_text(job_id: int, error: str | None, locale: object = None) -> str:
    """``⚠️ Morph job #… failed: …`` with the job's stored failure (``Job.error``) worded by :func:`failure_text`."""
    tr = text(locale)
    return clip(tr._("⚠️ Morph job #{job} failed: {reason}", job=job_id, reason=failure_text(error, locale)))


def failure_text(error: str | None, locale: object = None) -> str:
    """Why a job failed, in the language of ``locale``, from what the store keeps (:func:`bot.jobs.failure`).
    A text of an older version (or of another writer) is shown as it is, translated if it is a catalogue text."""
    tr = text(locale)
    kind, facts = read_failure(error)
    match kind:
        case None if facts:
            return safe(tr._(str(facts["text"])), 1500)
        case Failure.OUT_OF_MEMORY:
            return tr._("the GPU ran out of memory on this morph; try fewer frames or a smaller size.")
        case Failure.RENDERER:
            return tr._("the renderer failed on the bot's side (the details are in the bot's log).")
        case Failure.MODEL_LOAD:
            return tr._("the bot's model could not be loaded; the bot's operator can see why in its log.")
        case Failure.CRASHED:
            n = int(facts.get("attempts") or 0)
            return tr.ngettext("the renderer crashed {count} time on this job", "the renderer crashed {count} times "
                               "on this job", n)
        case Failure.INVALID:
            return invalid_text(str(facts.get("code")), facts.get("facts") or {}, locale)
        case Failure.REFUSED:
            try:
                refused = Refused(Refusal(facts.get("refusal")), **(facts.get("values") or {}))
            except ValueError:  # a kind of another version
                return safe(str(facts.get("refusal")), 100)
            return refusal_text(refused, locale)
        case Failure.PICTURE:
            problem = str(facts.get("kind"))
            known = {k.value: k for k in (*Problem, *Fetch)}
            return picture_text(PictureError(known.get(problem, problem), str(facts.get("what") or "picture"),
                                             **(facts.get("facts") or {})), locale)
        case Failure.ENGINE:
            return safe(str(facts.get("message", "")), 1500)
        case Failure.NOT_POSTED:
            return not_posted_text(tr, facts.get("status"), facts.get("code"), str(facts.get("detail") or ""))
    return tr._("unknown error")


#: Discord's error codes for a result it would not take (https://discord.com/developers/docs/topics/opcodes-and-status-codes)
NO_ACCESS_CODES = (50001, 50013)  # Missing Access, Missing Permissions
TOO_LARGE_CODES = (40005,)        # Request entity too large


def not_posted_text(tr: Text, status: object, code: object, detail: str) -> str:
    """Why Discord would not take a job's result (its status, error code and own words, which are English)."""
    detail = safe(detail, 300)
    if code in NO_ACCESS_CODES or status == 403:
        return tr._("could not post the result: the bot may not post or attach files in this channel (Discord: "
                    "{detail}).", detail=detail)
    if code in TOO_LARGE_CODES or status == 413:
        return tr._("could not post the result: its files are over this channel's upload limit.")
    if status:
        return tr._("could not post the result: Discord answered {status} ({detail}).", status=status,
                    detail=detail)
    return tr._("could not post the result (the details are in the bot's log).")


def cancelled_text(job_id: int, by_user_id: int | None, locale: object = None) -> str:
    tr = text(locale)
    return clip(tr._("🚫 Morph job #{job} was cancelled by {user}.", job=job_id, user=user(by_user_id, locale)))


def smoothness(result: JobResult, locale: object = None) -> str:
    """'smoothness 0.93 (1 − Gini of neighbour distances; 1 = perfectly even), largest jump 1.4× the mean'."""
    tr = text(locale)
    return tr._(", ").join([tr._("smoothness {value}", value=tr.number(result.one_minus_gini, 2)),
                            tr._("largest jump {value}× the mean", value=tr.number(result.max_over_mean, 1))])


#: What the result says when an MP4 was asked for and a GIF came instead (the reason, which may name
#: the server's paths, is in the log only).
MP4_FALLBACK = N_("No MP4 this time: the video encoder is missing or failed on the bot's side (the details "
                  "are in its log), so this is a GIF.")


def result_marker(job_id: int, locale: object = None) -> str:
    """How every result message starts (:data:`RESULT_MARKER_RE` finds the job in any language)."""
    return "🎞️ " + text(locale)._("Morph job #{job}", job=job_id)


def result_text(job_id: int, request, user_id: int, result: JobResult, note: str | None = None,
                refined_from: int | None = None, locale: object = None) -> str:
    """The result message; it starts with :func:`result_marker` (exactly-once delivery and reactions rely on
    it). ``refined_from``: the job whose two frames this 🔍 refine fills in."""
    tr = text(locale)
    k = len(result.candidates)
    lines = [tr._("{marker} for {user}: {title}", marker=result_marker(job_id, locale), user=user(user_id, locale),
                  title=title(request, locale))]
    if refined_from is not None:
        lines.append(tr._("🔍 More frames between two neighbouring frames of morph job #{job}.",
                          job=int(refined_from)))
    meta = [tr.ngettext("{count} frame", "{count} frames", result.frame_count), tr._("seed {seed}", seed=request.seed),
            smoothness(result, locale), tr._("rendered in {duration}", duration=duration(result.seconds, locale))]
    lines.append(" · ".join(meta))
    recon = reconstruction_text(result, locale)
    if recon:
        lines.append(recon)
    if k:
        lines.append(tr._("Pick the in-between you like: buttons 1–{k} (candidates on the sheet), reactions "
                          "{first}–{last}, or any frame from the menu; 🔍 the refine menu renders more frames "
                          "between two neighbours.", k=k, first=KEYCAPS[0],
                          last=KEYCAPS[min(k, len(KEYCAPS)) - 1]))
    parts = candidate_parts(request, result)
    if len(parts) > 1:
        lines.append(tr._("Candidates by part: {parts}", parts=tr._(", ").join(
            f"{first}–{last} {title_of_segment(request, index, locale)}" if first != last
            else f"{first} {title_of_segment(request, index, locale)}" for index, first, last in parts)))
    for anim in result.animations:
        if anim.reductions:
            lines.append(tr._("{format} shrunk to fit the upload limit: {detail}", format=anim.kind.upper(),
                              detail=_listed(tr, (notice_text(r, locale) for r in anim.reductions))))
    if result.fell_back:
        lines.append(tr._(MP4_FALLBACK))
    for w in result.warnings:
        lines.append(tr._("Note: {detail}", detail=notice_text(w, locale)))
    if note:
        lines.append(safe(note, 300))
    return clip("\n".join(lines))


def reconstruction_text(result: JobResult, locale: object = None) -> str | None:
    """How closely a picture morph's end frames reproduce the uploads (PSNR in dB against each picture at the
    model's size, :mod:`morph.inversion`); None when no picture end is among the frames."""
    tr = text(locale)
    first, second = (tuple(result.reconstruction) + (None, None))[:2]

    def db(value: float) -> str:
        return tr.number(value, 1)

    if first is not None and second is not None:
        return tr._("🖼️ The first frame reproduces the first picture at {first} dB PSNR, the last frame the second "
                    "picture at {second} dB.", first=db(first), second=db(second))
    if first is not None:
        return tr._("🖼️ The first frame reproduces the picture at {db} dB PSNR.", db=db(first))
    if second is not None:
        return tr._("🖼️ The last frame reproduces the second picture at {db} dB PSNR.", db=db(second))
    return None


def sheet_caption(result: JobResult, locale: object = None) -> str:
    """The title over the contact sheet of the candidates (the sheet itself shows only their numbers)."""
    tr = text(locale)
    k = len(result.candidates)
    if not k:
        return tr._("Candidates")
    if len(result.segments) > 1:
        return tr._("Candidates 1–{k} around each part's midpoint", k=k)
    return tr._("Candidates 1–{k} around the midpoint", k=k)


def title_of_segment(request, index: int, locale: object = None) -> str:
    """``**a dog** → **a cat**``: segment ``index`` of the job's path (the last one of a loop goes back to
    the first prompt)."""
    names = path_prompts(request, locale)
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
              candidate: int | None = None, locale: object = None) -> str:
    tr = text(locale)
    values = dict(user=user(picker_id, locale), job=job_id, frame=frame + 1, count=frame_count,
                  candidate=candidate)
    if candidate and frame_count:
        return clip(tr._("🖼️ {user} picked candidate {candidate} (frame {frame} of {count}) from morph job "
                         "#{job}.", **values))
    if candidate:
        return clip(tr._("🖼️ {user} picked candidate {candidate} (frame {frame}) from morph job #{job}.", **values))
    if frame_count:
        return clip(tr._("🖼️ {user} picked frame {frame} of {count} from morph job #{job}.", **values))
    return clip(tr._("🖼️ {user} picked frame {frame} from morph job #{job}.", **values))


def frame_label(frame: int, frame_count: int, ts: list[float] | None, candidates: list[int] | None,
                locale: object = None) -> str:
    tr = text(locale)
    label = tr._("Frame {frame}/{count}", frame=frame + 1, count=frame_count)
    if ts and frame < len(ts):
        label += f" (t={float(ts[frame]):.2f})"
    if candidates and frame in candidates:
        label += " " + tr._("★ candidate {candidate}", candidate=candidates.index(frame) + 1)
    return label[:100]


def gap_label(gap: int, ts: list[float], locale: object = None) -> str:
    """A 🔍 refine menu option: the gap between frames ``gap`` and ``gap + 1`` (0-based) and its path positions."""
    start, end = (format(float(t), ".3f") for t in ts[gap:gap + 2])
    return text(locale)._("Frames {first}–{second} (t {start}–{end})", first=gap + 1, second=gap + 2, start=start,
                          end=end)[:100]


def queue_list_text(rows: list[tuple[int, str, object, int | None]], locale: object = None) -> str:
    """``rows``: (job id, state, request, position) for /morph-queue."""
    tr = text(locale)
    if not rows:
        return tr._("You have no queued or running morph jobs.")
    lines = [tr._("Your morph jobs:")]
    for job_id, state, request, pos in rows:
        where = tr._("position {position}", position=tr.number(pos)) if pos else state_name(tr, state)
        lines.append(f"• #{job_id} {title(request, locale)}: {where}")
    return clip("\n".join(lines))


# ---------------------------------------------------------------------------------------------- refusals
def command(tr: Text, name: str) -> str:
    """``/morph-cancel`` as a member of ``tr``'s language sees the command in their client (its localised name)."""
    return "/" + " ".join(tr._(part) for part in name.split())


#: the command option of a Store setting whose name differs (``/morphadmin limits cooldown:`` sets cooldown_s)
OPTION_OF = {"cooldown_s": "cooldown", "nsfw_allow": "nsfw"}


def option_name(tr: Text, key: str) -> str:
    """A command option as a member sees it in their client (``max_frames``, in Japanese ``最大フレーム数``)."""
    return tr._(OPTION_OF.get(key, key))


def state_name(tr: Text, state: object) -> str:
    """A job state as a member reads it."""
    names = {"queued": tr._("queued"), "running": tr._("rendering"), "rendered": tr._("rendered"),
             "delivered": tr._("delivered"), "failed": tr._("failed"), "cancelled": tr._("cancelled"),
             "withheld": tr._("withheld")}
    return names.get(str(state), safe(str(state), 20))


def _listed(tr: Text, items) -> str:
    return tr._(", ").join(str(i) for i in items)


#: what :mod:`bot.validation` calls the prompts it refuses (``morph.request.PROMPT_NAMES`` and the negative one)
PROMPT_LABELS = {"first prompt": N_("first prompt"), "second prompt": N_("second prompt"),
                 "third prompt": N_("third prompt"), "fourth prompt": N_("fourth prompt"),
                 "negative prompt": N_("negative prompt"), "prompt": N_("prompt")}
MENTION_KINDS = {"user mention": N_("The {what} contains a user mention ({mention}); mentions are not allowed in "
                                    "prompts."),
                 "role mention": N_("The {what} contains a role mention ({mention}); mentions are not allowed in "
                                    "prompts."),
                 "channel mention": N_("The {what} contains a channel mention ({mention}); mentions are not "
                                       "allowed in prompts.")}


def refusal_text(err: Refused, locale: object = None) -> str:
    """What a member reads when the Store (or an action) refuses: ``err``'s kind and facts in the language
    of ``locale``. Values a member typed are made inert (:func:`safe`)."""
    tr = text(locale)
    v = err.values
    job = v.get("job")
    given = safe(str(v.get("value")), 100)
    match err.kind:
        case Refusal.NO_JOB:
            return tr._("There is no morph #{job}.", job=job)
        case Refusal.OTHER_GUILD:
            return tr._("Morph #{job} belongs to another server.", job=job)
        case Refusal.NOT_YOURS if v.get("action") == "delete":
            return tr._("Morph #{job} is not yours; only its author or a server admin can delete it.", job=job)
        case Refusal.NOT_YOURS:
            return tr._("Morph #{job} is not yours; only its author or a server admin can cancel it.", job=job)
        case Refusal.BANNED:
            return tr._("You are banned from using {morph} in this server.", morph=command(tr, "morph"))
        case Refusal.PICK_COOLDOWN:
            return tr._("Slow down: you can pick again in {wait}.", wait=tr.seconds(v["seconds"]))
        case Refusal.NO_FRAMES:
            return tr._("Morph #{job} has no frames to pick ({state}).", job=job, state=state_name(tr, v["state"]))
        case Refusal.NO_SUCH_FRAME:
            return tr._("Morph #{job} has frames 1 to {count}; there is no frame {frame}.", job=job,
                        count=v["count"], frame=safe(str(v["frame"]), 20))
        case Refusal.ALREADY_DELETED:
            return tr._("Morph #{job} was already deleted.", job=job)
        case Refusal.EXPIRED:
            return tr._("Morph #{job} has expired: its frames are no longer stored.", job=job)
        case Refusal.EXPIRED_RETENTION:
            return tr.ngettext("Morph #{job} has expired: its frames were deleted (results are kept {count} day).",
                               "Morph #{job} has expired: its frames were deleted (results are kept {count} days).",
                               int(round(v["days"])), job=job, count=tr.number(v["days"]))
        case Refusal.NOT_ACTIVE:
            return tr._("Morph #{job} is already {state}; only queued or rendering morphs can be cancelled.",
                        job=job, state=state_name(tr, v["state"]))
        case Refusal.CHANNEL_NOT_ALLOWED:
            return tr._("{morph} is not enabled in this channel. Use it in {channels}.", morph=command(tr, "morph"),
                        channels=_listed(tr, (f"<#{int(c)}>" for c in v["channels"])))
        case Refusal.INVALID if "code" in v:
            return invalid_text(str(v["code"]), v.get("facts") or {}, locale)
        case Refusal.INVALID:
            return clip(str(v.get("detail", "")), 1500)
        case Refusal.PICTURES_GONE:
            if v.get("job") is None:
                return tr._("The pictures are no longer kept; upload them again with {command}.",
                            command=command(tr, "morph-images"))
            return tr._("The pictures of morph #{job} are no longer kept; upload them again with {command}.",
                        job=v["job"], command=command(tr, "morph-images"))
        case Refusal.BAD_FORMAT:
            return tr._("{option} must be one of: {choices} (got {value}).", option=option_name(tr, v["option"]),
                        choices=_listed(tr, v["choices"]), value=given)
        case Refusal.USER_QUEUE_FULL:
            return tr.ngettext("You already have {count} morph in the queue ({jobs}); the limit is {limit}. "
                               "Wait for it to finish or cancel it with {cancel}.",
                               "You already have {count} morphs in the queue ({jobs}); the limit is {limit}. "
                               "Wait for one to finish or cancel it with {cancel}.",
                               len(v["jobs"]), jobs=_listed(tr, (f"#{i}" for i in v["jobs"])),
                               limit=tr.number(v["limit"]), cancel=command(tr, "morph-cancel"))
        case Refusal.GUILD_QUEUE_FULL:
            return tr.ngettext("This server's queue is full ({count} morph waiting or rendering; the limit is "
                               "{limit}). Try again in a few minutes.",
                               "This server's queue is full ({count} morphs waiting or rendering; the limit is "
                               "{limit}). Try again in a few minutes.", v["count"], limit=tr.number(v["limit"]))
        case Refusal.BOT_QUEUE_FULL:
            return tr.ngettext("The bot's queue is full ({count} morph waiting or rendering across all servers). "
                               "Try again in a few minutes.",
                               "The bot's queue is full ({count} morphs waiting or rendering across all servers). "
                               "Try again in a few minutes.", v["count"])
        case Refusal.COOLDOWN:
            return tr._("Slow down: you can start another morph in {wait}.", wait=tr.seconds(v["seconds"]))
        case Refusal.LIMIT_ABOVE_CAP:
            return tr._("{key} can be at most {cap} on this bot (the operator's limit); a server can only make "
                        "it stricter.", key=option_name(tr, v["key"]), cap=tr.number(v["cap"]))
        case Refusal.COOLDOWN_BELOW_CAP:
            return tr._("{option} must be at least {cap} s on this bot (the operator's limit); a server can only "
                        "make it longer.", option=option_name(tr, "cooldown_s"), cap=tr.number(v["cap"]))
        case Refusal.NOTHING_TO_CHANGE:
            return tr._("Nothing to change: give at least one limit.")
        case Refusal.UNKNOWN_LIMIT:
            return tr._("Unknown limit {key}; limits are: {keys}.", key=safe(str(v["key"]), 40),
                        keys=_listed(tr, (option_name(tr, k) for k in v["keys"])))
        case Refusal.LIMIT_RANGE:
            return tr._("{key} must be a whole number between {low} and {high} (got {value}).",
                        key=option_name(tr, v["key"]),
                        low=tr.number(v["low"]), high=tr.number(v["high"]), value=given)
        case Refusal.COOLDOWN_RANGE:
            return tr._("{option} must be between 0 and 86400 seconds (got {value}).",
                        option=option_name(tr, "cooldown_s"), value=given)
        case Refusal.BANNED_WORDS_TOO_MANY:
            return tr._("{option} takes at most {words} words of at most {chars} characters each.",
                        option=option_name(tr, "banned_words"), words=tr.number(v["words"]),
                        chars=tr.number(v["chars"]))
        case Refusal.CHANNEL_IDS:
            return tr._("{option} must be channel ids (got {value}).", option=option_name(tr, "allowed_channels"),
                        value=given)
        case Refusal.PROMPT_MENTION:
            what = tr._(PROMPT_LABELS.get(v["what"], "prompt"))
            template = MENTION_KINDS.get(v.get("kind", ""))
            if template:
                return tr._(template, what=what, mention=v["mention"])
            return tr._("The {what} contains {mention}; mentions are not allowed in prompts.", what=what,
                        mention=v["mention"])
        case Refusal.PROMPT_LINK:
            return tr._("The {what} contains a link (http://…, www.…, or a name like example.com/…); links are "
                        "not allowed in prompts.", what=tr._(PROMPT_LABELS.get(v["what"], "prompt")))
        case Refusal.PROMPT_BANNED:
            return tr._("The {what} contains a word this server does not allow. Rephrase it and try again.",
                        what=tr._(PROMPT_LABELS.get(v["what"], "prompt")))
        case Refusal.FRAMES_OVER_CAP:
            return tr._("{frames} must be at most {cap} on this server (got {value}).",
                        frames=option_name(tr, "frames"), cap=tr.number(v["cap"]), value=given)
        case Refusal.SAFETY_OFF:
            return tr._("This bot's image safety check is turned off, so morphs work only in age-restricted "
                        "channels. Use {morph} in a channel marked age-restricted.", morph=command(tr, "morph"))
        case Refusal.PROMPT_BLOCKED:
            return tr._("The {what} contains a word this bot does not allow. Rephrase it and try again.",
                        what=tr._(PROMPT_LABELS.get(v["what"], "prompt")))
        case Refusal.WITHHELD_FRAME:
            return tr._("Frame {frame} of morph #{job} was withheld by the safety filter; it cannot be picked.",
                        job=job, frame=safe(str(v["frame"]), 20))
        case Refusal.WITHHELD_GAP:
            return tr._("Frames {first} and {second} of morph #{job}: one of them was withheld by the safety "
                        "filter, so the gap between them cannot be refined.", job=job, first=tr.number(v["first"]),
                        second=tr.number(v["second"]))
        case Refusal.WITHHELD_REROLL:
            return tr._("The safety filter withheld frames of morph #{job}, so it cannot be rerolled; change the "
                        "prompts and use {morph} instead.", job=job, morph=command(tr, "morph"))
        case Refusal.UPLOAD_FLAGGED:
            return tr._("The {what} was flagged by the bot's image safety filter, so nothing was queued. The filter "
                        "makes mistakes; try another picture. In an age-restricted channel a server admin may "
                        "allow unfiltered results ({limits} {nsfw}:allow).",
                        what=tr._(PICTURE_LABELS.get(v["what"], "picture")), limits=command(tr, "morphadmin limits"),
                        nsfw=option_name(tr, "nsfw_allow"))
        case Refusal.SAFETY_UNAVAILABLE:
            return tr._("The bot's image safety check is not available right now, so pictures cannot be taken; "
                        "try again later.")
        case Refusal.NO_RESULT_TO_REPORT:
            return tr._("Morph #{job} has no result to report.", job=job)
        case Refusal.NSFW_ALLOW_VALUE:
            return tr._("{option} must be allow or deny (got {value}).", option=option_name(tr, "nsfw_allow"),
                        value=given)
        case Refusal.REPORT_HIDE_RANGE:
            return tr._("{option} must be a whole number between 1 and 1000 (got {value}).",
                        option=option_name(tr, "report_hide_after"), value=given)
        case Refusal.BAD_LANGUAGE:
            return tr._("{option} must be one of: {choices} (got {value}).", option=option_name(tr, "language"),
                        choices=_listed(tr, v["choices"]), value=given)
    return safe(str(err), 300)  # pragma: no cover - every kind is handled above


PICTURE_LABELS = {"first picture": N_("first picture"), "second picture": N_("second picture"),
                  "picture": N_("picture")}
#: The taken formats (morph.images.FORMAT_NAMES) as the member's language lists them.
FORMAT_NAMES = N_("PNG, JPEG, WebP or GIF")


def picture_text(err: PictureError, locale: object = None) -> str:
    """Why an upload was refused (:mod:`bot.uploads`, :mod:`morph.images`): ``err``'s kind and facts in the
    language of ``locale``."""
    tr = text(locale)
    v = err.facts
    what = tr._(PICTURE_LABELS.get(err.what, "picture"))
    match err.kind:
        case Problem.OVER_BYTES if "size_mib" in v:
            return tr._("The {what} is {size} MiB; the limit is {limit} MiB.", what=what,
                        size=tr.number(float(v["size_mib"]), 1), limit=tr.number(float(v["limit_mib"])))
        case Problem.OVER_BYTES:
            return tr._("The {what} is over {limit} MiB; use a smaller file.", what=what,
                        limit=tr.number(float(v["limit_mib"])))
        case Problem.EMPTY:
            return tr._("The {what} is an empty file.", what=what)
        case Problem.NOT_A_PICTURE if v.get("content_type"):
            return tr._("The {what} is not a picture (Discord reports it as {type}); attach a {formats} picture.",
                        what=what, type=safe(str(v["content_type"]), 60), formats=tr._(FORMAT_NAMES))
        case Problem.NOT_A_PICTURE:
            return tr._("The {what} is not a {formats} picture (judged by its content, not its name); use one of "
                        "those.", what=what, formats=tr._(FORMAT_NAMES))
        case Problem.DAMAGED:
            return tr._("The {what} is damaged and cannot be read; try it again or save it anew.", what=what)
        case Problem.OVER_PIXELS if "width" in v:
            return tr._("The {what} is {width}×{height} pixels; the limit is {limit}×{limit}. Use a smaller "
                        "picture.", what=what, width=v["width"], height=v["height"], limit=v["limit"])
        case Problem.OVER_PIXELS:
            return tr._("The {what} is too large: at most {limit}×{limit} pixels.", what=what, limit=v["limit"])
        case Problem.UNDER_PIXELS:
            return tr._("The {what} is only {width}×{height} pixels; give one at least {limit}×{limit}.",
                        what=what, width=v["width"], height=v["height"], limit=v["limit"])
        case Fetch.NO_URL:
            return tr._("The {what} has no address to download it from; attach it again.", what=what)
        case Fetch.HTTP:
            return tr._("Could not download the {what} from Discord (HTTP {status}); attach it again.", what=what,
                        status=v["status"])
        case Fetch.TIMEOUT:
            return tr._("The {what} took longer than {wait} to download; try again.", what=what,
                        wait=tr.seconds(float(v["seconds"])))
        case Fetch.NETWORK:
            return tr._("Could not download the {what} from Discord ({error}); try again.", what=what,
                        error=safe(str(v["error"]), 60))
    return safe(str(err), 300)  # a file on the bot's own disk (the command line's kinds): as the engine says it


#: What the engine's facts (:class:`morph.request.Invalid`) call a setting (``name``) that is no option of a
#: command; the options are called what the member's client calls them (:func:`option_name`).
SETTING_NAMES = {"size": N_("size"), "steps": N_("steps"), "guidance": N_("guidance"), "scheduler": N_("scheduler"),
                 "candidates": N_("candidates"), "interpolation": N_("interpolation"),
                 "second seed": N_("second seed")}


def _fact(tr: Text, key: str, value: object) -> str:
    """One fact of an engine refusal as a member reads it: a prompt's or a setting's name in their language,
    numbers written the language's way, lists as a list, anything given made inert."""
    if key == "what":
        return tr._(PROMPT_LABELS.get(str(value), "prompt"))
    if key == "name":
        return option_name(tr, str(value))
    if isinstance(value, (list, tuple)):
        return _listed(tr, (safe(str(v), 40) for v in value))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in DIMENSIONS:
        return tr.number(value)
    return safe(str(value), 100)


#: Facts that are picture sizes in pixels (``512px``, ``1024x768``): written as they are, never ``1,024``.
DIMENSIONS = frozenset({"size", "width", "height", "suggestion"})


def invalid_text(code: str, facts: dict, locale: object = None) -> str:
    """The engine's refusal :class:`morph.request.Invalid` (its ``code`` and ``facts``, as raised or as
    stored for a failed job) in the language of ``locale``."""
    tr = text(locale)
    template = PROBLEMS.get(code)
    if template is None:  # a problem of another version of the engine
        return tr._("the morph's settings are not valid ({code}).", code=safe(code, 40))
    return tr._(template, **{k: _fact(tr, k, v) for k, v in facts.items()})


def notice_text(notice: Notice, locale: object = None) -> str:
    """The engine's :class:`morph.request.Notice` about a render (a warning, an animation's reduction) in the
    language of ``locale``; the words of a prompt it quotes are kept as typed, made inert."""
    tr = text(locale)
    return clip(tr._(NOTICES[notice.code], **{k: _fact(tr, k, v) for k, v in notice.facts.items()}), 300)


def error_text(err: Exception, locale: object = None) -> str:
    """``❌ …`` for a refused request or an invalid one in the language of ``locale``: a :class:`Refused`, a
    refused picture (:class:`PictureError`), the engine's typed refusal :class:`~morph.request.Invalid`; any
    other :class:`MorphError` as it says it."""
    if isinstance(err, Refused):
        body = refusal_text(err, locale)
    elif isinstance(err, PictureError):
        body = picture_text(err, locale)
    elif isinstance(err, Invalid):
        body = invalid_text(err.code, err.facts, locale)
    else:
        body = clip(str(err), 1500)
    return clip(f"❌ {body}")


# ---------------------------------------------------------------------------- content safety (bot.safety)
# (the texts the worker and the store show, which must not import discord.py, are in bot/safety.py)
def withheld_status_text(job_id: int, locale: object = None) -> str:
    """The public status message of a job the safety filter kept from the channel: nothing about why."""
    return text(locale)._("🛡️ Morph job #{job} was withheld by the safety filter.", job=job_id)


def withheld_author_text(job_id: int, request, flagged: int, frame_count: int, locale: object = None) -> str:
    """What the author is told privately about a withheld job."""
    tr = text(locale)
    return clip(tr.ngettext(
        "🛡️ Your morph job #{job} ({title}) was not posted: the image safety filter flagged {count} of its {total} "
        "frame (or its midpoint frames), so nothing of it is shown and its files are deleted. The filter makes "
        "mistakes; if you think this is one, try other prompts or ask a server admin. In an age-restricted "
        "channel an admin may allow unfiltered results ({limits} {nsfw}:allow).",
        "🛡️ Your morph job #{job} ({title}) was not posted: the image safety filter flagged {count} of its {total} "
        "frames (or its midpoint frames), so nothing of it is shown and its files are deleted. The filter makes "
        "mistakes; if you think this is one, try other prompts or ask a server admin. In an age-restricted "
        "channel an admin may allow unfiltered results ({limits} {nsfw}:allow).",
        frame_count, job=job_id, title=title(request, locale), count=tr.number(flagged), total=tr.number(frame_count),
        limits=command(tr, "morphadmin limits"), nsfw=option_name(tr, "nsfw_allow")))


def report_thanks_text(job_id: int, repeat: bool, locale: object = None) -> str:
    tr = text(locale)
    if repeat:
        return tr._("🚩 You already reported morph #{job}; the server's admins can see it.", job=job_id)
    return tr._("🚩 Thanks: morph #{job} is reported to this server's admins ({reports}).", job=job_id,
                reports=command(tr, "morphadmin reports"))


def report_hidden_text(job_id: int, count: int, locale: object = None) -> str:
    tr = text(locale)
    return tr.ngettext("🚩 Morph job #{job} was hidden after {count} report; the server's admins can review it.",
                       "🚩 Morph job #{job} was hidden after {count} reports; the server's admins can review it.",
                       count, job=job_id)


def reports_list_text(rows: list[dict], locale: object = None) -> str:
    """``rows``: {job_id, user_id (author), reports, last_at, hidden} for /morphadmin reports."""
    tr = text(locale)
    if not rows:
        return tr._("No reported morphs in this server.")
    lines = [tr._("Reported morphs (newest report first):")]
    for r in rows:
        reports = tr.ngettext("{count} report", "{count} reports", int(r["reports"]))
        if r.get("hidden"):
            reports = tr._("{reports} (hidden)", reports=reports)
        lines.append("• " + tr._("#{job} by {user}: {reports}", job=int(r["job_id"]), user=user(r["user_id"], locale),
                                 reports=reports))
    lines.append(tr._("Delete one with {delete} {job}:N, ban its author with {ban}.",
                      delete=command(tr, "morphadmin delete"), job=tr._("job"), ban=command(tr, "morphadmin ban")))
    return clip("\n".join(lines))
