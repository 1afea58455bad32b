"""The escalation role through playbooks/escalation.yml: tags, the report folder, users a host lacks."""
from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_posix_home, seed_windows_user

from .conftest import Lab, assert_ok

LADDER = Path(__file__).resolve().parents[2] / 'playbooks' / 'escalation.yml'
ALICE = 'S-1-5-21-1-2-3-1001'
BOB = 'S-1-5-21-1-2-3-1002'


def seed(lab: Lab) -> None:
    twin = lab.twin()
    seed_windows_user(twin, 'alice', ALICE, loaded=True)
    seed_windows_user(twin, 'bob', BOB, loaded=False)
    lab.save(twin)
    seed_posix_home(str(lab.homes), 'frank')
    seed_posix_home(str(lab.homes), 'grace')


def ladder(lab: Lab, variables: dict[str, t.Any], *flags: str) -> tuple[subprocess.CompletedProcess[str], dict[str, t.Any]]:
    inventory = lab.root / 'ladder-inventory.yml'
    inventory.write_text(json.dumps({'notion_workstations': {'hosts': {
        'win': {'ansible_connection': 'loopbreaker.notion.simulated_windows',
                'loopbreaker_simulated_state': str(lab.state_path)},
        'posix': {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
                  'escalation_profiles_root': str(lab.homes), 'escalation_state_dir': str(lab.root / 'state')},
    }}}))
    reports = lab.root / 'reports' / 'not' / 'yet'
    completed = subprocess.run(
        ['ansible-playbook', '-i', str(inventory), str(LADDER), *flags,
         '-e', json.dumps({'escalation_report_dir': str(reports), **variables})],
        env=lab.env, capture_output=True, text=True, check=False, timeout=600)
    found = {p.stem: json.loads(p.read_text()) for p in reports.glob('*.json')}
    return completed, found


@pytest.mark.integration
def test_tags_pick_rungs_and_the_report_folder_is_made_first(lab: Lab) -> None:
    seed(lab)
    completed, reports = ladder(lab, {'escalation_rungs': ['app_data', 'proxy', 'firewall']}, '--tags', 'firewall', '--check')
    assert_ok(completed)
    assert sorted(reports) == ['posix', 'win'], 'the folder did not exist; the role made it'
    assert oct((lab.root / 'reports' / 'not' / 'yet').stat().st_mode & 0o777) == '0o700'
    for report in reports.values():
        assert [r['rung'] for r in report['rungs']] == ['firewall']

    completed, reports = ladder(lab, {'escalation_rungs': ['app_data', 'proxy', 'firewall']},
                                '--skip-tags', 'app_data,firewall', '--check')
    assert_ok(completed)
    assert [r['rung'] for r in reports['win']['rungs']] == ['proxy']


@pytest.mark.integration
def test_users_a_host_lacks_are_not_applicable_there(lab: Lab) -> None:
    seed(lab)
    before = lab.state()['files']
    completed, reports = ladder(lab, {'escalation_rungs': ['app_data', 'firewall'], 'escalation_users': ['alice', 'zed']})
    assert_ok(completed)

    win = reports['win']
    assert win['unknown_users'] == ['zed']
    (app_data, firewall) = win['rungs']
    assert [u['user'] for u in app_data['users']] == ['alice'] and app_data['changed'] is True
    assert firewall['changed'] is True and not firewall.get('not_applicable')

    posix = reports['posix']
    assert sorted(posix['unknown_users']) == ['alice', 'zed']
    assert [(r['rung'], r['changed'], r['not_applicable']) for r in posix['rungs']] == \
        [('app_data', False, True), ('firewall', False, True)]
    assert 'none of the users alice, zed' in posix['rungs'][0]['summary']
    assert (lab.homes / 'frank' / '.config' / 'Notion' / 'Cache').exists(), 'frank was not asked for'
    assert lab.state()['files'] != before


@pytest.mark.integration
def test_other_failures_still_fail(lab: Lab) -> None:
    seed(lab)
    completed = ladder(lab, {'escalation_rungs': ['app_data'], 'escalation_users': ['alice'],
                             'escalation_profiles_root': 'relative/path'})[0]
    assert completed.returncode != 0
    assert 'profiles_root must be an absolute path' in completed.stdout


@pytest.mark.integration
@pytest.mark.parametrize(('incident', 'ok'), [('INC0012345', True), ('../etc', False), ('a/b', False)])
def test_the_incident_id_is_a_plain_name(lab: Lab, incident: str, ok: bool) -> None:
    seed(lab)
    completed = ladder(lab, {'escalation_rungs': ['app_data'], 'incident_id': incident}, '--check')[0]
    assert (completed.returncode == 0) is ok, completed.stdout[-3000:]
    if not ok:
        assert 'incident_id must be' in completed.stdout
