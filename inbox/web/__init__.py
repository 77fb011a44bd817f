"""The one HTTP server of ``inbox run``: the core's routes (health, metrics, API) plus connectors' routes.

Import from the submodules: ``inbox.web.server`` builds and serves the application,
``inbox.web.context`` holds what route handlers share, ``inbox.web.signing`` the HMAC scheme.
"""
