"""Buttons and the select menus of a job, as ``discord.ui.DynamicItem`` so they work after a restart.

Components only: what a click does is a use case of :mod:`bot.actions`, which a component reaches as
``interaction.client.actions`` (:class:`JobActions`; the bot sets it up before registering the
components). Every component carries its state in its ``custom_id`` (job number, the job's random token,
frame index); the rest comes from the database. The classes are registered once with
``bot.add_dynamic_items(*DYNAMIC_ITEMS)``.

Custom ids (``<job>`` is ``<number>-<token>``):

=============================  ================================================================
``morph:pick:<job>:<frame>``   button 1..K on a result: reply with that frame (0-based index)
``morph:frames:<job>``         select on a result: reply with the chosen frame (value = index)
``morph:refine:<job>``         🔍 select on a result: more frames between two neighbouring frames (value =
                               the first frame's index), queued for the clicker, posted as a reply
``morph:reroll:<job>``         same prompts, new random seed, queued for the clicker
``morph:delete:<job>``         delete the result message (author, guild admin or bot owner)
``morph:report:<job>``         🚩 report the result to the server's admins (any member, once)
``morph:cancel:<job>``         cancel a queued/running job (button on the status message)
=============================  ================================================================

A component acts only when it comes from its job's own message, guild and channel with the job's token
(:meth:`bot.jobs.Job.came_from`, checked by ``Actions.own_job``): job numbers start at 1 again in a new
database, and anyone can send any custom id.

Labels and placeholders are in the job's language (``Job.language``, the server's): the message is public.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot import messages as msg
from bot.db import DatabaseUnavailable
from bot.i18n import N_, text
from bot.interactions import answer_unavailable, ephemeral, first_to_answer
from bot.result import JobResult
from bot.safety import withheld_frames
from morph.request import RenderRequest

if TYPE_CHECKING:  # pragma: no cover
    from bot.jobs import Job

log = logging.getLogger(__name__)

_JOB = r"(?P<job>[0-9]+)-(?P<token>[0-9a-f]{8})"
PICK_RE = rf"morph:pick:{_JOB}:(?P<frame>[0-9]+)"
FRAMES_RE = rf"morph:frames:{_JOB}"
REFINE_RE = rf"morph:refine:{_JOB}"
REROLL_RE = rf"morph:reroll:{_JOB}"
DELETE_RE = rf"morph:delete:{_JOB}"
REPORT_RE = rf"morph:report:{_JOB}"
CANCEL_RE = rf"morph:cancel:{_JOB}"


def custom_id(kind: str, job_id: int, token: str, frame: int | None = None) -> str:
    """``morph:<kind>:<number>-<token>``, plus ``:<frame>`` for a pick (the table above)."""
    ref = f"morph:{kind}:{int(job_id)}-{token}"
    return ref if frame is None else f"{ref}:{int(frame)}"


class JobActions(Protocol):
    """The use cases the components start (:class:`bot.actions.Actions` implements them)."""

    async def send_pick(self, interaction: discord.Interaction, job_id: int, token: str, frame: int,
                        source: str = "button") -> None: ...

    async def refine(self, interaction: discord.Interaction, job_id: int, token: str, gap: int) -> None: ...

    async def reroll(self, interaction: discord.Interaction, job_id: int, token: str) -> None: ...

    async def delete_result(self, interaction: discord.Interaction, job_id: int, token: str) -> None: ...

    async def report_result(self, interaction: discord.Interaction, job_id: int, token: str) -> None: ...

    async def cancel_job(self, interaction: discord.Interaction, job_id: int, *, token: str | None = None,
                         from_button: bool = False) -> None: ...


def actions_of(interaction: discord.Interaction) -> JobActions:
    """The use cases of the bot that received ``interaction`` (``MorphBot.actions``)."""
    return interaction.client.actions  # type: ignore[attr-defined]  # this module knows no bot class


# ---------------------------------------------------------------------------------------------- views

def cancel_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, job.token, locale=job.language))
    return view


def result_view(job: Job) -> discord.ui.View:
    """Rows 0–1: candidate buttons 1..K (≤ 9; a chain's labels name their segment, and with two segments each
    has its own row); row 2: frame select; row 3: 🔍 refine select (the gaps between neighbouring frames;
    ≤ 25 options each); row 4: reroll, delete and 🚩 report. Discord's five rows. Frames the safety filter
    withheld (:func:`bot.safety.withheld_frames`) are in neither menu, nor are the gaps next to them."""
    result = job.rendered()
    frame_count, candidates, ts = result.frame_count, list(result.candidates), list(result.ts)
    withheld = withheld_frames(job.safety)
    view = discord.ui.View(timeout=None)
    lang = job.language
    for frame, label, row in candidate_buttons(job.request, result)[: len(msg.KEYCAPS)]:
        if frame not in withheld:
            view.add_item(PickButton(job.id, job.token, frame, label=label, row=row))
    frames = [f for f in msg.choose_select_frames(frame_count, candidates) if f not in withheld]
    if frames:
        view.add_item(FramesSelect(job.id, job.token, [
            discord.SelectOption(label=msg.frame_label(f, frame_count, ts, candidates, locale=lang), value=str(f))
            for f in frames], row=2, locale=lang))
    gaps = msg.choose_select_frames(len(ts) - 1, candidates) if ts and len(ts) == frame_count else []
    gaps = [g for g in gaps if g not in withheld and g + 1 not in withheld]
    if gaps:
        view.add_item(RefineSelect(job.id, job.token, [
            discord.SelectOption(label=msg.gap_label(g, ts, locale=lang), value=str(g)) for g in gaps], row=3,
            locale=lang))
    view.add_item(RerollButton(job.id, job.token, row=4, locale=lang))
    view.add_item(DeleteButton(job.id, job.token, row=4, locale=lang))
    view.add_item(ReportButton(job.id, job.token, row=4, locale=lang))
    return view


def candidate_buttons(request: RenderRequest, result: JobResult) -> list[tuple[int, str, int]]:
    """``(frame, label, row)`` of each candidate button, in number order. A plain morph: labels 1..K, five per row. A
    chain: ``4 · cat→bird`` (which segment the candidate is from), and one row per segment when there are
    two (each offers at most five)."""
    candidates = result.candidates
    parts = msg.candidate_parts(request, result)
    if len(parts) <= 1:
        return [(frame, str(n + 1), n // 5) for n, frame in enumerate(candidates)]
    out = []
    for part, (index, first, last) in enumerate(parts):
        for n in range(first, last + 1):
            label = f"{n} · {msg.short_segment(request, index)}"
            out.append((candidates[n - 1], label, part if len(parts) == 2 else (n - 1) // 5))
    return out


# ---------------------------------------------------------------------------------------------- items

def _guarded(callback):
    """Component callbacks: an unexpected error is logged and the clicker gets an apology, not
    Discord's bare "This interaction failed"."""
    @functools.wraps(callback)
    async def run(self, interaction: discord.Interaction) -> None:
        try:
            await callback(self, interaction)
        except DatabaseUnavailable:  # the outage is logged once, by the database
            await answer_unavailable(interaction)
        except Exception:
            log.exception("%s failed for %s", getattr(self, "custom_id", "?"), interaction.user.id)
            try:
                await ephemeral(interaction, text(interaction.locale)._(
                    "❌ Something went wrong on the bot's side; it has been logged."))
            except discord.HTTPException:
                pass

    return run


def _job_ref(match: re.Match[str]) -> tuple[int, str]:
    return int(match["job"]), match["token"]


class _JobItem:
    """What every component of a job shares: only the first front to record an interaction answers it."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await first_to_answer(interaction)


class PickButton(_JobItem, discord.ui.DynamicItem[discord.ui.Button], template=PICK_RE):
    def __init__(self, job_id: int, token: str, frame: int, *, label: str | None = None,
                 row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=label or str(frame + 1), style=discord.ButtonStyle.primary,
                                           custom_id=custom_id("pick", job_id, token, frame)), row=row)
        self.job_id, self.token, self.frame = job_id, token, frame

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match), int(match["frame"]), label=getattr(item, "label", None))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await actions_of(interaction).send_pick(interaction, self.job_id, self.token, self.frame)


class _JobSelect(_JobItem):
    """A select menu of a job's result (one option per frame or gap): its options come back from the clicked
    message after a restart. Subclasses name their ``kind`` (in the custom id) and ``placeholder`` (translated
    for ``locale``)."""

    kind: str
    placeholder: str
    item: discord.ui.Select  # DynamicItem's, which every subclass also is

    def __init__(self, job_id: int, token: str, options: list[discord.SelectOption] | None = None, *,
                 row: int | None = None, locale: object = None) -> None:
        tr = text(locale)
        options = (options or [discord.SelectOption(label=tr._("Frame {frame}/{count}", frame=1, count=1),
                                                    value="0")])[: msg.SELECT_LIMIT]
        select: discord.ui.Select[discord.ui.View] = discord.ui.Select(
            custom_id=custom_id(self.kind, job_id, token), placeholder=tr._(self.placeholder), min_values=1,
            max_values=1, options=options)
        super().__init__(select, row=row)  # type: ignore[call-arg]  # DynamicItem's, next in a subclass's MRO
        self.job_id, self.token = job_id, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match), list(getattr(item, "options", None) or []) or None)

    def chosen(self, interaction: discord.Interaction) -> int | None:
        """The chosen option's value (a frame index), or None when the interaction carries no number."""
        data: dict[str, Any] = dict(interaction.data or {})
        values = data.get("values") or self.item.values
        try:
            return int(values[0])
        except (IndexError, TypeError, ValueError):
            return None


class FramesSelect(_JobSelect, discord.ui.DynamicItem[discord.ui.Select], template=FRAMES_RE):
    kind = "frames"
    placeholder = N_("Pick any frame…")

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        frame = self.chosen(interaction)
        if frame is None:
            await ephemeral(interaction, text(interaction.locale)._("❌ Choose a frame from the menu."))
            return
        await actions_of(interaction).send_pick(interaction, self.job_id, self.token, frame, source="select")


class RefineSelect(_JobSelect, discord.ui.DynamicItem[discord.ui.Select], template=REFINE_RE):
    """🔍 Refine: more frames between the chosen frame (the option's value) and the next (``Actions.refine``)."""

    kind = "refine"
    placeholder = N_("🔍 Refine: more frames between two neighbours…")

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        gap = self.chosen(interaction)
        if gap is None:
            await ephemeral(interaction, text(interaction.locale)._("❌ Choose two neighbouring frames from the menu."))
            return
        await actions_of(interaction).refine(interaction, self.job_id, self.token, gap)


class _JobButton(_JobItem):
    """A job's button that carries no frame: Reroll, Delete and Cancel differ only in their ``kind`` (in the
    custom id), looks (the label translated for ``locale``), and the use case they start (:meth:`run`)."""

    kind: str
    look: tuple[str, str, discord.ButtonStyle]  # label, emoji, style

    def __init__(self, job_id: int, token: str, *, row: int | None = None, locale: object = None) -> None:
        label, emoji, style = self.look
        super().__init__(discord.ui.Button(label=text(locale)._(label), emoji=emoji,  # type: ignore[call-arg]
                                           style=style, custom_id=custom_id(self.kind, job_id, token)), row=row)
        self.job_id, self.token = job_id, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await self.run(actions_of(interaction), interaction)

    async def run(self, actions: JobActions, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class RerollButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=REROLL_RE):
    kind, look = "reroll", (N_("Reroll"), "🔁", discord.ButtonStyle.secondary)

    async def run(self, actions: JobActions, interaction: discord.Interaction) -> None:
        await actions.reroll(interaction, self.job_id, self.token)


class DeleteButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=DELETE_RE):
    kind, look = "delete", (N_("Delete"), "❌", discord.ButtonStyle.danger)

    async def run(self, actions: JobActions, interaction: discord.Interaction) -> None:
        await actions.delete_result(interaction, self.job_id, self.token)


class ReportButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=REPORT_RE):
    """🚩 Report: any member tells the server's admins about a result (``Actions.report_result``)."""

    kind, look = "report", (N_("Report"), "🚩", discord.ButtonStyle.secondary)

    async def run(self, actions: JobActions, interaction: discord.Interaction) -> None:
        await actions.report_result(interaction, self.job_id, self.token)


class CancelButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=CANCEL_RE):
    kind, look = "cancel", (N_("Cancel"), "❌", discord.ButtonStyle.secondary)

    async def run(self, actions: JobActions, interaction: discord.Interaction) -> None:
        await actions.cancel_job(interaction, self.job_id, token=self.token, from_button=True)


DYNAMIC_ITEMS = (PickButton, FramesSelect, RefineSelect, RerollButton, DeleteButton, ReportButton, CancelButton)
