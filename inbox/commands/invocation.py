"""What a console hands the command core: who typed what, and where."""

from __future__ import annotations

from dataclasses import dataclass

TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class CommandInvocation:
    """One command as typed in a team chat (or a button press turned into its command text).

    The actor is named either by ``platform`` plus ``user_id`` (a Telegram or Discord user id,
    matched against ``Member.platform_ids``) or, for the terminal, by ``member_name``.
    ``conversation_id`` is set when the command was issued inside a conversation's own topic or
    thread, so the ID may be left out. ``language`` overrides the team default for this chat.
    """

    text: str
    platform: str = TERMINAL
    user_id: str | None = None
    member_name: str | None = None
    conversation_id: int | None = None
    chat_id: str | None = None
    language: str | None = None

    @property
    def actor_label(self) -> str:
        """How the audit log names an actor that could not be resolved to a member."""
        who = self.member_name if self.member_name is not None else self.user_id
        return f"unknown:{self.platform}:{who or '?'}"

    @classmethod
    def terminal(cls, member_name: str, text: str, *, conversation_id: int | None = None,
                 language: str | None = None) -> CommandInvocation:
        """An invocation typed on the operator's terminal as ``member_name``."""
        return cls(text=text, platform=TERMINAL, member_name=member_name,
                   conversation_id=conversation_id, language=language)
