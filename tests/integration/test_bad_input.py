"""Bad input fails with a clear message, before anything on the host changes."""
from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS

from .conftest import FakeNotion, Lab, assert_ok, own_homes
from .test_app_data import posix_tree, seed_both

COMMON_CASES = [
    ('unknown scope', {'scopes': ['everything']},
     'value of scopes must be one or more of: all, cache, service_workers, storage, cookies. Got no match for: everything'),
    ('unknown user', {'users': ['mallory']},
     'unknown user(s): mallory; profiles on this host: alice, bob, carol'),
    ('users and exclude_users', {'users': ['alice'], 'exclude_users': ['bob']},
     'parameters are mutually exclusive: users|exclude_users'),
    ('empty user name', {'users': ['']}, 'users must not contain empty names'),
    ('stop_timeout zero', {'stop_timeout': 0}, 'stop_timeout must be at least 1 second, got 0'),
    ('Notion running and stop_app false', {'stop_app': False}, 'Notion is running for alice (pid '),
    ('restore without id', {'state': 'restored'}, 'state is restored but all of the following are missing: id'),
    ('purge without selector', {'state': 'purged'},
     'state is purged but any of the following are missing: id, older_than'),
    ('malformed id', {'state': 'restored', 'id': '../../etc'},
     "id '../../etc' is not a quarantine entry id (like '20261129T141500Z-1a2b3c')"),
    ('malformed age', {'state': 'purged', 'older_than': 'a while'},
     "older_than must look like '7d', '12h', '30m', '2w' or '45s', got 'a while'"),
    ('unknown state', {'state': 'shredded'}, 'value of state must be one of: listed, restored, purged, got: shredded'),
]
QUARANTINE_CASES = {'restore without id', 'purge without selector', 'malformed id', 'malformed age', 'unknown state'}
POSIX_ONLY = [
    ('relative profiles_root', {'profiles_root': 'homes'}, "profiles_root must be an absolute path, got 'homes'"),
    ('missing profiles_root', {'profiles_root': '/nonexistent/homes'},
     "profiles_root '/nonexistent/homes' does not exist or is not a directory"),
]
WINDOWS_ONLY = [
    ('profiles_root on Windows', {'profiles_root': 'C:\\Users'},
     "profiles_root applies to macOS and Linux hosts; on Windows the profiles come from the host's ProfileList"),
]


def _cases(host: str, homes: Path) -> tuple[list[dict[str, object]], dict[str, str]]:
    cases, expected = [], {}
    for name, args, message in COMMON_CASES + (POSIX_ONLY if host == 'posix' else WINDOWS_ONLY):
        module = 'quarantine' if name in QUARANTINE_CASES else 'app_data'
        if host == 'posix' and 'profiles_root' not in args:
            args = {**args, 'profiles_root': str(homes)}
        cases.append({'name': name, 'module': module, 'args': args})
        expected[name] = message
    return cases, expected


@pytest.fixture
def fake_notion(lab: Lab) -> t.Iterator[FakeNotion]:
    """A process named 'notion' in alice's sandboxed home, as her session would run it (HOME is hers)."""
    (lab.homes / 'alice').mkdir(parents=True, exist_ok=True)
    process = FakeNotion(lab.homes / 'alice')
    yield process
    process.close()


@pytest.mark.integration
@pytest.mark.parametrize('host', ['win', 'posix'])
def test_bad_input_fails_clearly_and_changes_nothing(lab: Lab, host: str, fake_notion: FakeNotion) -> None:
    seed_both(lab, running=True)
    own_homes(lab.homes)
    cases, expected = _cases(host, lab.homes)
    before = lab.state() if host == 'win' else posix_tree(lab.homes)
    completed, outcomes = lab.play('bad_input', host, {'cases': cases})
    assert_ok(completed)
    assert [o['name'] for o in outcomes] == [c['name'] for c in cases]
    for outcome in outcomes:
        result = outcome['result']
        assert result.get('failed') is True, outcome
        assert expected[outcome['name']] in result['msg'], (outcome['name'], result['msg'])
        assert not result.get('changed'), outcome['name']
    if host == 'win':
        after = lab.state()
        for key in ('files', 'processes', 'hives', 'mounted_hives', 'firewall_rules'):
            assert after[key] == before[key], key
        sent = [name for call in after['calls'] for name in call['operations']]
        assert sent and not [name for name in sent if OPERATIONS[name].mutates], 'only probes were sent'
    else:
        assert posix_tree(lab.homes) == before
        assert fake_notion.running(), 'the running Notion was left alone'
