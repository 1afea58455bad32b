"""Fixtures shared by the module_utils tests that run the same case on both hosts."""
from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import IS_ROOT, LocalEnv, TwinEnv


@pytest.fixture(params=['windows', 'linux'])
def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[t.Callable[..., t.Any]]:
    """Make a seeded machine: the simulated Windows host, then LocalHost over sandboxed homes."""
    made: list[t.Any] = []

    def make(users: t.Sequence[str] = ('alice', 'bob')) -> t.Any:
        if request.param == 'linux' and not IS_ROOT:
            pytest.skip('LocalHost runs need root for distinct home owners')
        env = TwinEnv(users) if request.param == 'windows' else LocalEnv(tmp_path, users)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()
