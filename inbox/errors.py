"""Errors a user can hit: each has a message fit to show in chat or on a terminal."""

from __future__ import annotations


class InboxError(Exception):
    """Base of every error whose message is meant for a person."""


class NotFound(InboxError):
    """Something named by the user does not exist."""


class ConversationNotFound(NotFound):
    """No conversation with that id."""

    def __init__(self, conversation_id: int) -> None:
        super().__init__(f"conversation #{conversation_id} does not exist")
        self.conversation_id = conversation_id


class UnknownMember(NotFound):
    """No team member with that name or platform id."""

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' is not a team member")
        self.name = name


class UnknownChannel(NotFound):
    """No configured channel with that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"channel '{name}' is not configured")
        self.name = name


class DeliveryNotFound(NotFound):
    """No outbox row with that id."""

    def __init__(self, delivery_id: int) -> None:
        super().__init__(f"delivery #{delivery_id} does not exist")


class InvalidAction(InboxError):
    """The action makes no sense in the conversation's current state."""


class PermissionDenied(InboxError):
    """The actor's role does not allow this."""
