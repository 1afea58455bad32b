"""Incident memory: records, idempotency, expiry, bad input, against the simulated Windows host."""
from __future__ import annotations

import datetime
import json
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _incident
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)


def params(**changes: t.Any) -> dict[str, t.Any]:
    base = {'id': 'INC-4711', 'state': 'listed', 'rung': None, 'users': [], 'before': [], 'after': [],
            'expire_days': 7, 'profiles_root': None, 'state_dir': None}
    return {**base, **changes}


def test_an_attempt_is_recorded_once_and_a_retry_changes_nothing() -> None:
    twin = SimulatedWindows(empty_state())
    attempt = params(state='resolved', rung='proxy', users=['alice'], before=['websocket_blocked'])
    first = _incident.run(twin, attempt, check_mode=False, now=NOW)
    assert first['changed'] and first['incident']['state'] == 'resolved' and first['incident']['tried'] == ['proxy']
    stored = json.loads(twin.op_read_records('incidents')['records'][0]['content'])
    assert stored['users']['alice']['attempts'][0]['before'] == ['websocket_blocked']
    again = _incident.run(twin, attempt, check_mode=False, now=NOW + datetime.timedelta(hours=1))
    assert not again['changed']
    calls = len(twin.state['calls'])
    listed = _incident.run(twin, params(), check_mode=False, now=NOW)
    assert listed['incident']['tried'] == ['proxy'] and len(twin.state['calls']) == calls + 1


def test_check_mode_writes_nothing_and_shows_the_diff() -> None:
    twin = SimulatedWindows(empty_state())
    result = _incident.run(twin, params(state='opened'), check_mode=True, now=NOW)
    assert result['changed'] and '"state": "opened"' in result['diff']['after']
    assert twin.op_read_records('incidents')['records'] == []


def test_an_incident_expires_and_opening_it_again_starts_afresh() -> None:
    twin = SimulatedWindows(empty_state())
    _incident.run(twin, params(state='escalated', rung='app_data', users=['bob']), check_mode=False, now=NOW)
    later = NOW + datetime.timedelta(days=8)
    assert _incident.run(twin, params(), check_mode=False, now=later)['incident']['state'] == 'expired'
    reopened = _incident.run(twin, params(state='opened'), check_mode=False, now=later)['incident']
    assert reopened['state'] == 'opened' and reopened['tried'] == [] and reopened['previous']['state'] == 'escalated'


@pytest.mark.parametrize('changes, message', [
    ({'id': '../../etc/passwd', 'state': 'opened'}, 'such as a ticket number'),
    ({'state': 'opened', 'rung': 'proxy'}, 'they apply to escalated and resolved'),
    ({'state': 'resolved', 'rung': 'proxy'}, 'needs the users'),
    ({'expire_days': 0}, 'expire_days must be between 1 and 3650'),
    # a day count beyond any date ended in an OverflowError traceback
    ({'expire_days': 10 ** 20}, 'expire_days must be between 1 and 3650'),
    ({'state': 'opened', 'users': ['a\x00b']}, 'users must not contain NUL characters'),
    ({'state': 'resolved', 'rung': 'proxy', 'users': ['a'], 'after': ['line\nbreak']}, 'after must not contain control'),
    ({'state': 'resolved', 'rung': 'proxy', 'users': ['a'], 'previous': 'x' * 1_000_001}, 'previous is too long'),
    ({'state': 'resolved', 'rung': 'proxy', 'users': ['a'], 'before': ['rm -rf']}, 'not codes'),
])
def test_bad_input(changes: dict[str, t.Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        _incident.validate(params(**changes))


def test_previous_saves_the_read_and_must_be_this_incident() -> None:
    twin = SimulatedWindows(empty_state())
    attempt = params(state='resolved', rung='proxy', users=['alice'], previous='null')
    first = _incident.run(twin, attempt, check_mode=False, now=NOW)
    assert [c['operations'] for c in twin.state['calls']] == [['write_record']]
    again = _incident.run(twin, {**attempt, 'previous': json.dumps(first['incident'])}, check_mode=False, now=NOW)
    assert not again['changed'] and len(twin.state['calls']) == 1
    with pytest.raises(RequestError, match='not the record of incident INC-4711'):
        _incident.run(twin, {**attempt, 'previous': '{"id": "OTHER", "updated": "x"}'}, check_mode=False, now=NOW)
