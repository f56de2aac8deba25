"""The operator console: HTML pages over the same store, audit log and code paths as the API.

Input: the FastAPI app of `intento serve`, the checked project, the store's and audit log's
paths, the bearer token (None: no authentication). Output: the pages `/` (runs), `/runs/{id}`,
`/policies`, `/plan`, `/policies/rollout` (a policy set's impact and its rollout) and
`/policies/rollouts` (their history), the login at `/login`, fragments and a change stream under `/console/`, and
the packaged static files at `/console/static/` (htmx and its SSE extension, vendored, and the
stylesheet). See docs/console.md.
"""

from __future__ import annotations

from intento.console._routes import is_console_path, mount

__all__ = ["mount", "is_console_path"]
