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


SECRET = 's3cr3t-Pa55'
# (module, key, arguments, the message; None: must not fail). Windows takes no profiles_root/state_dir.
NATIVE_ENTRY = [
    ('diagnose', 'timeout inf', {'timeout': 'inf'}, "timeout must be a whole number of at most 18 digits, got 'inf'"),
    ('incident', 'expire_days 1e400', {'id': 'T-1', 'state': 'opened', 'expire_days': '1e400'},
     "expire_days must be a whole number of at most 18 digits, got '1e400'"),
    ('browser_data', 'stop_timeout -Infinity', {'stop_timeout': '-Infinity'},
     "stop_timeout must be a whole number of at most 18 digits, got '-Infinity'"),
    ('ladder', 'max_steps inf', {'max_steps': 'inf'}, "max_steps must be a whole number of at most 18 digits, got 'inf'"),
]


@pytest.mark.integration
@pytest.mark.parametrize('host', HOSTS)
def test_the_other_modules_refuse_what_their_spec_cannot_hold_and_hide_url_secrets(lab: Lab, host: str) -> None:
    """The four modules added after the table go through the same entry checks as the five in it, on both paths."""
    sandbox = {'profiles_root': str(lab.homes), 'state_dir': str(lab.root / 'state')} if host == 'posix' else {}
    cases = [{'key': key, 'module': module, 'args': {**args, **sandbox}} for module, key, args, _m in NATIVE_ENTRY]
    proxy = {'proxy': f'http://bob:{SECRET}@127.0.0.1:9', 'timeout': 1, **sandbox}
    cases.append({'key': 'diagnose proxy with a password', 'module': 'diagnose', 'args': proxy})
    cases_file = lab.root / f'native-entry-{host}.json'
    cases_file.write_text(json.dumps(cases))
    before = lab.state() if host == 'win' else posix_tree(lab.homes)

    completed, outcomes = lab.play('native_entry', host, {'cases_file': str(cases_file)})

    assert_ok(completed)
    # what the modules returned (the loop variable echoes the test's own arguments back)
    assert SECRET not in json.dumps([{k: v for k, v in o.items() if k != 'case'} for o in outcomes])
    by_key = {o['case']['key']: o for o in outcomes}
    for module, key, _args, message in NATIVE_ENTRY:
        assert by_key[key].get('failed') and by_key[key]['msg'] == message, (module, by_key[key].get('msg'))
    windows_message = ('proxy and no_proxy apply to macOS and Linux; on Windows each user\'s own proxy settings '
                       '(or the machine-wide policy) are probed')
    proxied = by_key['diagnose proxy with a password']
    assert (proxied.get('msg') == windows_message) if host == 'win' else not proxied.get('failed'), proxied
    if host == 'win':
        assert {k: v for k, v in lab.state().items() if k != 'calls'} == {k: v for k, v in before.items() if k != 'calls'}
    else:
        assert posix_tree(lab.homes) == before
