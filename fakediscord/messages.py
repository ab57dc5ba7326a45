"""Messages in the fake Discord: created, edited and deleted under Discord's rules, kept with their history.

Every REST route and user action that makes or changes a message goes through :class:`MessageStore`, which
validates it (:mod:`fakediscord.rules`), stores uploaded files, dispatches the gateway event, tells
subscribers, and wakes tests waiting in :meth:`~MessageStore.wait_for_message`.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from fakediscord.model import (
    EPHEMERAL,
    IS_COMPONENTS_V2,
    LOADING,
    ApiError,
    Attachment,
    FakeMessage,
    compute_pings,
)
from fakediscord.rules import MAX_FILES, check_not_empty, validate_message_fields
from fakediscord.state import DiscordState

if TYPE_CHECKING:
    from fakediscord.interaction import FakeInteraction
    from fakediscord.objects import FakeChannel, FakeUser
    from fakediscord.records import UploadedFile


class MessageStore(DiscordState):
    """FakeDiscord's messages (a mixin: the state lives in FakeDiscord.__init__)."""

    # queries --------------------------------------------------------------------------------------------
    @property
    def messages(self) -> dict[int, list[FakeMessage]]:
        """Live messages per channel id, oldest first (ephemeral ones included, flagged ``ephemeral``)."""
        return {cid: [m for m in msgs if not m.deleted] for cid, msgs in self._by_channel.items()}

    def message(self, message_id: int | FakeMessage) -> FakeMessage:
        return self._messages[message_id.id if isinstance(message_id, FakeMessage) else int(message_id)]

    def all_messages(self, *, include_deleted: bool = False) -> list[FakeMessage]:
        return [m for m in self._messages.values() if include_deleted or not m.deleted]

    def attachment_bytes(self, attachment_id: int) -> bytes:
        return self._attachments[int(attachment_id)].data

    def upload(self, filename: str, data: bytes, content_type: str | None = None) -> Attachment:
        """A file a member attaches to a slash command's ATTACHMENT option: pass it as that option's value
        (``fake.slash(alice, "morph-images", first=fake.upload("cat.png", png))``). It is served at its
        ``url`` on loopback like every attachment, and the interaction carries it in ``data.resolved``.
        ``content_type``: what Discord would report (it goes by the file name when None)."""
        aid = self.ids.next()
        attachment = Attachment(aid, filename, bytes(data), content_type,
                                f"{self.base_url}/attachments/{aid}/{filename}")
        self._attachments[aid] = attachment
        return attachment

    async def wait_for_message(self, predicate: Callable[[FakeMessage], bool], timeout: float = 10.0, *,
                               existing: bool = True) -> FakeMessage:
        """First message (created, edited or deleted) for which ``predicate(message)`` is true.

        With ``existing=True`` messages already there are checked first (newest first). Deleted ones count
        too, on both paths (``m.deleted`` is set): add ``not m.deleted`` to the predicate to skip them.
        """
        if existing:
            for m in reversed(list(self._messages.values())):
                if predicate(m):
                    return m
        fut = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            recent = [(m.id, m.content[:80], [a.filename for a in m.attachments])
                      for m in list(self._messages.values())[-5:]]
            raise TimeoutError(f"no matching message within {timeout} s; last messages: {recent}; "
                               f"violations: {self.violations[-3:]}") from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # internals: create / edit / delete ------------------------------------------------------------------
    def _store_new(self, msg: FakeMessage) -> None:
        msg.history.append(msg.snapshot())
        self._messages[msg.id] = msg
        self._by_channel[msg.channel_id].append(msg)
        for a in msg.attachments:
            self._attachments[a.id] = a
        self._message_event("MESSAGE_CREATE", msg)
        self._emit({"type": "message_create", "channel_id": msg.channel_id, "message": self._public(msg)})
        self._wake(msg)

    def _public(self, msg: FakeMessage) -> dict:
        return {**msg.to_payload(), "ephemeral": msg.ephemeral, "for_user_id": msg.interaction_user_id
                if msg.ephemeral else None, "deleted": msg.deleted}

    def _wake(self, msg: FakeMessage) -> None:
        for pred, fut in list(self._waiters):
            if fut.done():
                continue
            try:
                if pred(msg):
                    fut.set_result(msg)
            except Exception as exc:  # noqa: BLE001 — a broken predicate should fail the test, not hang it
                fut.set_exception(exc)

    def _new_message(self, channel: FakeChannel, body: dict, files: list[UploadedFile], *, upload_limit: int,
                     path: list | None = None, interaction: FakeInteraction | None = None,
                     flags_allowed: int = EPHEMERAL | (1 << 2) | (1 << 12) | IS_COMPONENTS_V2, msg_type: int = 0,
                     author: FakeUser | None = None) -> FakeMessage:
        validate_message_fields(body, path)
        attachments = self._take_files(body, files, upload_limit, [], channel)
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        components = body.get("components") or []
        flags = int(body.get("flags") or 0) & flags_allowed
        if not flags & LOADING:
            check_not_empty(content, embeds, attachments, components)
        author = author or self.bot_user
        msg = FakeMessage(self.ids.next(), channel.id, channel.guild.id if channel.guild else None, author.payload(),
                          content=str(content), embeds=embeds, components=components, attachments=attachments,
                          flags=flags, type=msg_type, allowed_mentions=body.get("allowed_mentions"),
                          created_at=self.clock.time(), nonce=body.get("nonce"))
        if interaction is not None:
            msg.webhook_id = self.application_id
            msg.application_id = self.application_id
            msg.interaction_id = interaction.id
            msg.interaction_user_id = interaction.user.id
            for a in msg.attachments:
                a.ephemeral = msg.ephemeral
        msg.pings = compute_pings(msg.content, msg.allowed_mentions, ephemeral=msg.ephemeral)
        return msg

    def _take_files(self, body: dict, files: list[UploadedFile], upload_limit: int, existing: list[Attachment],
                    channel: FakeChannel) -> list[Attachment]:
        """Attachments after this request: kept existing ones (by id in ``attachments``) plus new files."""
        if len(files) > MAX_FILES:
            raise ApiError(400, 50035, "Invalid Form Body", {"files": {"_errors": [{
                "code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MAX_FILES} or fewer in length."}]}},
                rule=f"more than {MAX_FILES} files")
        for f in files:
            if len(f.data) > upload_limit:
                raise ApiError(413, 40005, "Request entity too large",
                               rule=f"upload of {f.filename} ({len(f.data)} bytes) over the {upload_limit}-byte limit")
        declared = body.get("attachments")
        by_field = {f.name: f for f in files}
        out: list[Attachment] = []
        new: list[tuple[UploadedFile, dict | None]]  # (file, its entry in ``attachments``)
        if declared is None:
            out = list(existing)
            new = [(f, None) for f in files]
        else:
            keep = {str(a.get("id")) for a in declared}
            out = [a for a in existing if str(a.id) in keep]
            new = []
            for a in declared:
                upload = by_field.get(f"files[{a.get('id')}]")
                if upload is not None:
                    new.append((upload, a))
        for f, meta in new:
            aid = self.ids.next()
            filename = (meta or {}).get("filename") or f.filename
            out.append(Attachment(aid, filename, f.data, f.content_type,
                                  f"{self.base_url}/attachments/{aid}/{filename}",
                                  description=(meta or {}).get("description")))
        return out

    def _edit_message(self, msg: FakeMessage, body: dict, files: list[UploadedFile], *, upload_limit: int,
                      path: list | None = None, allow_flags: bool = True) -> FakeMessage:
        if msg.deleted:
            raise ApiError(404, 10008, "Unknown Message", rule="edit of a deleted message")
        validate_message_fields(body, path)
        attachments = self._take_files(body, files, upload_limit, msg.attachments, self.channels[msg.channel_id])
        content = msg.content if "content" not in body else (body["content"] or "")
        embeds = msg.embeds if "embeds" not in body else (body["embeds"] or [])
        components = msg.components if "components" not in body else (body["components"] or [])
        check_not_empty(content, embeds, attachments, components)
        was_loading = msg.loading
        msg.content, msg.embeds, msg.components, msg.attachments = str(content), embeds, components, attachments
        msg.flags &= ~LOADING
        if allow_flags and body.get("flags") is not None:
            keep = msg.flags & EPHEMERAL
            msg.flags = (int(body["flags"]) & ~LOADING & ~EPHEMERAL) | keep
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        new_pings = compute_pings(msg.content, msg.allowed_mentions, ephemeral=msg.ephemeral)
        for k in ("users", "roles"):
            msg.pings[k] = list(dict.fromkeys(msg.pings[k] + new_pings[k]))
        msg.pings["everyone"] = msg.pings["everyone"] or new_pings["everyone"]
        if not was_loading:
            msg.edited_at = self.clock.time()
        msg.edit_times.append(self.clock.monotonic())
        msg.history.append(msg.snapshot())
        for a in attachments:
            self._attachments[a.id] = a
        self._message_event("MESSAGE_UPDATE", msg)
        self._emit({"type": "message_update", "channel_id": msg.channel_id, "message": self._public(msg)})
        self._wake(msg)
        return msg

    def _delete_message(self, msg: FakeMessage) -> None:
        if msg.deleted:
            raise ApiError(404, 10008, "Unknown Message", rule="delete of a deleted message")
        msg.deleted = True
        self._message_event("MESSAGE_DELETE", msg)
        self._emit({"type": "message_delete", "channel_id": msg.channel_id, "message_id": msg.id})
        self._wake(msg)
