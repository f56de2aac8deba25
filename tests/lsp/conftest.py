"""Fixtures of the language server's end-to-end tests (helpers in `tests/lsp/helpers.py`).

pytest-asyncio runs in its strict mode here, and the suite's settings are not changed: each
module marks its tests ``asyncio`` with the loop scope of the client fixture it uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp

from tests.lsp.helpers import CONFIG, Client, make_workspace, start, stop


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: Client, workspace: Path):
    """A server on a fresh copy of the example project, one per test."""
    await start(lsp_client, workspace)
    yield
    await stop(lsp_client)


@pytest.fixture(scope="module")
def shared_workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("project"))


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def shared_client(lsp_client: Client, shared_workspace: Path):
    """One server for a module whose tests only read, or undo what they change (a new file
    of their own, closed at the end)."""
    await start(lsp_client, shared_workspace)
    yield
    await stop(lsp_client)
