"""Refusals that happen before a command reaches the core: a member's command sent from a chat (or
server) that is no team console. Every console audits them with this one function, so they read alike.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlmodel import col

from inbox.audit import record
from inbox.clock import Clock
from inbox.commands.core import REFUSED_EVENT
from inbox.db import Database
from inbox.models import Member

log = logging.getLogger(__name__)

FOREIGN_CHAT = "foreign_chat"
_AUDIT_TEXT_LENGTH = 200


async def refuse_foreign_chat(db: Database, clock: Clock, *, platform: str, user_id: str, chat_id: str,
                              command: str | None, text: str) -> bool:
    """Audit a team member's command from outside the team's chats (it is not run); True if audited.

    A stranger's command there is chatter, not an attack on the team: it is not recorded (and the
    audit log cannot be flooded from a public group).
    """
    async with db.transaction() as session:
        members = (await session.execute(select(Member).where(col(Member.active).is_(True)))).scalars()
        # platform_ids is JSON; the team is small, so matching in Python stays portable.
        member = next((m for m in members if m.platform_ids.get(platform) == str(user_id)), None)
        if member is None:
            return False
        log.warning("%s: %s sent a team command from %s, which is no team chat; not run",
                    platform, member.name, chat_id)
        await record(
            session, f"member:{member.name}", REFUSED_EVENT, clock.now(), None,
            command=command, reason=FOREIGN_CHAT, platform=platform, chat_id=chat_id,
            text=text[:_AUDIT_TEXT_LENGTH],
        )
    return True
