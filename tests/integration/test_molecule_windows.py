"""molecule/windows's playbooks, run against the simulated Windows host instead of a real machine.

The scenario itself needs a real Windows 10/11 machine and skips without one; this runs its converge
(twice: molecule's idempotence pass) and destroy on the twin, seeded as the scenario's prepare would
seed a real machine, so a broken play or a four-run assertion that cannot hold is caught here first.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_windows_user
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

from .conftest import assert_ok

SCENARIO = Path(__file__).resolve().parents[2] / 'molecule' / 'windows'
SID = 'S-1-5-21-1-2-3-1001'
EXE = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe'
SEEDED_BLOCK = {
    'name': 'loopbreaker-molecule-block', 'display_name': 'loopbreaker molecule: block Notion', 'direction': 'out',
    'action': 'block', 'profiles': ['private', 'public'], 'program': EXE, 'enabled': True,
    'description': 'seeded by molecule/windows',
}
NOT_CONFIGURED = {name: '' for name in ('LOOPBREAKER_WINDOWS_HOST', 'LOOPBREAKER_WINDOWS_USER',
                                        'LOOPBREAKER_WINDOWS_PASSWORD', 'LOOPBREAKER_WINDOWS_TEST_USER')}


def run(playbook: str, tmp_path: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(['ansible-playbook', '-i', str(tmp_path / 'inventory.yml'), str(SCENARIO / playbook), *flags],
                          env={**env, **NOT_CONFIGURED, 'MOLECULE_EPHEMERAL_DIRECTORY': str(tmp_path)},
                          capture_output=True, text=True, check=False, timeout=600)


def recap_changed(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith('twin '))
    return int(line.split('changed=')[1].split()[0])


@pytest.fixture
def twin_inventory(tmp_path: Path) -> Path:
    state = tmp_path / 'win.json'
    twin = SimulatedWindows(empty_state())
    seed_windows_user(twin, 'alice', SID, loaded=False)
    twin.state['firewall_rules'] = [dict(SEEDED_BLOCK)]
    state.write_text(json.dumps(twin.state))
    (tmp_path / 'inventory.yml').write_text(json.dumps({'all': {'children': {'windows_under_test': {'hosts': {'twin': {
        'ansible_connection': 'loopbreaker.notion.simulated_windows', 'loopbreaker_simulated_state': str(state),
        'windows_test_user': 'alice'}}}}}}))
    return state


@pytest.mark.integration
def test_converge_holds_its_four_runs_and_the_second_converge_changes_nothing(
        tmp_path: Path, ansible_env: dict[str, str], twin_inventory: Path) -> None:
    first = run('converge.yml', tmp_path, ansible_env)
    assert_ok(first)
    assert recap_changed(first.stdout) > 0
    state = json.loads(twin_inventory.read_text())
    assert not any(key.startswith('c:\\users\\alice\\appdata\\roaming\\notion\\cache\\') for key in state['files'])
    assert [rule['enabled'] for rule in state['firewall_rules'] if rule['name'] == SEEDED_BLOCK['name']] == [False]
    assert state['mounted_hives'] == [] or SID not in state['mounted_hives']

    second = run('converge.yml', tmp_path, ansible_env)
    assert_ok(second)
    assert recap_changed(second.stdout) == 0


@pytest.mark.integration
def test_destroy_puts_back_what_the_rungs_changed(tmp_path: Path, ansible_env: dict[str, str],
                                                  twin_inventory: Path) -> None:
    before = json.loads(twin_inventory.read_text())
    assert_ok(run('converge.yml', tmp_path, ansible_env))
    assert_ok(run('destroy.yml', tmp_path, ansible_env, '--skip-tags', 'seed'))
    after = json.loads(twin_inventory.read_text())
    assert after['firewall_rules'] == before['firewall_rules']
    cache = [key for key in before['files'] if key.startswith('c:\\users\\alice\\appdata\\roaming\\notion\\cache\\')]
    assert cache and all(after['files'][key].get('content') == before['files'][key].get('content')
                         and after['files'][key]['type'] == before['files'][key]['type'] for key in cache)


@pytest.mark.integration
def test_without_a_host_every_play_skips_and_says_so_once(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    (tmp_path / 'inventory.yml').write_text((SCENARIO / 'inventory.yml').read_text())
    outputs = [run(playbook, tmp_path, ansible_env) for playbook in ('prepare.yml', 'converge.yml', 'destroy.yml')]
    for completed in outputs:
        assert_ok(completed)
    said = sum(completed.stdout.count('molecule windows: skipped, no Windows host configured') for completed in outputs)
    assert said == 1


@pytest.mark.integration
def test_a_half_configured_host_is_refused_before_anything_runs(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    (tmp_path / 'inventory.yml').write_text((SCENARIO / 'inventory.yml').read_text())
    completed = subprocess.run(
        ['ansible-playbook', '-i', str(tmp_path / 'inventory.yml'), str(SCENARIO / 'converge.yml')],
        env={**ansible_env, **NOT_CONFIGURED, 'LOOPBREAKER_WINDOWS_HOST': 'ws01.corp.example.com'},
        capture_output=True, text=True, check=False, timeout=600)
    assert completed.returncode != 0
    assert 'LOOPBREAKER_WINDOWS_CA (the listener' in completed.stdout
    assert 'Add the machine' not in completed.stdout
