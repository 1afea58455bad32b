"""Rung selection: tables of diagnosis x incident memory x options -> the rung the ladder applies."""
from __future__ import annotations

import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _ladder


def diagnosis(*findings: tuple[str, str | None]) -> dict[str, t.Any]:
    return {'findings': [{'code': code, 'rung': rung, 'user': 'alice', 'meaning': code} for code, rung in findings],
            'users': [{'user': 'alice', 'verdict': 'unhealthy' if findings else 'healthy'}]}


WS = ('websocket_blocked', 'proxy')
CACHE = ('cache_corrupt', 'app_data')
CRASH = ('renderer_crashed', 'restart')
DNS = ('dns_failure', None)


@pytest.mark.parametrize('findings, tried, options, rung, reason', [
    # a finding that names a rung goes there first, not to a cache wipe that cannot help
    ((WS,), [], {}, 'proxy', 'findings point to proxy: websocket_blocked'),
    ((CRASH, WS), [], {}, 'proxy', 'findings point to proxy'),
    ((CACHE, CRASH), [], {}, 'app_data', 'findings point to app_data'),
    # an incident without findings: the lowest rung not yet tried, once
    ((), [], {'incident': 'INC-1'}, 'app_data', 'incident with no finding'),
    ((), ['app_data'], {'incident': 'INC-1'}, None, 'healthy; incident INC-1 already tried app_data'),
    ((), [], {'incident': 'INC-1', 'resolved': True}, None, 'healthy'),
    # no incident: only findings act
    ((), [], {}, None, 'healthy: no finding'),
    # tried and persisting: climb above the highest tried rung
    ((WS,), ['proxy'], {'incident': 'INC-1'}, 'restart', 'proxy already tried and the findings persist'),
    ((WS,), ['proxy'], {}, None, 'every rung they point to was tried'),
    # escalate: exactly the next rung above those tried, whatever the diagnosis
    ((), ['proxy'], {'incident': 'INC-1', 'escalate': True}, 'restart', 'escalate'),
    ((), ['app_data'], {'incident': 'INC-1', 'escalate': True}, 'sessions', 'escalate'),
    ((), ['reinstall'], {'incident': 'INC-1', 'escalate': True}, None, 'no rung left'),
    # options
    ((WS,), [], {'skip': ['proxy']}, None, 'proxy not available here'),
    ((WS,), [], {'max_rung': 'app_data'}, None, 'proxy not available here'),
    ((), [], {'incident': 'INC-1', 'skip': ['app_data']}, 'sessions', 'incident with no finding'),
    # manual only
    ((DNS,), [], {'incident': 'INC-1'}, None, 'only manual actions'),
])
def test_rung_selection(findings: tuple[tuple[str, str | None], ...], tried: list[str], options: dict[str, t.Any],
                        rung: str | None, reason: str) -> None:
    plan = _ladder.plan(diagnosis(*findings), tried, **options)
    assert plan['rung'] == rung
    assert reason in plan['reason']


def test_browser_data_has_a_slot_that_is_skipped_and_says_so() -> None:
    plan = _ladder.plan(diagnosis(('browser_only', 'browser_data')), [], incident='INC-1')
    assert plan['rung'] is None
    assert 'browser_data: skipped, the browser_data module is not in this version yet' in plan['notes']
    assert 'browser_data' not in _ladder.plan(diagnosis(), ['app_data'], incident='I', escalate=True)['rung']


def test_the_climb_lists_what_follows_if_the_loop_persists() -> None:
    plan = _ladder.plan(diagnosis(WS), [], max_rung='firewall')
    assert plan['climb'] == ['proxy', 'restart', 'firewall']
    assert plan['users'] == ['alice']


@pytest.mark.parametrize('options, message', [
    ({'escalate': True}, 'ladder_escalate needs an incident'),
    ({'skip': ['wipe_disk']}, 'unknown rung(s): wipe_disk'),
    ({'max_rung': 'nuke'}, 'unknown rung(s): nuke'),
])
def test_bad_options(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        _ladder.plan(diagnosis(), [], **options)
