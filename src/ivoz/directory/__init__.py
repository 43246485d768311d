"""The SIP roles' configuration cache: see ``ivoz.directory.cache`` and docs/directory.md."""

from ivoz.directory.cache import Directory
from ivoz.directory.views import (
    CompanyView,
    ExtensionView,
    ForwardView,
    RelayView,
    ServerView,
    TerminalView,
    UserView,
)

__all__ = [
    "CompanyView",
    "Directory",
    "ExtensionView",
    "ForwardView",
    "RelayView",
    "ServerView",
    "TerminalView",
    "UserView",
]
