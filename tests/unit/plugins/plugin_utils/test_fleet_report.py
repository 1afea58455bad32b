# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the fleet report: outcomes per module result, roll-ups, and the JUnit and HTML documents."""
from __future__ import annotations

import json
import re
import typing as t
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.loopbreaker.notion.plugins.filter.rung_outcome import rung_outcome
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_render import to_html, to_junit
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_report import (
    SCHEMA_VERSION,
    FleetReport,
    rung_of,
    rung_record,
    stats_summary,
    worst,
)

COOKIES_ACTION = 'Account-wide "Log out of all sessions" has no API'


def app_data_result(*statuses: str, quarantine_id: str | None = 'Q1') -> dict[str, t.Any]:
    users = []
    for index, status in enumerate(statuses):
        items = [{'path': f'/home/u{index}/.config/Notion/Cache', 'scope': 'cache', 'bytes': 10,
                  'quarantine_path': f'/home/u{index}/q/Q1/items/000-Cache', 'action': 'quarantined'}] if status == 'cleared' else []
        users.append({'user': f'u{index}', 'status': status, 'items': items, 'bytes': 10 if items else 0,
                      'processes_stopped': [], 'quarantine_path': f'/home/u{index}/q/Q1', 'errors': ['locked'] if status == 'failed' else []})
    return {'changed': 'cleared' in statuses, 'users': users, 'quarantine_id': quarantine_id, 'manual_actions': [COOKIES_ACTION]}


@pytest.mark.parametrize(('module', 'args', 'result', 'rung'), [
    ('app_data', {}, {}, 'app_data'),
    ('app', {'state': 'restarted'}, {}, 'restart'),
    ('app', {}, {'state': 'reinstalled'}, 'reinstall'),
    ('app', {'state': 'absent'}, {}, 'app'),
    ('quarantine', {}, {}, None),
    ('quarantine', {'state': 'listed'}, {}, None),
    ('quarantine', {'state': 'restored'}, {}, 'quarantine'),
    ('win_bridge', {}, {}, None),
    ('browser_data', {}, {}, 'browser_data'),
])
def test_rung_of(module: str, args: dict[str, t.Any], result: dict[str, t.Any], rung: str | None) -> None:
    assert rung_of(module, args, result) == rung


@pytest.mark.parametrize(('outcomes', 'expected'), [
    ([], ('healthy', 'skipped')),
    ([('healthy', 'skipped'), ('issue', 'fixed')], ('issue', 'fixed')),
    ([('issue', 'fixed'), ('issue', 'pending')], ('issue', 'pending')),
    ([('error', 'skipped'), ('issue', 'failed')], ('error', 'failed')),
    ([('not_applicable', 'skipped'), ('healthy', 'skipped')], ('healthy', 'skipped')),
])
def test_worst(outcomes: list[tuple[str, str]], expected: tuple[str, str]) -> None:
    assert worst(outcomes) == expected


@pytest.mark.parametrize(('statuses', 'check_mode', 'outcome'), [
    (('cleared', 'clean'), False, ('issue', 'fixed')),
    (('cleared', 'clean'), True, ('issue', 'pending')),
    (('clean',), False, ('healthy', 'skipped')),
    (('cleared', 'failed'), False, ('issue', 'failed')),
])
def test_app_data_outcomes(statuses: tuple[str, ...], check_mode: bool, outcome: tuple[str, str]) -> None:
    record = rung_record('app_data', 'app_data', app_data_result(*statuses), check_mode=check_mode)
    assert (record['detection'], record['remediation']) == outcome
    first = record['subjects'][0]
    if statuses[0] == 'cleared':
        assert first['moved'] == [{'from': '/home/u0/.config/Notion/Cache', 'to': '/home/u0/q/Q1/items/000-Cache',
                                   'scope': 'cache', 'bytes': 10}]
        assert first['restore'].startswith('loopbreaker.notion.quarantine state=restored id=Q1 users=u0')


@pytest.mark.parametrize(('module', 'result', 'ids'), [
    ('app_data', app_data_result('cleared'), ['Q1']),
    ('app_data', app_data_result('clean', quarantine_id=None), []),
    # app keeps each user's removed data under an id of its own; restore.yml must see them all
    ('app', {'changed': True, 'users': [{'user': 'u0', 'status': 'reinstalled', 'quarantine_id': 'Q2'},
                                        {'user': 'u1', 'status': 'reinstalled', 'quarantine_id': 'Q3'},
                                        {'user': 'u2', 'status': 'unchanged', 'quarantine_id': None}]}, ['Q2', 'Q3']),
    ('app', {'changed': False}, []),
])
def test_a_rung_lists_every_quarantine_entry_it_made(module: str, result: dict[str, t.Any], ids: list[str]) -> None:
    assert rung_record(module, module, result, check_mode=False)['quarantine_ids'] == ids


def test_manual_actions_only_where_they_apply() -> None:
    assert rung_record('app_data', 'app_data', app_data_result('cleared'), check_mode=False)['manual_actions'] == [COOKIES_ACTION]
    assert rung_record('app_data', 'app_data', app_data_result('clean'), check_mode=False)['manual_actions'] == []


def test_failures_carry_their_messages() -> None:
    record = rung_record('app_data', 'app_data', {**app_data_result('cleared', 'failed'), 'failed': True, 'msg': 'u1: locked'},
                         check_mode=False)
    assert record['failures'] == [{'subject': 'u1', 'message': 'locked'}, {'subject': None, 'message': 'u1: locked'}]
    whole = rung_record('proxy', 'proxy', {'failed': True, 'msg': 'unknown user(s): zed'}, check_mode=False)
    assert (whole['detection'], whole['remediation'], whole['failures']) == \
        ('error', 'failed', [{'subject': None, 'message': 'unknown user(s): zed'}])


@pytest.mark.parametrize(('status', 'outcome'), [
    ('changed', ('issue', 'fixed')), ('unchanged', ('healthy', 'skipped')), ('not_configured', ('healthy', 'skipped')),
    ('unparsable', ('error', 'skipped')), ('failed', ('issue', 'failed')),
])
def test_proxy_outcomes(status: str, outcome: tuple[str, str]) -> None:
    result = {'changed': status == 'changed', 'targets': [{'name': 'alice', 'status': status, 'before': 'proxy:8080',
                                                           'after': 'proxy:8080 bypass notion.so', 'notes': ['n']}]}
    record = rung_record('proxy', 'proxy', result, check_mode=False)
    assert (record['detection'], record['remediation']) == outcome
    assert bool(record['subjects'][0]['restore']) is (status == 'changed')


@pytest.mark.parametrize(('status', 'outcome'), [
    ('restarted', ('issue', 'fixed')), ('reinstalled', ('issue', 'fixed')), ('unchanged', ('healthy', 'skipped')),
    ('pending', ('issue', 'pending')), ('failed', ('issue', 'failed')),
])
def test_app_outcomes(status: str, outcome: tuple[str, str]) -> None:
    result = {'users': [{'user': 'bob', 'status': status, 'reason': 'not logged on' if status == 'pending' else 'boom',
                         'version_before': '7.1', 'version_after': '7.36'}]}
    record = rung_record('reinstall', 'app', result, check_mode=False)
    assert (record['detection'], record['remediation']) == outcome
    subject = record['subjects'][0]
    assert subject['note'] == ('not logged on' if status == 'pending' else '' if status == 'failed' else 'boom')
    assert subject['errors'] == (['boom'] if status == 'failed' else [])


def firewall_program(user: str, rule_status: str, conflicts: list[str] | None = None) -> dict[str, t.Any]:
    return {'path': f'C:\\Users\\{user}\\Notion.exe', 'user': user, 'covered': True, 'conflicts': conflicts or [],
            'rules': [{'name': f'loopbreaker.notion-{user}-in', 'direction': 'inbound', 'status': rule_status}]}


def test_firewall_outcomes() -> None:
    result = {'programs': [firewall_program('alice', 'added', ['Block Notion']), firewall_program('bob', 'unchanged'),
                           firewall_program('carol', 'unchanged', ['Other block']), firewall_program('dave', 'failed'),
                           {**firewall_program('erin', 'added'), 'covered': False}],
              'disabled': [{'name': 'Block Notion'}], 'removed': []}
    record = rung_record('firewall', 'firewall', result, check_mode=False)
    outcomes = {s['subject'].split(':')[0]: (s['detection'], s['remediation']) for s in record['subjects']}
    assert outcomes == {'alice': ('issue', 'fixed'), 'bob': ('healthy', 'skipped'), 'carol': ('issue', 'pending'),
                        'dave': ('issue', 'failed')}
    alice = record['subjects'][0]
    assert alice['changes'] == ['allow rule loopbreaker.notion-alice-in added', 'block rule Block Notion disabled or removed']
    assert 'state=restored' in alice['restore']
    assert (record['detection'], record['remediation']) == ('issue', 'failed')


def test_macos_firewall_program() -> None:
    result = {'programs': [{'path': '/Applications/Notion.app', 'user': None, 'covered': True, 'status_before': 'blocked',
                            'status': 'allowed'}]}
    record = rung_record('firewall', 'firewall', result, check_mode=False)
    assert (record['subjects'][0]['detection'], record['subjects'][0]['remediation']) == ('issue', 'fixed')


def test_not_applicable_and_unknown_rungs() -> None:
    record = rung_record('proxy', 'proxy', {'changed': False, 'not_applicable': True, 'msg': 'no GNOME'}, check_mode=False)
    assert (record['detection'], record['remediation'], record['message']) == ('not_applicable', 'skipped', 'no GNOME')
    future = rung_record('browser_data', 'browser_data', {'changed': True, 'users': [{'user': 'a', 'status': 'cleared'}]},
                         check_mode=False)
    assert (future['detection'], future['remediation']) == ('issue', 'fixed')


def test_the_filter_matches_the_report() -> None:
    assert rung_outcome(app_data_result('cleared'), 'app_data', True) == {'detection': 'issue', 'remediation': 'pending'}
    assert rung_outcome({'users': [{'user': 'a', 'status': 'restarted'}]}, 'restart') == \
        {'detection': 'issue', 'remediation': 'fixed'}


def fleet() -> FleetReport:
    report = FleetReport(run_id='R1', started='2026-12-01T10:00:00Z', check_mode=False, collection_version='0.1.0',
                         ansible_core_version='2.19.14', incident_id='INC1')
    report.add_result('ws-2', 'app_data', {}, app_data_result('cleared'), check_mode=False)
    report.add_result('ws-2', 'proxy', {}, {'not_applicable': True, 'msg': 'no GNOME'}, check_mode=False)
    report.add_result('ws-1', 'quarantine', {'state': 'listed'}, {'entries': []}, check_mode=False)
    report.add_result('ws-1', 'future_rung', {}, {'users': [{'user': 'x', 'status': 'clean'}]}, check_mode=False)
    report.add_result('ws-1', 'firewall', {}, {'programs': [firewall_program('x', 'failed')], 'failed': True, 'msg': 'rule failed'},
                      check_mode=False)
    report.add_result('ws-1', 'app_data', {}, app_data_result('clean'), check_mode=False)
    report.add_unreachable('ws-3', 'timed out')
    return report


def diagnosis(*codes: str) -> dict[str, t.Any]:
    findings = [{'code': code, 'user': 'alice', 'rung': 'app_data', 'evidence': {'path': 'x'}} for code in codes]
    return {'changed': False, 'verdict': 'healthy' if not codes else 'issue', 'findings': findings, 'users': []}


@pytest.mark.parametrize(('after', 'rung_outcome', 'expected'), [
    # the ladder: diagnosed, fixed at app_data, re-diagnosed healthy
    (diagnosis(), 'cleared', ('app_data', 'issue', 'fixed')),
    # fixed by the rung's own account, but the re-diagnosis still finds it: not fixed yet
    (diagnosis('cache_corrupt'), 'cleared', ('app_data', 'issue', 'pending')),
    # check mode: no re-diagnosis
    (None, 'cleared', ('app_data', 'issue', 'fixed')),
])
def test_diagnose_and_incident_are_the_states_around_the_rungs_not_rungs(
        after: dict[str, t.Any] | None, rung_outcome: str, expected: tuple[str, str, str]) -> None:
    report = FleetReport(run_id='R1', started='2026-12-01T10:00:00Z', check_mode=False, collection_version='0.1.0',
                         ansible_core_version='2.19.14', incident_id='INC1')
    report.add_result('ws', 'diagnose', {}, diagnosis('cache_corrupt'), check_mode=False)
    report.add_result('ws', 'app_data', {}, app_data_result(rung_outcome), check_mode=False)
    if after is not None:
        report.add_result('ws', 'diagnose', {'since': 'T'}, after, check_mode=False)
    report.add_result('ws', 'incident', {}, {'changed': True, 'incident': {'id': 'INC1', 'state': 'resolved'}},
                      check_mode=False)
    (host,) = report.document(ended='2026-12-01T10:05:00Z')['hosts']
    assert [r['rung'] for r in host['rungs']] == ['app_data']
    assert (host['rung_reached'], host['detection'], host['remediation']) == expected
    assert host['before'] == {'verdict': 'issue', 'codes': ['cache_corrupt'],
                              'findings': [{'code': 'cache_corrupt', 'user': 'alice', 'rung': 'app_data'}]}
    expected_after = None if after is None else {
        'verdict': after['verdict'], 'codes': sorted({f['code'] for f in after['findings']}),
        'findings': [{'code': f['code'], 'user': 'alice', 'rung': 'app_data'} for f in after['findings']]}
    assert host['after'] == expected_after
    assert host['incident'] == {'id': 'INC1', 'state': 'resolved'}
    html = to_html(report.document(ended='2026-12-01T10:05:00Z'))
    assert 'data-when="before">Before: <b>issue</b> (cache_corrupt)' in html
    assert ('data-when="after"' in html) == (after is not None)


def ladder_result(*, after: dict[str, t.Any] | None, rung: str = 'app_data', relaunch: dict[str, t.Any] | None = None,
                  failed: str = '') -> dict[str, t.Any]:
    """A loopbreaker.notion.ladder result: one step at ``rung``, its module result, relaunch and incident."""
    step: dict[str, t.Any] = {'rung': rung, 'module': 'app_data', 'reason': 'findings point to app_data',
                              'result': app_data_result('cleared'),
                              'incident_result': {'changed': True, 'incident': {'id': 'INC1', 'state': 'resolved'}}}
    if relaunch is not None:
        step['relaunch'] = relaunch
    result: dict[str, t.Any] = {'changed': True, 'steps': [step, {'rung': None, 'reason': 'healthy'}],
                                'diagnosis': {'before': diagnosis('cache_corrupt'), 'after': after}}
    if failed:
        result.update(failed=True, msg=failed)
    return result


@pytest.mark.parametrize(('rung', 'after', 'expected'), [
    ('app_data', diagnosis(), ('app_data', 'issue', 'fixed')),
    ('app_data', diagnosis('cache_corrupt'), ('app_data', 'issue', 'pending')),
    # check mode: no re-diagnosis
    ('app_data', None, ('app_data', 'issue', 'fixed')),
    # the sessions rung is app_data clearing cookies: reported as the rung it is
    ('sessions', diagnosis(), ('sessions', 'issue', 'fixed')),
])
def test_a_ladder_result_is_its_diagnoses_rungs_and_incident(rung: str, after: dict[str, t.Any] | None,
                                                             expected: tuple[str, str, str]) -> None:
    one_task = FleetReport(run_id='R1', started='2026-12-01T10:00:00Z', check_mode=False, collection_version='0.1.0',
                           ansible_core_version='2.19.14', incident_id='INC1')
    one_task.add_result('ws', 'ladder', {}, ladder_result(after=after, rung=rung,
                                                          relaunch={'changed': True, 'users': [{'user': 'alice',
                                                                                                'status': 'restarted'}]}),
                        check_mode=False, task='Climb')
    (host,) = one_task.document(ended='2026-12-01T10:05:00Z')['hosts']
    # the relaunch of Notion after app_data is part of that rung, not a restart rung
    assert [r['rung'] for r in host['rungs']] == [rung]
    assert host['rungs'][0]['subjects'][0]['moved'], 'the rung module result reaches the adapter'
    assert (host['rung_reached'], host['detection'], host['remediation']) == expected
    assert host['before']['codes'] == ['cache_corrupt']
    assert (host['after'] is None) == (after is None)
    assert host['incident'] == {'id': 'INC1', 'state': 'resolved'}
    if rung == 'app_data':  # the same as the role's separate tasks
        tasks = FleetReport(run_id='R1', started='2026-12-01T10:00:00Z', check_mode=False, collection_version='0.1.0',
                            ansible_core_version='2.19.14', incident_id='INC1')
        tasks.add_result('ws', 'diagnose', {}, diagnosis('cache_corrupt'), check_mode=False)
        tasks.add_result('ws', 'app_data', {}, app_data_result('cleared'), check_mode=False, task='Climb: app_data')
        if after is not None:
            tasks.add_result('ws', 'diagnose', {}, after, check_mode=False)
        tasks.add_result('ws', 'incident', {}, {'changed': True, 'incident': {'id': 'INC1', 'state': 'resolved'}},
                         check_mode=False)
        assert tasks.document(ended='E')['hosts'] == one_task.document(ended='E')['hosts']


def test_a_failed_ladder_reports_the_failure_once() -> None:
    report = FleetReport(run_id='R1', started='2026-12-01T10:00:00Z', check_mode=False, collection_version='0.1.0',
                         ansible_core_version='2.19.14')
    report.add_result('ws', 'ladder', {}, ladder_result(after=None, relaunch={'failed': True, 'msg': 'no session'},
                                                        failed='relaunching Notion after app_data failed: no session'),
                      check_mode=False)
    report.add_result('ws2', 'ladder', {}, {'failed': True, 'msg': 'diagnose failed: users lists unknown user(s): x',
                                            'steps': [], 'diagnosis': {'before': None, 'after': None}},
                      check_mode=False)
    hosts = {h['host']: h for h in report.document(ended='2026-12-01T10:05:00Z')['hosts']}
    assert [f['message'] for f in hosts['ws']['failures']] == ['relaunching Notion failed: no session']
    assert (hosts['ws']['rungs'][0]['remediation'], hosts['ws']['remediation']) == ('failed', 'failed')
    assert hosts['ws2']['failures'] == [{'rung': None, 'subject': 'ladder',
                                         'message': 'diagnose failed: users lists unknown user(s): x'}]
    assert hosts['ws2']['detection'] == 'error'


def test_a_failed_diagnosis_is_an_error_of_the_host() -> None:
    report = FleetReport(run_id='R1', started='2026-12-01T10:00:00Z', check_mode=False, collection_version='0.1.0',
                         ansible_core_version='2.19.14')
    report.add_result('ws', 'diagnose', {}, diagnosis(), check_mode=False)
    report.add_result('ws', 'diagnose', {}, {'failed': True, 'msg': 'users lists unknown user(s): x'}, check_mode=False)
    (host,) = report.document(ended='2026-12-01T10:05:00Z')['hosts']
    # the failed second diagnosis is an error of the host, with its message, not a rung
    assert (host['rung_reached'], host['detection'], host['remediation'], host['rungs']) == (None, 'error', 'skipped', [])
    assert host['after'] is None and host['before']['verdict'] == 'healthy'
    assert host['failures'] == [{'rung': None, 'subject': 'diagnose', 'message': 'users lists unknown user(s): x'}]


def test_document() -> None:
    doc = fleet().document(ended='2026-12-01T10:05:00Z')
    assert (doc['schema_version'], doc['run']['id'], doc['run']['ended'], doc['run']['incident_id']) == \
        (SCHEMA_VERSION, 'R1', '2026-12-01T10:05:00Z', 'INC1')
    assert doc['rungs'] == ['app_data', 'proxy', 'firewall', 'future_rung']
    hosts = {h['host']: h for h in doc['hosts']}
    assert [r['rung'] for r in hosts['ws-1']['rungs']] == ['app_data', 'firewall', 'future_rung'], 'ladder order, future rungs last'
    assert (hosts['ws-1']['rung_reached'], hosts['ws-1']['detection'], hosts['ws-1']['remediation']) == \
        ('future_rung', 'issue', 'failed')
    assert (hosts['ws-2']['rung_reached'], hosts['ws-2']['remediation'], hosts['ws-2']['manual_actions']) == \
        ('app_data', 'fixed', [COOKIES_ACTION])
    assert (hosts['ws-3']['detection'], hosts['ws-3']['remediation'], hosts['ws-3']['rung_reached']) == ('error', 'failed', None)
    assert doc['totals'] == {'hosts': 3, 'detection': {'healthy': 0, 'issue': 2, 'error': 1, 'not_applicable': 0},
                             'remediation': {'skipped': 0, 'fixed': 1, 'failed': 2, 'pending': 0}}
    assert doc['per_rung']['proxy']['detection']['not_applicable'] == 1
    assert stats_summary(doc)['hosts']['ws-2'] == {'rung_reached': 'app_data', 'detection': 'issue', 'remediation': 'fixed'}
    json.dumps(doc)


def test_junit_has_one_case_per_host_and_rung() -> None:
    doc = fleet().document(ended='2026-12-01T10:05:00Z')
    root = ET.fromstring(to_junit(doc))
    cases = [(c.get('classname'), c.get('name'), [e.tag for e in c if e.tag != 'system-out']) for c in root.iter('testcase')]
    assert cases == [
        ('loopbreaker.notion.ws-2', 'app_data', []), ('loopbreaker.notion.ws-2', 'proxy', ['skipped']),
        ('loopbreaker.notion.ws-1', 'app_data', []), ('loopbreaker.notion.ws-1', 'firewall', ['failure']),
        ('loopbreaker.notion.ws-1', 'future_rung', []), ('loopbreaker.notion.ws-3', 'connection', ['failure']),
    ]
    assert (root.get('tests'), root.get('failures'), root.get('errors'), root.get('skipped')) == ('6', '2', '0', '1')


def test_html_is_self_contained_and_escapes_what_hosts_report() -> None:
    report = fleet()
    report.add_result('<b>ws</b>', 'app_data', {}, {'users': [{'user': '</script><script>alert(1)</script>', 'status': 'clean'}]},
                      check_mode=False)
    page = to_html(report.document(ended='2026-12-01T10:05:00Z'))
    assert '<script>alert(1)' not in page and '<b>ws</b>' not in page
    assert not re.search(r'(src|href)="(https?:)?//', page), 'nothing is fetched from the network'
    embedded = re.search(r'<script type="application/json" id="fleet-report-data">(.*?)</script>', page, re.S)
    assert embedded and '<' not in embedded.group(1)
    assert json.loads(embedded.group(1))['hosts'][-1]['rungs'][0]['subjects'][0]['subject'] == '</script><script>alert(1)</script>'
