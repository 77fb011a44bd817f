"""What the team chats hear: cards, SLA pings, failures and connector notices, within a send budget."""

from inbox.notify.budget import PacedSender, window_of
from inbox.notify.chats import Roster, TeamChat, is_team_destination, team_chats, team_destination
from inbox.notify.notifier import Notifier, install_notifier

__all__ = [
    "Notifier", "PacedSender", "Roster", "TeamChat", "install_notifier", "is_team_destination", "team_chats",
    "team_destination", "window_of",
]
