"""The Discord emulator's world: snowflakes, users, guilds, channels, messages and their JSON shapes.

Every ``payload()`` here returns the object as Discord's HTTP API v10 returns it (checked against
the official OpenAPI description by ``tests/connectors/discord/test_emulator_spec.py``). Gateway
events reuse these shapes and add the gateway-only keys (``guild_id``, ``member``) where Discord
does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

Json = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types)
GUILD_TEXT = 0
DM = 1
GUILD_CATEGORY = 4
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = frozenset({10, PUBLIC_THREAD, PRIVATE_THREAD})

# Message types and flags the emulator produces.
DEFAULT_MESSAGE = 0
THREAD_CREATED = 18
REPLY = 19
CHAT_INPUT_COMMAND = 20
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Permission bits used for members, roles and interactions.
ADMINISTRATOR = 1 << 3
MENTION_EVERYONE = 1 << 17
DEFAULT_PERMISSIONS = 0x0000_0006_3784_0E40  # @everyone defaults of a new server, roughly
BOT_PERMISSIONS = 0x0007_FFFF_FFFF_FFFF  # the bot is installed with wide permissions

_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
_MASS_MENTION = re.compile(r"@(everyone|here)\b")


class WallClock(Protocol):
    """What the emulator needs from a clock: ``inbox.clock.Clock`` satisfies it structurally."""

    def now(self) -> datetime:
        """Return the current instant, timezone-aware."""
        ...


def iso(instant: datetime) -> str:
    """Format an instant the way Discord does (``2026-11-02T09:00:00.000000+00:00``)."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")


class Snowflakes:
    """Generates Discord snowflakes from the clock: strictly increasing, timestamp in the top bits."""

    def __init__(self, clock: WallClock, worker: int = 1, process: int = 0) -> None:
        self._clock = clock
        self._worker = worker & 0x1F
        self._process = process & 0x1F
        self._last_ms = 0
        self._increment = 0

    def next(self) -> int:
        """Return a new snowflake, later than every one handed out before."""
        ms = int(self._clock.now().timestamp() * 1000) - DISCORD_EPOCH_MS
        if ms <= self._last_ms:
            ms = self._last_ms
            self._increment += 1
            if self._increment > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms += 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ms = ms
        return (ms << 22) | (self._worker << 17) | (self._process << 12) | self._increment

    @staticmethod
    def created_at(snowflake: int) -> datetime:
        """The instant encoded in a snowflake."""
        return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


@dataclass
class User:
    """A Discord user (a person or a bot)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    @property
    def mention(self) -> str:
        """The markup that mentions this user."""
        return f"<@{self.id}>"

    def payload(self) -> Json:
        """The public user object (``UserResponse``)."""
        data: Json = {
            "id": str(self.id),
            "username": self.username,
            "avatar": None,
            "discriminator": "0",
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "global_name": self.global_name,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data

    def private_payload(self) -> Json:
        """The current-user object of ``GET /users/@me`` (``UserPIIResponse``)."""
        data = self.payload()
        data.update(
            {"mfa_enabled": False, "locale": "en-US", "premium_type": 0, "email": None, "verified": True}
        )
        return data


@dataclass
class Role:
    """A guild role; the ``@everyone`` role has the guild's id."""

    id: int
    guild_id: int
    name: str
    permissions: int = DEFAULT_PERMISSIONS
    position: int = 0
    mentionable: bool = False
    color: int = 0
    hoist: bool = False

    @property
    def mention(self) -> str:
        """The markup that mentions this role."""
        return "@everyone" if self.id == self.guild_id else f"<@&{self.id}>"

    def payload(self) -> Json:
        """The role object (``GuildRoleResponse``)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "managed": False,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class Member:
    """A user's membership of a guild."""

    user: User
    guild_id: int
    joined_at: datetime
    roles: list[int] = field(default_factory=list)
    nick: str | None = None

    def payload(self, *, with_user: bool = True) -> Json:
        """The member object (``GuildMemberResponse``); gateway messages omit ``user``."""
        data: Json = {
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "flags": 0,
            "joined_at": iso(self.joined_at),
            "nick": self.nick,
            "pending": False,
            "premium_since": None,
            "roles": [str(r) for r in self.roles],
            "mute": False,
            "deaf": False,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass
class Channel:
    """A guild channel, thread or DM channel."""

    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    parent_id: int | None = None
    position: int = 0
    topic: str | None = None
    recipients: list[User] = field(default_factory=list)
    owner_id: int | None = None
    created_at: datetime | None = None
    auto_archive_duration: int = 1440
    invitable: bool = True
    last_message_id: int | None = None
    message_count: int = 0
    total_message_sent: int = 0
    member_ids: set[int] = field(default_factory=set)

    @property
    def is_thread(self) -> bool:
        """Whether this channel is a thread."""
        return self.type in THREAD_TYPES

    @property
    def mention(self) -> str:
        """The markup that mentions this channel."""
        return f"<#{self.id}>"

    def payload(self) -> Json:
        """The channel object: ``GuildChannelResponse``, ``PrivateChannelResponse`` or ``ThreadResponse``."""
        base: Json = {
            "id": str(self.id),
            "type": self.type,
            "last_message_id": _opt_id(self.last_message_id),
            "flags": 0,
        }
        if self.type == DM:
            base["recipients"] = [u.payload() for u in self.recipients]
            return base
        base.update(
            {
                "guild_id": str(self.guild_id),
                "name": self.name or "",
                "parent_id": _opt_id(self.parent_id),
                "rate_limit_per_user": 0,
            }
        )
        if self.is_thread:
            created = iso(self.created_at) if self.created_at else None
            base.update(
                {
                    "owner_id": str(self.owner_id),
                    "thread_metadata": {
                        "archived": False,
                        "archive_timestamp": created,
                        "auto_archive_duration": self.auto_archive_duration,
                        "locked": False,
                        "create_timestamp": created,
                        "invitable": self.invitable,
                    },
                    "message_count": self.message_count,
                    "member_count": min(len(self.member_ids), 50),
                    "total_message_sent": self.total_message_sent,
                }
            )
            return base
        base.update({"position": self.position, "permission_overwrites": [], "nsfw": False})
        if self.type == GUILD_TEXT:
            base["topic"] = self.topic
        return base

    def thread_member_payload(self, user_id: int) -> Json:
        """A thread-member object (``ThreadMemberResponse``) for a user who joined this thread."""
        return {
            "id": str(self.id),
            "user_id": str(user_id),
            "join_timestamp": iso(self.created_at)
            if self.created_at
            else iso(Snowflakes.created_at(self.id)),
            "flags": 0,
        }


@dataclass
class Guild:
    """A Discord server with its channels, roles and members."""

    id: int
    name: str
    owner_id: int
    created_at: datetime
    channels: list[Channel] = field(default_factory=list)
    threads: list[Channel] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        """The ``@everyone`` role."""
        return self.roles[0]

    def channel_named(self, name: str) -> Channel:
        """The guild channel or thread with this name."""
        for channel in [*self.channels, *self.threads]:
            if channel.name == name:
                return channel
        raise KeyError(f"guild {self.name!r} has no channel named {name!r}")

    def role_named(self, name: str) -> Role:
        """The role with this name."""
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(f"guild {self.name!r} has no role named {name!r}")

    def permissions_of(self, user_id: int) -> int:
        """The guild-level permissions of a member (no channel overwrites are modelled)."""
        if user_id == self.owner_id:
            return BOT_PERMISSIONS
        member = self.members.get(user_id)
        value = self.everyone.permissions
        if member is not None:
            for role in self.roles:
                if role.id in member.roles:
                    value |= role.permissions
        return BOT_PERMISSIONS if value & ADMINISTRATOR else value

    def payload(self) -> Json:
        """The guild fields of a ``GUILD_CREATE`` (a ``GuildResponse``)."""
        text = next((c for c in self.channels if c.type == GUILD_TEXT), None)
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "description": None,
            "home_header": None,
            "splash": None,
            "discovery_splash": None,
            "features": [],
            "banner": None,
            "owner_id": str(self.owner_id),
            "application_id": None,
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": _opt_id(text.id if text else None),
            "system_channel_flags": 0,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 1,
            "roles": [r.payload() for r in self.roles],
            "default_message_notifications": 1,
            "mfa_level": 0,
            "explicit_content_filter": 2,
            "max_presences": None,
            "max_members": 25_000_000,
            "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "rules_channel_id": None,
            "safety_alerts_channel_id": None,
            "public_updates_channel_id": None,
            "premium_progress_bar_enabled": False,
            "nsfw": False,
            "nsfw_level": 0,
            "emojis": [],
            "stickers": [],
            "incidents_data": None,
        }


@dataclass(frozen=True)
class Pings:
    """Who a message actually notifies, after ``allowed_mentions`` was applied."""

    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()
    everyone: bool = False

    @property
    def mass(self) -> bool:
        """Whether the message pings ``@everyone``/``@here`` or any role: a mass mention."""
        return self.everyone or bool(self.roles)

    @property
    def none(self) -> bool:
        """Whether the message pings nobody at all."""
        return not (self.users or self.roles or self.everyone)


def parse_mentions(content: str) -> tuple[list[int], list[int], bool]:
    """User ids, role ids (in order, without repeats) and whether ``@everyone``/``@here`` occur."""
    users = list(dict.fromkeys(int(m) for m in _USER_MENTION.findall(content)))
    roles = list(dict.fromkeys(int(m) for m in _ROLE_MENTION.findall(content)))
    return users, roles, bool(_MASS_MENTION.search(content))


def compute_pings(
    content: str,
    allowed_mentions: Mapping[str, Any] | None,
    *,
    replied_author: int | None = None,
    can_mention_everyone: bool = True,
    mentionable_roles: Iterable[int] = (),
    can_mention_any_role: bool = True,
) -> Pings:
    """Apply Discord's ``allowed_mentions`` rules to a message's content.

    Without ``allowed_mentions`` Discord parses every mention in the content and pings the author
    of a replied-to message; with it, only the listed kinds or ids are pinged and the replied
    user only when ``replied_user`` is true.
    """
    users, roles, mass = parse_mentions(content)
    if allowed_mentions is None:
        parse = {"users", "roles", "everyone"}
        allowed_users: set[int] | None = None
        allowed_roles: set[int] | None = None
        replied = True
    else:
        parse = set(allowed_mentions.get("parse") or [])
        allowed_users = {int(u) for u in allowed_mentions.get("users") or []}
        allowed_roles = {int(r) for r in allowed_mentions.get("roles") or []}
        replied = bool(allowed_mentions.get("replied_user"))
    pinged_users = {
        u for u in users if "users" in parse or (allowed_users is not None and u in allowed_users)
    }
    if replied and replied_author is not None:
        pinged_users.add(replied_author)
    may_role = set(mentionable_roles)
    pinged_roles = {
        r
        for r in roles
        if ("roles" in parse or (allowed_roles is not None and r in allowed_roles))
        and (can_mention_any_role or r in may_role)
    }
    everyone = mass and "everyone" in parse and can_mention_everyone
    return Pings(frozenset(pinged_users), frozenset(pinged_roles), everyone)


@dataclass
class Attachment:
    """A file uploaded with a message."""

    id: int
    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None

    def payload(self, base_url: str, channel_id: int) -> Json:
        """The attachment object (``MessageAttachmentResponse``)."""
        url = f"{base_url}/attachments/{channel_id}/{self.id}/{self.filename}"
        data: Json = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": url,
            "proxy_url": url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description:
            data["description"] = self.description
        return data


@dataclass
class MessageRecord:
    """A message in the emulated Discord, written by a user or by the bot.

    ``via`` says how it came to be: ``user`` (test API), ``rest`` (bot, channel message),
    ``interaction`` (bot, interaction response), ``followup`` (bot, interaction follow-up) or
    ``system`` (Discord's own notices, like "thread created").
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str
    created_at: datetime
    via: str
    type: int = DEFAULT_MESSAGE
    flags: int = 0
    tts: bool = False
    nonce: str | int | None = None
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    reference: Json | None = None
    referenced_id: int | None = None
    pings: Pings = field(default_factory=Pings)
    allowed_mentions: Json | None = None
    edited_at: datetime | None = None
    history: list[str] = field(default_factory=list)
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: Json | None = None
    thread_id: int | None = None

    @property
    def ephemeral(self) -> bool:
        """Whether only the interaction's user can see this message."""
        return bool(self.flags & EPHEMERAL)

    @property
    def reply_to(self) -> int | None:
        """The id of the message this one replies to, if any."""
        return self.referenced_id

    @property
    def custom_ids(self) -> list[str]:
        """The ``custom_id`` of every interactive component, in order."""
        return [c["custom_id"] for c in iter_components(self.components) if "custom_id" in c]

    def component(self, custom_id: str) -> Json | None:
        """The component with this ``custom_id``, if the message has one."""
        return next((c for c in iter_components(self.components) if c.get("custom_id") == custom_id), None)


def iter_components(components: Iterable[Json]) -> Iterable[Json]:
    """Every component of a message, depth first (action rows and their children)."""
    for component in components:
        yield component
        yield from iter_components(component.get("components") or [])


@dataclass
class InteractionRecord:
    """An interaction the emulator dispatched (a slash command or a component press)."""

    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user: User
    data: Json
    created_at: float
    message_id: int | None = None
    response_type: int | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        """Whether the bot has answered the interaction's callback."""
        return self.response_type is not None


@dataclass(frozen=True)
class InteractionResponse:
    """One callback the bot posted for an interaction."""

    interaction_id: int
    type: int
    data: Json
    message_id: int | None


def _opt_id(value: int | None) -> str | None:
    return None if value is None else str(value)
