"""Team chats as the notifier sees them (config resolved), and who a mention word names."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from inbox.db_bulk import fetch_rows, json_read
from inbox.i18n import choose_language
from inbox.models import Role
from inbox.settings import Settings

log = logging.getLogger(__name__)

TEAM_PREFIX = "team:"


def team_destination(name: str) -> str:
    """The outbox destination of a team chat."""
    return TEAM_PREFIX + name


def is_team_destination(destination: str) -> bool:
    """True for outbox rows addressed to a team chat."""
    return destination.startswith(TEAM_PREFIX)


@dataclass(frozen=True, slots=True)
class TeamChat:
    """One ``[[team_chats]]`` entry with its defaults filled in from the hosting channel's platform."""

    name: str
    channel: str  # the configured channel whose connector hosts the chat
    platform: str  # that channel's type: it decides the default budget and whose user ids mention
    chat_id: str
    lang: str
    budget: int  # messages per window
    window: timedelta
    reserve: int  # part of the budget only urgent notices may use
    hears: frozenset[str]
    channels: frozenset[str]  # conversations from these channels only; empty = every channel

    @property
    def destination(self) -> str:
        """The outbox destination, ``team:<name>``."""
        return team_destination(self.name)

    def limit(self, urgent: bool) -> int:
        """How many single messages a window may hold for this class; one more is kept for the digest."""
        return self.budget - 1 if urgent else self.budget - 1 - self.reserve

    def wants(self, purpose: str, channel: str | None) -> bool:
        """Whether this chat hears a notice of ``purpose`` about ``channel`` (None: not about one)."""
        if purpose not in self.hears:
            return False
        return channel is None or not self.channels or channel in self.channels


def team_chats(settings: Settings) -> list[TeamChat]:
    """The configured team chats, sorted by destination (the order their budget locks are taken in)."""
    chats = []
    for conf in settings.team_chats:
        host = settings.channel(conf.channel)
        platform = host.type if host is not None else ""
        budget, window, reserve = conf.limits(platform)
        chats.append(TeamChat(
            name=conf.name, channel=conf.channel, platform=platform, chat_id=conf.chat_id,
            lang=choose_language(conf.language, settings.general.language), budget=budget, window=window,
            reserve=reserve, hears=frozenset(conf.hears), channels=frozenset(conf.channels),
        ))
    return sorted(chats, key=lambda c: c.destination)


_ACTIVE_MEMBERS: Final = "SELECT name, role, platform_ids FROM members WHERE active ORDER BY name"


@dataclass(frozen=True, slots=True)
class Person:
    """An active team member as mentions need them."""

    name: str
    role: str
    platform_ids: dict[str, str]


class Roster:
    """The active members, to turn mention words (assignee, leads, admins, team, NAME) into members."""

    def __init__(self, people: Sequence[Person]) -> None:
        self.people = {p.name: p for p in people}

    @classmethod
    async def load(cls, session: AsyncSession) -> Roster:
        """Read the active members (a small table, synced from config at start)."""
        # Through the driver: read once per batch of SLA notices, where SQLAlchemy's execution of the
        # statement cost twice the query.
        rows = await fetch_rows(session, _ACTIVE_MEMBERS)
        return cls([Person(name, role, dict(json_read(ids) or {})) for name, role, ids in rows])

    def resolve(self, words: Iterable[str], assignee: str | None) -> tuple[str, ...]:
        """Member names for ladder words, without duplicates, in the order named."""
        found: list[str] = []
        for word in words:
            if word == "assignee":
                names = [assignee] if assignee in self.people else []
            elif word == "leads":
                names = self.with_role(Role.LEAD)
            elif word == "admins":
                names = self.with_role(Role.ADMIN)
            elif word == "team":
                names = list(self.people)
            elif word in self.people:
                names = [word]
            else:
                log.warning("mention '%s' names no active member; skipped", word)
                names = []
            found += [n for n in names if n is not None and n not in found]
        return tuple(found)

    def with_role(self, role: Role) -> list[str]:
        """Active members with exactly this role, by name."""
        return [p.name for p in self.people.values() if p.role == role.value]

    def platform_ids(self, names: Iterable[str], platform: str) -> dict[str, str | None]:
        """Each member's user id on ``platform`` (None when unknown): what a console needs to mention them."""
        return {n: (self.people[n].platform_ids.get(platform) if n in self.people else None) for n in names}
