"""The collection as a whole: its action group, and the tarball a user installs."""
from __future__ import annotations

import json
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_posix_home, seed_windows_user

from .conftest import TARGETS, Lab, assert_ok

ALICE = 'S-1-5-21-1-2-3-1001'
BOB = 'S-1-5-21-1-2-3-1002'
PUBLIC_MODULES = ['app', 'app_data', 'browser_data', 'diagnose', 'firewall', 'incident', 'ladder', 'proxy', 'quarantine']
DEVELOPER_ONLY = ('Makefile', 'pyproject.toml', 'scripts', 'molecule', 'ee', 'inventories/lab', 'tests/unit',
                  'tests/integration', 'tests/benchmarks', 'tests/conftest.py', '.ci', '.config', '.ansible-lint',
                  'plugins/connection/simulated_windows.py', 'plugins/plugin_utils/_simulated_windows.py',
                  'plugins/plugin_utils/_simulated_firewall.py', 'plugins/plugin_utils/_simulated_packages.py',
                  'plugins/plugin_utils/_simulated_network.py', 'plugins/plugin_utils/_simulated_browsers.py',
                  'plugins/plugin_utils/_lab.py')


@pytest.mark.integration
def test_module_defaults_group_reaches_the_windows_path(lab: Lab) -> None:
    twin = lab.twin()
    seed_windows_user(twin, 'alice', ALICE, loaded=True)
    seed_windows_user(twin, 'bob', BOB, loaded=False)
    lab.save(twin)
    completed, results = lab.play('module_defaults_group', 'win', {'group_defaults': {'users': ['alice']}})
    assert_ok(completed)
    assert [u['user'] for u in results['app_data']['users']] == ['alice']
    assert {e['user'] for e in results['quarantine']['entries']} <= {'alice'}
    # bob is left out by the group's users: his hive is not loaded, so his Notion.exe is not even listed
    covered = {p['user']: p['covered'] for p in results['firewall']['programs']}
    assert covered == {'alice': True}
    assert BOB not in lab.state()['mounted_hives']


@pytest.mark.integration
def test_module_defaults_group_reaches_the_native_modules(lab: Lab) -> None:
    seed_posix_home(str(lab.homes), 'frank')
    seed_posix_home(str(lab.homes), 'grace')
    completed, results = lab.play('module_defaults_group', 'posix',
                                  {'group_defaults': {'profiles_root': str(lab.homes), 'exclude_users': ['grace']}})
    assert_ok(completed)
    assert [u['user'] for u in results['app_data']['users']] == ['frank']
    assert results['app_data']['users'][0]['profile_path'] == str(lab.homes / 'frank')
    assert results['quarantine']['failed'] is False
    assert results['firewall']['not_applicable'] is True


def _galaxy_build(collection_root: Path, out: Path, env: dict[str, str]) -> Path:
    completed = subprocess.run(['ansible-galaxy', 'collection', 'build', '--output-path', str(out), str(collection_root)],
                               env=env, capture_output=True, text=True, check=False)
    assert_ok(completed)
    (tarball,) = out.glob('loopbreaker-notion-*.tar.gz')
    return tarball


@pytest.mark.integration
def test_the_built_tarball_installs_and_works_without_the_test_tooling(lab: Lab, collection_root: Path) -> None:
    tarball = _galaxy_build(collection_root, lab.root / 'dist', lab.env)
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile('MANIFEST.json'))['collection_info']  # type: ignore[arg-type]
    assert 'COPYING' in names and 'meta/runtime.yml' in names and 'changelogs/changelog.yaml' in names
    assert [n for n in names if any(n == p or n.startswith(p + '/') for p in DEVELOPER_ONLY)] == []
    for key in ('repository', 'documentation', 'homepage', 'issues'):
        assert manifest[key].startswith('https://'), key

    installed = lab.root / 'installed'
    env = dict(lab.env, ANSIBLE_COLLECTIONS_PATH=str(installed))
    completed = subprocess.run(['ansible-galaxy', 'collection', 'install', '--offline', '-p', str(installed), str(tarball)],
                               env=env, capture_output=True, text=True, check=False)
    assert_ok(completed)
    root = installed / 'ansible_collections' / 'loopbreaker' / 'notion'
    assert not (root / 'plugins' / 'connection' / 'simulated_windows.py').exists()

    listing = subprocess.run(['ansible-doc', '-l', '--json', 'loopbreaker.notion'], env=env, capture_output=True,
                             text=True, check=True)
    assert sorted(json.loads(listing.stdout)) == sorted(f'loopbreaker.notion.{m}' for m in [*PUBLIC_MODULES, 'win_bridge'])
    connections = subprocess.run(['ansible-doc', '-t', 'connection', '-l', '--json', 'loopbreaker.notion'], env=env,
                                 capture_output=True, text=True, check=True)
    assert json.loads(connections.stdout) == {}
    doc = subprocess.run(['ansible-doc', '--json', 'loopbreaker.notion.app_data'], env=env, capture_output=True,
                         text=True, check=True)
    assert json.loads(doc.stdout)['loopbreaker.notion.app_data']['doc']['filename'].startswith(str(root))

    # The installed copy, not the working tree, clears a sandboxed home.
    seed_posix_home(str(lab.homes), 'frank')
    inventory = lab.root / 'posix-only.yml'
    inventory.write_text(json.dumps({'all': {'hosts': {'posix': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}}}))
    dump = lab.root / 'clear.json'
    completed = subprocess.run(
        ['ansible-playbook', '-i', str(inventory), str(TARGETS / 'clear.yml'), '-v',
         '-e', json.dumps({'target_host': 'posix', 'dump_path': str(dump), 'homes': str(lab.homes), 'state_dir': str(lab.root / 'state')})],
        env=env, capture_output=True, text=True, check=False)
    assert_ok(completed)
    result = json.loads(dump.read_text())
    assert [u['status'] for u in result['users']] == ['cleared']


@pytest.mark.integration
def test_the_installed_ladder_playbook_writes_its_fleet_report(lab: Lab, collection_root: Path) -> None:
    """ansible-playbook loopbreaker.notion.ladder finds the callback next to the installed playbook, unconfigured."""
    tarball = _galaxy_build(collection_root, lab.root / 'dist', lab.env)
    installed = lab.root / 'installed'
    env = dict(lab.env, ANSIBLE_COLLECTIONS_PATH=str(installed))
    assert_ok(subprocess.run(['ansible-galaxy', 'collection', 'install', '--offline', '-p', str(installed), str(tarball)],
                             env=env, capture_output=True, text=True, check=False))
    seed_posix_home(str(lab.homes), 'frank')
    inventory = lab.root / 'fleet.yml'
    inventory.write_text(json.dumps({'notion_workstations': {'hosts': {'posix': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}',
        'escalation_profiles_root': str(lab.homes), 'escalation_state_dir': str(lab.root / 'state')}}}}))
    reports = lab.root / 'reports'
    completed = subprocess.run(['ansible-playbook', '-i', str(inventory), 'loopbreaker.notion.escalation',
                                '-e', json.dumps({'escalation_report_dir': str(reports), 'escalation_rungs': ['app_data']})],
                               env=env, capture_output=True, text=True, check=False, timeout=300)
    assert_ok(completed)
    (host,) = json.loads((reports / 'fleet' / 'report.json').read_text())['hosts']
    assert (host['host'], host['rung_reached'], host['remediation']) == ('posix', 'app_data', 'fixed')


@pytest.mark.integration
def test_an_outside_playbook_runs_the_installed_ladder_role_with_module_defaults(lab: Lab, collection_root: Path) -> None:
    """Issue 10's "done when", from the tarball: a playbook of the user's own, the ladder role, the group's defaults.

    The lab's Linux workstation only: the simulated Windows hosts need the test-only connection, which
    the tarball leaves out on purpose.
    """
    from ansible_collections.loopbreaker.notion.plugins.plugin_utils._ladder_lab import seed_linux_lab

    tarball = _galaxy_build(collection_root, lab.root / 'dist', lab.env)
    installed = lab.root / 'installed'
    reports = lab.root / 'reports'
    env = dict(lab.env, ANSIBLE_COLLECTIONS_PATH=str(installed),
               ANSIBLE_CALLBACKS_ENABLED='loopbreaker.notion.fleet_report', LOOPBREAKER_FLEET_REPORT_DIR=str(reports))
    assert_ok(subprocess.run(['ansible-galaxy', 'collection', 'install', '--offline', '-p', str(installed), str(tarball)],
                             env=env, capture_output=True, text=True, check=False))
    seed_linux_lab(str(lab.homes))
    outside = lab.root / 'my-automation'
    outside.mkdir()
    (outside / 'inventory.yml').write_text(json.dumps({'all': {'hosts': {'ws-linux-01': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}}}))
    (outside / 'fix-notion.yml').write_text(json.dumps([{
        'name': 'Fix Notion for the ticket', 'hosts': 'all', 'gather_facts': False,
        'module_defaults': {'group/loopbreaker.notion.all': {'profiles_root': str(lab.homes),
                                                             'state_dir': str(lab.root / 'state')}},
        'roles': [{'role': 'loopbreaker.notion.ladder',
                   'vars': {'ladder_incident': 'INC-10', 'ladder_settle_seconds': 0, 'ladder_diagnose': {'network': False}}}],
    }]))
    completed = subprocess.run(['ansible-playbook', '-i', 'inventory.yml', 'fix-notion.yml'], cwd=outside, env=env,
                               capture_output=True, text=True, check=False, timeout=600)
    assert_ok(completed)

    doc = json.loads((reports / 'report.json').read_text())
    (host,) = doc['hosts']
    assert (host['host'], host['rung_reached'], host['remediation']) == ('ws-linux-01', 'app_data', 'fixed')
    assert not (lab.homes / 'grace' / '.config' / 'Notion' / 'notion.db').exists()
    suite = ET.parse(reports / 'junit.xml').getroot()
    cases = suite.findall('.//testcase')
    assert len(cases) == sum(len(h['rungs']) for h in doc['hosts'])
    assert len([c for c in cases if c.find('failure') is not None]) == sum(
        1 for h in doc['hosts'] for r in h['rungs'] if r['remediation'] == 'failed')
    html = (reports / 'report.html').read_text()
    assert 'ws-linux-01' in html and 'https://' not in html.split('<body', 1)[1].split('</body>')[0].replace(
        'https://www.notion.so', '')
