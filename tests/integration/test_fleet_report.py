"""The fleet_report callback on real runs: the ladder enables it, configuration enables it elsewhere."""
from __future__ import annotations

import json
import re
import subprocess
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_posix_home, seed_windows_user

from .conftest import TARGETS, Lab, assert_ok

ROOT = Path(__file__).resolve().parents[2]
ALICE = 'S-1-5-21-1-2-3-1001'
BOB = 'S-1-5-21-1-2-3-1002'


def seed(lab: Lab) -> None:
    twin = lab.twin()
    seed_windows_user(twin, 'alice', ALICE, loaded=True, running=True)
    seed_windows_user(twin, 'bob', BOB, loaded=False)
    lab.save(twin)
    seed_posix_home(str(lab.homes), 'frank')


def run_ladder(lab: Lab, reports: Path, *flags: str, env: dict[str, str] | None = None,
               rungs: tuple[str, ...] = ('app_data', 'proxy', 'restart', 'firewall')) -> subprocess.CompletedProcess[str]:
    inventory = lab.root / 'fleet-inventory.yml'
    inventory.write_text(json.dumps({'notion_workstations': {'hosts': {
        'ws-win': {'ansible_connection': 'loopbreaker.notion.simulated_windows', 'loopbreaker_simulated_state': str(lab.state_path)},
        'ws-linux': {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
                     'escalation_profiles_root': str(lab.homes), 'escalation_state_dir': str(lab.root / 'state')},
    }}}))
    variables = {'escalation_report_dir': str(reports), 'escalation_rungs': list(rungs), 'incident_id': 'INC0042'}
    return subprocess.run(['ansible-playbook', '-i', str(inventory), str(ROOT / 'playbooks' / 'escalation.yml'), *flags,
                           '-e', json.dumps(variables)], env=env or lab.env, capture_output=True, text=True, check=False,
                          timeout=600)


def custom_stats(stdout: str) -> dict[str, t.Any]:
    line = re.search(r'^\tRUN: (.*)$', stdout, re.M)
    assert line, stdout[-2000:]
    return json.loads(line.group(1))


@pytest.mark.integration
def test_the_ladder_writes_the_fleet_report_and_hands_outcomes_to_awx(lab: Lab) -> None:
    seed(lab)
    reports = lab.root / 'reports'
    completed = run_ladder(lab, reports, env=dict(lab.env, ANSIBLE_SHOW_CUSTOM_STATS='true'))
    assert_ok(completed)
    assert completed.stdout.count('fleet report: ') == 1
    fleet = reports / 'fleet'
    doc = json.loads((fleet / 'report.json').read_text())
    assert (doc['schema'], doc['schema_version']) == ('loopbreaker.notion/fleet-report', 1)
    run = doc['run']
    assert (run['incident_id'], run['check_mode'], run['collection_version'], run['playbooks']) == ('INC0042', False, '0.1.0', ['escalation.yml'])
    assert run['started'] <= run['ended'] and re.fullmatch(r'\d{8}T\d{6}Z-[0-9a-f]{6}', run['id'])

    hosts = {h['host']: h for h in doc['hosts']}
    assert sorted(hosts) == ['ws-linux', 'ws-win']
    win = hosts['ws-win']
    assert [r['rung'] for r in win['rungs']] == ['app_data', 'proxy', 'restart', 'firewall']
    assert (win['rung_reached'], win['detection'], win['remediation']) == ('firewall', 'issue', 'fixed')
    app_data = win['rungs'][0]
    alice = [s for s in app_data['subjects'] if s['subject'] == 'alice'][0]
    assert alice['moved'] and all(m['to'].startswith('C:\\Users\\alice\\AppData\\Local\\loopbreaker\\quarantine\\')
                                  for m in alice['moved'])
    assert f"id={app_data['quarantine_id']}" in alice['restore']
    assert win['manual_actions'], 'cookies were cleared: the account-wide sign-out is left to a person'
    linux = hosts['ws-linux']
    assert [(r['rung'], r['detection']) for r in linux['rungs']][1:] == \
        [('proxy', 'not_applicable'), ('restart', 'not_applicable'), ('firewall', 'not_applicable')]
    assert linux['rung_reached'] == 'app_data'

    # The role's per-host reports and the fleet report describe the same rungs.
    for name, host in hosts.items():
        role_report = json.loads((reports / f'{name}.json').read_text())
        assert [r['rung'] for r in role_report['rungs']] == [r['rung'] for r in host['rungs']]
        assert [r['outcome'] for r in role_report['rungs']] == \
            [{'detection': r['detection'], 'remediation': r['remediation']} for r in host['rungs']]

    stats = custom_stats(completed.stdout)['loopbreaker_notion']
    assert stats['ws-win']['rung_reached'] == 'firewall'
    assert stats['ws-win']['rungs'] == {r['rung']: {'detection': r['detection'], 'remediation': r['remediation']}
                                        for r in win['rungs']}

    junit = ET.fromstring((fleet / 'junit.xml').read_text())
    cases = [(c.get('classname'), c.get('name')) for c in junit.iter('testcase')]
    assert sorted(cases) == sorted((f'loopbreaker.notion.{h}', r['rung']) for h in hosts for r in hosts[h]['rungs'])
    assert junit.get('skipped') == '3' and junit.get('failures') == '0'
    html = (fleet / 'report.html').read_text()
    assert 'INC0042' in html and 'ws-win' in html
    for path in ('report.json', 'report.html', 'junit.xml'):
        assert (fleet / path).stat().st_mode & 0o777 == 0o600


@pytest.mark.integration
def test_check_mode_reports_fixes_as_pending(lab: Lab) -> None:
    seed(lab)
    completed = run_ladder(lab, lab.root / 'reports', '--check', rungs=('app_data',))
    assert_ok(completed)
    doc = json.loads((lab.root / 'reports' / 'fleet' / 'report.json').read_text())
    assert doc['run']['check_mode'] is True
    assert {h['host']: h['remediation'] for h in doc['hosts']} == {'ws-win': 'pending', 'ws-linux': 'pending'}
    assert doc['totals']['remediation']['pending'] == 2


@pytest.mark.integration
def test_enabled_by_configuration_for_any_playbook(lab: Lab) -> None:
    seed_posix_home(str(lab.homes), 'frank')
    out = lab.root / 'configured'
    env = dict(lab.env, ANSIBLE_CALLBACKS_ENABLED='loopbreaker.notion.fleet_report', LOOPBREAKER_FLEET_REPORT_DIR=str(out))
    dump = lab.root / 'clear.json'
    completed = subprocess.run(['ansible-playbook', '-i', str(lab.root / 'inventory.yml'), str(TARGETS / 'clear.yml'),
                                '-e', json.dumps({'target_host': 'posix', 'dump_path': str(dump), 'homes': str(lab.homes),
                                                  'state_dir': str(lab.root / 'state')})],
                               env=env, capture_output=True, text=True, check=False, timeout=300)
    assert_ok(completed)
    doc = json.loads((out / 'report.json').read_text())
    (host,) = doc['hosts']
    assert (host['host'], [r['rung'] for r in host['rungs']], host['remediation']) == ('posix', ['app_data'], 'fixed')


@pytest.mark.integration
def test_configured_and_ladder_callbacks_write_once(lab: Lab) -> None:
    seed(lab)
    out = lab.root / 'configured'
    env = dict(lab.env, ANSIBLE_CALLBACKS_ENABLED='loopbreaker.notion.fleet_report', LOOPBREAKER_FLEET_REPORT_DIR=str(out))
    completed = run_ladder(lab, lab.root / 'reports', '--check', env=env, rungs=('app_data',))
    assert_ok(completed)
    assert completed.stdout.count('fleet report: ') == 1
    assert (out / 'report.json').exists() and not (lab.root / 'reports' / 'fleet').exists()


@pytest.mark.integration
def test_each_item_of_a_looped_task_is_a_result(lab: Lab) -> None:
    seed_posix_home(str(lab.homes), 'frank')
    out = lab.root / 'configured'
    env = dict(lab.env, ANSIBLE_CALLBACKS_ENABLED='loopbreaker.notion.fleet_report', LOOPBREAKER_FLEET_REPORT_DIR=str(out))
    completed = subprocess.run(['ansible-playbook', '-i', str(lab.root / 'inventory.yml'), str(TARGETS / 'fleet_loop.yml'),
                                '-e', json.dumps({'target_host': 'posix', 'homes': str(lab.homes), 'state_dir': str(lab.root / 'state')})],
                               env=env, capture_output=True, text=True, check=False, timeout=300)
    assert_ok(completed)
    (host,) = json.loads((out / 'report.json').read_text())['hosts']
    assert [(r['rung'], r['remediation']) for r in host['rungs']] == [('app_data', 'fixed'), ('app_data', 'fixed')]
    assert host['manual_actions'], 'the cookies item signs the device out'
