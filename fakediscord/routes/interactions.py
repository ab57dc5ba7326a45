"""REST handlers for interactions: the callback, followups and webhook edits, and the deadlines.

Discord's rules enforced here: 3 s to the first response (later: 10062, the interaction fails), one
acknowledgement (40060), response types valid for the interaction type, interaction tokens that expire
after 15 minutes on ``fake.clock`` (50027).
"""
from __future__ import annotations

from fakediscord.interaction import FakeInteraction
from fakediscord.model import EPHEMERAL, INTERACTION_DEADLINE_S, LOADING, ApiError, FakeMessage
from fakediscord.state import DiscordState


class InteractionRoutes(DiscordState):
    """A mixin of FakeDiscord (the state lives in FakeDiscord.__init__)."""

    async def _r_callback(self, req, iid, token):
        it = self.interactions.get(int(iid))
        if it is None or it.token != token:
            raise ApiError(404, 10062, "Unknown interaction", rule="callback for an unknown interaction")
        elapsed = self.clock.monotonic() - it.sent_at
        if it.state == "failed" or (it.state == "pending" and elapsed > INTERACTION_DEADLINE_S):
            self._fail_interaction(it, f"no response within {INTERACTION_DEADLINE_S:.0f} s")
            raise ApiError(404, 10062, "Unknown interaction",
                           rule=f"interaction answered after {elapsed:.2f} s (deadline {INTERACTION_DEADLINE_S:.0f} s)")
        if it.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.",
                           rule="interaction acknowledged twice")
        body = req.json if isinstance(req.json, dict) else {}
        rtype, data = body.get("type"), body.get("data") or {}
        allowed = {2: (4, 5, 9), 3: (4, 5, 6, 7, 9), 4: (8,), 5: (4, 5, 6, 7)}.get(it.type, ())
        if rtype not in allowed:
            raise ApiError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{
                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                "message": f"Invalid interaction response type {rtype}"}]}},
                rule=f"callback type {rtype} not valid for interaction type {it.type}")
        msg: FakeMessage | None = None
        if rtype in (4, 5):
            flags = int(data.get("flags") or 0)
            if rtype == 5:
                body_for_msg = {"flags": (flags & EPHEMERAL) | LOADING}
                msg = self._new_message(it.channel, body_for_msg, [], upload_limit=it.upload_limit, path=["data"],
                                        interaction=it, flags_allowed=EPHEMERAL | LOADING, msg_type=20)
            else:
                msg = self._new_message(it.channel, data, req.files, upload_limit=it.upload_limit, path=["data"],
                                        interaction=it, msg_type=20 if it.type == 2 else 0)
            self._accept(it, rtype, data)
            it.original = msg
            self._store_new(msg)
        elif rtype in (6, 7):
            target = it.message
            if rtype == 7:
                if target is None:
                    raise ApiError(400, 50035, "Invalid Form Body", rule="update-message response without a message")
                self._edit_message(target, data, req.files, upload_limit=it.upload_limit, path=["data"])
            self._accept(it, rtype, data)
            it.original = target
            msg = target
        else:  # 8 autocomplete, 9 modal
            if rtype == 8 and len((data or {}).get("choices") or []) > 25:
                raise ApiError(400, 50035, "Invalid Form Body", rule="more than 25 autocomplete choices")
            self._accept(it, rtype, data)
        if req.query.get("with_response") in ("1", "true", "True"):
            out = {"interaction": {"id": str(it.id), "type": it.type,
                                   "response_message_id": str(msg.id) if msg else None,
                                   "response_message_loading": rtype == 5,
                                   "response_message_ephemeral": bool(msg and msg.ephemeral)},
                   "resource": {"type": rtype}}
            if msg is not None and rtype in (4, 5, 7):
                out["resource"]["message"] = msg.to_payload()
            return out
        return None

    def _accept(self, it: FakeInteraction, rtype: int, data: dict) -> None:
        it.response_type, it.response = rtype, data
        it.latency = self.clock.monotonic() - it.sent_at
        it.state = "responded"
        if not it._done.done():
            it._done.set_result(None)
        self._emit({"type": "interaction_response", "interaction_id": it.id, "response_type": rtype,
                    "latency": it.latency, "data": data, "user_id": it.user.id, "channel_id": it.channel.id})

    def _interaction_for(self, app, token, *, need_ack: bool = True) -> FakeInteraction:
        it = next((i for i in self.interactions.values() if i.token == token), None)
        if it is None or int(app) != self.application_id:
            raise ApiError(404, 10015, "Unknown Webhook", rule="webhook call with an unknown interaction token")
        if self.clock.time() > it.expires_at:
            raise ApiError(401, 50027, "Invalid Webhook Token",
                           rule="interaction token used after its 15-minute lifetime")
        if need_ack and it.response_type is None:
            raise ApiError(404, 10015, "Unknown Webhook",
                           rule="followup/edit before the interaction was acknowledged")
        return it

    async def _r_followup(self, req, app, token):
        it = self._interaction_for(app, token)
        body = req.json if isinstance(req.json, dict) else {}
        orig = it.original
        if it.response_type == 5 and orig is not None and orig.loading and not orig.deleted:
            # Discord: the first followup after a deferred response replaces the "thinking…" message.
            msg = self._edit_message(orig, body, req.files, upload_limit=it.upload_limit, allow_flags=False)
        else:
            msg = self._new_message(it.channel, body, req.files, upload_limit=it.upload_limit, interaction=it,
                                    msg_type=0)
            self._store_new(msg)
        it.followups.append(msg)
        self._wake(msg)
        if req.query.get("wait") in ("true", "1", "True"):
            return msg.to_payload()
        return None

    async def _r_webhook_message(self, req, app, token, mid):
        it = self._interaction_for(app, token)
        if mid == "@original":
            msg = it.original
        else:
            msg = next((m for m in [it.original, *it.followups] if m is not None and m.id == int(mid)), None)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message", rule=f"webhook message {mid} does not exist")
        if req.method == "GET":
            return msg.to_payload()
        if req.method == "DELETE":
            self._delete_message(msg)
            return None
        body = req.json if isinstance(req.json, dict) else {}
        self._edit_message(msg, body, req.files, upload_limit=it.upload_limit, allow_flags=False)
        return msg.to_payload()

    # deadlines ------------------------------------------------------------------------------------------
    def _check_deadlines(self) -> None:
        now_m, now_w = self.clock.monotonic(), self.clock.time()
        for it in self.interactions.values():
            if it.state == "pending" and now_m - it.sent_at > INTERACTION_DEADLINE_S:
                self._fail_interaction(it, f"no response within {INTERACTION_DEADLINE_S:.0f} s")
            elif (it.state == "responded" and it.response_type == 5 and now_w > it.expires_at
                  and it.original is not None and it.original.loading and not it.original.deleted
                  and not it._expiry_reported):
                it._expiry_reported = True
                self._violation("deferred response never completed before the 15-minute token expiry",
                                "POST", f"/interactions/{it.id}/…/callback", 0, 0, "")

    def _fail_interaction(self, it: FakeInteraction, reason: str) -> None:
        if it.state == "failed":
            return
        it.state, it.failure = "failed", reason
        if not it._done.done():
            it._done.set_result(None)
        self._violation(f"interaction failed: {reason}", "POST", f"/interactions/{it.id}/…/callback", 0, 10062,
                        "Unknown interaction")
        self._emit({"type": "interaction_failed", "interaction_id": it.id, "reason": reason})
