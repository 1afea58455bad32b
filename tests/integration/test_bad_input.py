"""Bad input fails with a clear message, before anything on the host changes: the whole table, both paths.

One ansible-playbook run per host runs every row of bad_input_table.py (all five modules) as loops.
For every row: the task failed, its message is exactly the expected one and names the offending
option(s), there is no traceback, no secret from the arguments comes back, and nothing changed -
the simulated host's whole state (only read-only bridge operations were sent) or the sandboxed
homes, hashed, with the sandbox's running Notion left alone.
"""
from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS

from .bad_input_table import HOSTS, MODULES, Case, for_host, table
from .conftest import FakeNotion, Lab, assert_ok, own_homes
from .test_app_data import ALICE, posix_tree, seed_both

TRACEBACK_UNAVAILABLE = '(traceback unavailable)'


@pytest.fixture
def fake_notion(lab: Lab) -> t.Iterator[FakeNotion]:
    """A process named 'notion' in alice's sandboxed home, as her session would run it (HOME is hers)."""
    (lab.homes / 'alice').mkdir(parents=True, exist_ok=True)
    process = FakeNotion(lab.homes / 'alice')
    yield process
    process.close()


def problems_of(row: Case, result: dict[str, t.Any]) -> list[str]:
    """Everything wrong with one row's result; [] when it failed exactly as it should."""
    problems = []
    dumped = json.dumps({key: value for key, value in result.items() if key != 'case'})  # 'case' is our input
    message = result.get('msg', '')
    expected = row.message(row.hosts[0])
    if result.get('failed') is not True:
        problems.append('did not fail')
    if not (message.startswith(expected) if row.prefix else message == expected):
        problems.append(f'message {message[:400]!r} is not {expected[:400]!r}')
    problems += [f'message does not name {option}' for option in row.options if option not in message]
    if result.get('changed'):
        problems.append('reported a change')
    if 'module_stderr' in result:
        problems.append('has module_stderr')
    # ansible-core 2.19 gives every failure without a traceback this placeholder; a crash has the traceback.
    if result.get('exception', TRACEBACK_UNAVAILABLE) != TRACEBACK_UNAVAILABLE:
        problems.append('has an exception')
    if 'Traceback' in dumped:
        problems.append('has a traceback')
    problems += [f'shows the secret {secret!r}' for secret in row.secrets if secret in dumped]
    return problems


def test_the_table_covers_every_module_and_names_options_it_has() -> None:
    rows = table()
    assert {row.module for row in rows} == set(MODULES)
    for host in HOSTS:
        assert {row.module for row in rows if host in row.hosts} == set(MODULES), host
    assert all(row.options for row in rows)


@pytest.mark.integration
@pytest.mark.parametrize('host', HOSTS)
def test_bad_input_fails_clearly_and_changes_nothing(lab: Lab, host: str, fake_notion: FakeNotion) -> None:
    seed_both(lab, running=True)
    own_homes(lab.homes)
    if host == 'win':
        pids = ', '.join(str(p['pid']) for p in lab.state()['processes'] if p['owner_sid'] == ALICE and p['name'] == 'Notion.exe')
    else:
        pids = str(fake_notion.pid)
    rows = sorted(for_host(host, str(lab.homes), pids), key=lambda row: MODULES.index(row.module))
    cases_file = lab.root / f'cases-{host}.json'
    cases_file.write_text(json.dumps([{'key': row.key, 'module': row.module, 'args': row.args} for row in rows]))
    before = lab.state() if host == 'win' else posix_tree(lab.homes)

    completed, outcomes = lab.play('bad_input', host, {'cases_file': str(cases_file)})

    assert_ok(completed)
    assert [o['case']['key'] for o in outcomes] == [row.key for row in rows]
    problems = {row.key: found for row, outcome in zip(rows, outcomes) if (found := problems_of(row, outcome))}
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)
    if host == 'win':
        after = lab.state()
        assert {k: v for k, v in after.items() if k != 'calls'} == {k: v for k, v in before.items() if k != 'calls'}
        sent = [name for call in after['calls'] for name in call['operations']]
        assert sent, 'the rows that need the profiles (unknown users, a running Notion) probed the host'
        assert [name for name in sent if OPERATIONS[name].mutates] == [], 'only read-only operations were sent'
    else:
        assert posix_tree(lab.homes) == before
        assert fake_notion.running(), 'the running Notion was left alone'
