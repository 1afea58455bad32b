"""Rung selection: tables of diagnosis x incident memory x options -> the rung the ladder applies."""
from __future__ import annotations

import re
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
    ((), ['app_data'], {'incident': 'INC-1', 'escalate': True}, 'browser_data', 'escalate'),
    ((), ['app_data', 'browser_data'], {'incident': 'INC-1', 'escalate': True}, 'sessions', 'escalate'),
    ((), ['reinstall'], {'incident': 'INC-1', 'escalate': True}, None, 'no rung left'),
    # options
    ((WS,), [], {'skip': ['proxy']}, None, 'proxy not available here'),
    ((WS,), [], {'max_rung': 'app_data'}, None, 'proxy not available here'),
    ((), [], {'incident': 'INC-1', 'skip': ['app_data']}, 'browser_data', 'incident with no finding'),
    ((), [], {'incident': 'INC-1', 'skip': ['app_data', 'browser_data']}, 'sessions', 'incident with no finding'),
    # manual only
    ((DNS,), [], {'incident': 'INC-1'}, None, 'only manual actions'),
])
def test_rung_selection(findings: tuple[tuple[str, str | None], ...], tried: list[str], options: dict[str, t.Any],
                        rung: str | None, reason: str) -> None:
    plan = _ladder.plan(diagnosis(*findings), tried, **options)
    assert plan['rung'] == rung
    assert reason in plan['reason']


def test_browser_data_is_the_second_rung_now_that_its_module_exists() -> None:
    plan = _ladder.plan(diagnosis(('browser_only', 'browser_data')), [], incident='INC-1')
    assert plan['rung'] == 'browser_data' and not any('browser_data' in note for note in plan['notes'])
    assert _ladder.plan(diagnosis(), ['app_data'], incident='I', escalate=True)['rung'] == 'browser_data'
    params = {**{name: spec.get('default') for name, spec in _ladder.ARGUMENT_SPEC.items()}, 'browser_stop': True}
    assert _ladder.rung_args('browser_data', params, ['alice'], {}) == {'stop_browser': True, 'users': ['alice']}


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


def params(**options: t.Any) -> dict[str, t.Any]:
    """The ladder action's parameters with the spec's defaults."""
    values = {name: spec.get('default') for name, spec in _ladder.ARGUMENT_SPEC.items()}
    return {**values, **options}


WINDOWS = {'platform': 'windows', 'facts': {'users': [{'user': 'alice', 'proxy_scope': 'user'}]},
           'users': [{'user': 'alice', 'logged_on': True, 'notion_running': True},
                     {'user': 'bob', 'logged_on': False, 'notion_running': False}]}
MACHINE_PROXY = {'platform': 'windows', 'facts': {'users': [{'user': 'alice', 'proxy_scope': 'machine'}]}}
LINUX = {'platform': 'linux', 'facts': {'users': [{'user': 'frank', 'proxy_scope': 'host'}]}}


@pytest.mark.parametrize('rung, options, diagnosed, expected', [
    ('app_data', {}, WINDOWS, {'scopes': ['cache', 'service_workers', 'storage'], 'users': ['alice']}),
    ('sessions', {'profiles_root': '/h', 'state_dir': '/s'}, LINUX,
     {'scopes': ['cookies'], 'users': ['alice'], 'profiles_root': '/h', 'state_dir': '/s'}),
    ('proxy', {}, WINDOWS, {'mode': 'bypass', 'users': ['alice']}),
    # the machine-wide policy, and macOS/Linux, are not per user
    ('proxy', {'proxy_bypass_hosts': ['*.notion.so']}, MACHINE_PROXY, {'mode': 'bypass', 'bypass_hosts': ['*.notion.so']}),
    ('proxy', {'proxy_mode': 'direct', 'proxy_bypass_hosts': ['x']}, LINUX, {'mode': 'direct'}),
    ('restart', {}, WINDOWS, {'state': 'restarted', 'users': ['alice']}),
    ('reinstall', {'app_installer': 'C:\\i.exe', 'app_checksum': 'ab'}, WINDOWS,
     {'state': 'reinstalled', 'users': ['alice'], 'installer': 'C:\\i.exe', 'checksum': 'ab'}),
    ('firewall', {'profiles_root': '/h', 'state_dir': '/s'}, LINUX,
     {'state': 'present', 'conflicts': 'disable', 'users': ['alice'], 'profiles_root': '/h'}),
])
def test_each_rung_gets_the_arguments_its_task_had(rung: str, options: dict[str, t.Any], diagnosed: dict[str, t.Any],
                                                   expected: dict[str, t.Any]) -> None:
    assert _ladder.rung_args(rung, params(**options), ['alice'], diagnosed) == expected


def test_relaunch_only_where_the_rung_stopped_notion_for_a_logged_on_user() -> None:
    assert _ladder.relaunch_users('app_data', WINDOWS, ['alice', 'bob']) == ['alice']
    assert _ladder.relaunch_users('app_data', WINDOWS, ['bob']) == []
    assert _ladder.relaunch_users('proxy', WINDOWS, ['alice']) == []
    assert _ladder.relaunch_users('sessions', {**WINDOWS, 'platform': 'linux'}, ['alice']) == []


def test_a_rediagnosis_probes_what_the_last_diagnosis_found() -> None:
    first = _ladder.diagnose_args(params(incident='INC-1', diagnose={'network': False, 'port': None}))
    assert first == {'network': False, 'incident': 'INC-1'}
    again = _ladder.diagnose_args(params(users=['alice']), since='T', previous={'facts': {'proxies': [{'mode': 'direct'}]}})
    assert again == {'users': ['alice'], 'since': 'T', 'expect_proxies': [{'mode': 'direct'}]}


@pytest.mark.parametrize('options, message', [
    ({'max_steps': 0}, "ladder_max_steps) must be at least 1"),
    ({'max_steps': 101}, 'at most 100'),
    ({'settle_seconds': 3601}, 'must be between 0 and 3600, not 3601'),
    ({'escalate': True}, 'escalate needs incident'),
    ({'diagnose': {'users': ['x']}}, 'diagnose: unsupported option(s) users'),
])
def test_the_action_refuses(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _ladder.validate(params(**options))


def test_reinstall_is_skipped_without_an_installer() -> None:
    assert _ladder.effective_skip(params(skip=['proxy'])) == ['proxy', 'reinstall']
    assert _ladder.effective_skip(params(app_installer='C:\\i.exe')) == []
    assert _ladder.stopped_at([{'rung': 'app_data'}, {'rung': 'proxy'}, {'rung': None}]) == 'proxy'


def test_the_module_docs_describe_the_action_spec() -> None:
    """ansible-doc renders plugins/modules/ladder.py; the action validates with _ladder.ARGUMENT_SPEC: the same options."""
    import yaml  # pylint: disable=import-outside-toplevel

    from ansible_collections.loopbreaker.notion.plugins.modules import ladder as docs  # pylint: disable=import-outside-toplevel
    options = yaml.safe_load(docs.DOCUMENTATION)['options']
    assert sorted(options) == sorted(_ladder.ARGUMENT_SPEC)
    for name, spec in _ladder.ARGUMENT_SPEC.items():
        documented = options[name]
        assert documented['type'] == spec['type'], name
        assert documented.get('default') == spec.get('default'), name
        assert documented.get('choices') == spec.get('choices'), name
        assert documented.get('elements') == spec.get('elements'), name
