"""Response-time reports: figures of a period, their chat view, Markdown/CSV/PNG renderings, the weekly post.

Modules: ``period`` (ISO weeks and ranges in the team's timezone), ``numbers`` (the computation),
``percentiles`` (the documented method), ``present`` (the chat view), ``render_md``, ``render_csv``,
``chart`` (matplotlib, no display), ``job`` (posting once per week through the outbox) and ``config``
(the ``[reports]`` settings). This package's own import pulls in nothing, so settings can use ``config``.
"""
