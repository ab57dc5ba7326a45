"""REST handlers: the bot user, other users, the application, the gateway URL, commands, guilds."""
from __future__ import annotations

from fakediscord.model import ApiError
from fakediscord.objects import FakeUser
from fakediscord.rules import validate_commands
from fakediscord.state import DiscordState


class ApplicationRoutes(DiscordState):
    """A mixin of FakeDiscord (the state lives in FakeDiscord.__init__)."""

    async def _r_me(self, req):
        return {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "locale": "en-US",
                "email": None, "premium_type": 0}

    async def _r_user(self, req, uid):
        user = self.users.get(int(uid))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return user.payload()

    async def _r_app(self, req):
        owner = self.app_owner.payload()
        if self.app_team is not None:  # Discord names a team-owned application's owner "team<id>"
            owner = FakeUser(int(self.app_team["id"]), f"team{self.app_team['id']}").payload() | {"flags": 1024}
        return {"id": str(self.application_id), "name": self.bot_user.name, "icon": None,
                "description": "fake-discord application", "rpc_origins": [], "bot_public": True,
                "bot_require_code_grant": False, "bot": self.bot_user.payload(), "owner": owner,
                "team": self.app_team, "verify_key": "0" * 64, "flags": (1 << 19) | (1 << 23),
                "summary": "", "tags": [], "install_params": None, "custom_install_url": None,
                "interactions_endpoint_url": None, "redirect_uris": [], "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}}}

    async def _r_gateway(self, req):
        return {"url": self.gateway_url, "shards": self.recommended_shards,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}

    # application commands -------------------------------------------------------------------------------
    def _check_app(self, app) -> None:
        if int(app) != self.application_id:
            raise ApiError(403, 50001, "Missing Access", rule="commands of another application")

    async def _r_commands(self, req, app, gid=None):
        self._check_app(app)
        scope = int(gid) if gid else None
        if scope is not None and scope not in self.guilds:
            raise ApiError(403, 50001, "Missing Access", rule=f"commands for unknown guild {gid}")
        if req.method == "GET":
            return self.commands.get(scope, [])
        if req.method == "PUT":
            items = req.json or []
            validate_commands(items)
            old = {(c["name"], c.get("type", 1)): c for c in self.commands.get(scope, [])}
            out = []
            for item in items:
                prev = old.get((item["name"], item.get("type", 1)))
                out.append(self._store_command(item, scope, prev["id"] if prev else None))
            self.commands[scope] = out
            self._emit({"type": "commands_synced", "guild_id": scope, "names": [c["name"] for c in out]})
            return out
        validate_commands([req.json])
        cmds = self.commands.setdefault(scope, [])
        prev = next((c for c in cmds if c["name"] == req.json["name"]), None)
        cmd = self._store_command(req.json, scope, prev["id"] if prev else None)
        self.commands[scope] = [c for c in cmds if c is not prev] + [cmd]
        return cmd

    def _store_command(self, item: dict, scope: int | None, cid: str | None) -> dict:
        dmp = item.get("default_member_permissions")
        return {**item, "id": cid or str(self.ids.next()), "application_id": str(self.application_id),
                "version": str(self.ids.next()), "type": item.get("type", 1),
                "default_member_permissions": None if dmp is None else str(dmp),
                "guild_id": str(scope) if scope else None, "nsfw": item.get("nsfw", False),
                "description": item.get("description", ""), "options": item.get("options") or []}

    async def _r_command(self, req, app, cid, gid=None):
        self._check_app(app)
        scope = int(gid) if gid else None
        cmds = self.commands.get(scope, [])
        cmd = next((c for c in cmds if c["id"] == cid), None)
        if cmd is None:
            raise ApiError(404, 10063, "Unknown application command")
        if req.method == "GET":
            return cmd
        if req.method == "DELETE":
            cmds.remove(cmd)
            return None
        new = self._store_command({**cmd, **(req.json or {})}, scope, cid)
        cmds[cmds.index(cmd)] = new
        return new

    # guilds ---------------------------------------------------------------------------------------------
    async def _r_guild(self, req, gid):
        g = self.guilds.get(int(gid))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        out = g.payload()
        for k in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large",
                  "member_count", "unavailable"):
            out.pop(k, None)
        out["approximate_member_count"] = len(g.members)
        return out

    async def _r_guild_channels(self, req, gid):
        g = self.guilds.get(int(gid))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return [c.payload() for c in g.channels.values()]

    async def _r_guild_roles(self, req, gid):
        g = self.guilds.get(int(gid))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return [r.payload() for r in g.roles.values()]

    async def _r_guild_member(self, req, gid, uid):
        g = self.guilds.get(int(gid))
        if g is None or int(uid) not in g.members:
            raise ApiError(404, 10007, "Unknown Member")
        return g.members[int(uid)].payload()
