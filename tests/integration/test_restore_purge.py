"""playbooks/restore.yml undoes a ladder run; playbooks/purge.yml applies quarantine retention. Both in check mode first."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_lab_workstations, seed_posix_home

from .conftest import Lab, assert_ok
from .test_fleet_report import run_ladder

ROOT = Path(__file__).resolve().parents[2]
ALICE = 'S-1-5-21-1004336348-1177238915-682003330-1001'
ALICE_CACHE = 'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache'
FRANK_CACHE = Path('frank') / '.config' / 'Notion' / 'Cache'


def run(lab: Lab, playbook: str, variables: dict[str, t.Any], *flags: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(['ansible-playbook', '-i', str(lab.root / 'fleet-inventory.yml'),
                                str(ROOT / 'playbooks' / playbook), '-e', json.dumps(variables), *flags],
                               env=lab.env, capture_output=True, text=True, check=False, timeout=600)
    assert_ok(completed)
    return completed


def changed(completed: subprocess.CompletedProcess[str], host: str) -> int:
    found = re.search(rf'^{re.escape(host)}\s+: ok=\d+\s+changed=(\d+)', completed.stdout, re.M)
    assert found, completed.stdout[-2000:]
    return int(found.group(1))


def proxy_values(state: dict[str, t.Any]) -> dict[str, t.Any]:
    """The legacy WinINET values (the binary blobs carry a change counter a restore increments)."""
    key = 'software\\microsoft\\windows\\currentversion\\internet settings'
    return {sid: {n: v for n, v in hive.get(key, {}).get('values', {}).items() if v['type'] != 'REG_BINARY'}
            for sid, hive in state['hives'].items()}


def machine(state: dict[str, t.Any]) -> dict[str, t.Any]:
    return {k: v for k, v in state.items() if k != 'calls'}


@pytest.fixture
def after_a_run(lab: Lab) -> tuple[Lab, dict[str, t.Any], str, str]:
    seeded = seed_lab_workstations()['ws-win-01']
    lab.state_path.write_text(json.dumps(seeded))
    seed_posix_home(str(lab.homes), 'frank')
    reports = lab.root / 'reports'
    assert_ok(run_ladder(lab, reports, rungs=('app_data', 'proxy', 'firewall')))
    quarantine_id = json.loads((reports / 'ws-win.json').read_text())['rungs'][0]['quarantine_id']
    assert quarantine_id and not any(ALICE_CACHE in p for p in lab.state()['files'])
    linux_id = json.loads((reports / 'ws-linux.json').read_text())['rungs'][0]['quarantine_id']
    assert linux_id != quarantine_id, 'every host has its own id: restore names the run by its report'
    return lab, copy.deepcopy(seeded), quarantine_id, str(reports / 'fleet' / 'report.json')


@pytest.mark.integration
def test_restore_undoes_the_run_after_a_check_mode_preview(after_a_run: tuple[Lab, dict[str, t.Any], str, str]) -> None:
    lab, seeded, report = after_a_run[0], after_a_run[1], after_a_run[3]
    ran = machine(lab.state())
    preview = run(lab, 'restore.yml', {'restore_report': report}, '--check', '--diff')
    assert changed(preview, 'ws-win') == 3 and changed(preview, 'ws-linux') == 1
    assert machine(lab.state()) == ran, 'check mode changed nothing'
    assert not (lab.homes / FRANK_CACHE).exists()

    restored = run(lab, 'restore.yml', {'restore_report': report}, '--diff')
    assert changed(restored, 'ws-win') == 3
    state = lab.state()
    assert any(p.lower().startswith(ALICE_CACHE.lower()) for p in state['files']), "alice's cache is back"
    assert (lab.homes / FRANK_CACHE).is_dir(), "frank's cache is back"
    assert {r['name']: r for r in state['firewall_rules']} == {r['name']: r for r in seeded['firewall_rules']}, \
        'the block rule is enabled again and the allow rules are gone'
    assert proxy_values(state) == proxy_values(seeded)
    assert proxy_values(state)[ALICE], 'the comparison compared something'

    again = run(lab, 'restore.yml', {'restore_report': report})
    assert changed(again, 'ws-win') == 0 and changed(again, 'ws-linux') == 0


@pytest.mark.integration
def test_restore_refuses_an_id_that_is_not_one(lab: Lab) -> None:
    lab.state_path.write_text(json.dumps(seed_lab_workstations()['ws-win-01']))
    (lab.root / 'fleet-inventory.yml').write_text(json.dumps({'all': {'hosts': {'ws-win': {
        'ansible_connection': 'loopbreaker.notion.simulated_windows', 'loopbreaker_simulated_state': str(lab.state_path)}}}}))
    completed = subprocess.run(['ansible-playbook', '-i', str(lab.root / 'fleet-inventory.yml'),
                                str(ROOT / 'playbooks' / 'restore.yml'), '-e', 'restore_hosts=all restore_quarantine_id=../x'],
                               env=lab.env, capture_output=True, text=True, check=False, timeout=300)
    assert completed.returncode != 0 and 'name the run to undo' in completed.stdout


@pytest.mark.integration
def test_purge_applies_retention_after_a_check_mode_preview(after_a_run: tuple[Lab, dict[str, t.Any], str, str]) -> None:
    lab, quarantine_id = after_a_run[0], after_a_run[2]
    entries = lab.homes / 'frank' / '.local' / 'share' / 'loopbreaker' / 'quarantine'
    (linux_id,) = [p.name for p in entries.iterdir()]
    kept = run(lab, 'purge.yml', {})
    assert changed(kept, 'ws-win') == 0 and changed(kept, 'ws-linux') == 0, 'nothing is 30 days old yet'

    ran = machine(lab.state())
    preview = run(lab, 'purge.yml', {'purge_older_than': '0s'}, '--check', '--diff')
    assert changed(preview, 'ws-win') == 1 and changed(preview, 'ws-linux') == 1
    assert '2 entr(y/ies)' in preview.stdout and 'would be purged' in preview.stdout
    assert machine(lab.state()) == ran and [p.name for p in entries.iterdir()] == [linux_id]

    purged = run(lab, 'purge.yml', {'purge_older_than': '0s'})
    assert changed(purged, 'ws-win') == 1 and list(entries.iterdir()) == []
    assert not any(quarantine_id in p for p in lab.state()['files'])
    again = run(lab, 'purge.yml', {'purge_older_than': '0s'})
    assert changed(again, 'ws-win') == 0 and changed(again, 'ws-linux') == 0


@pytest.mark.integration
def test_restore_by_one_id_on_one_host(after_a_run: tuple[Lab, dict[str, t.Any], str, str]) -> None:
    lab, quarantine_id = after_a_run[0], after_a_run[2]
    restored = run(lab, 'restore.yml', {'restore_quarantine_id': quarantine_id, 'restore_steps': ['quarantine']},
                   '--limit', 'ws-win')
    assert changed(restored, 'ws-win') == 1
    assert any(p.lower().startswith(ALICE_CACHE.lower()) for p in lab.state()['files'])
    assert not (lab.homes / FRANK_CACHE).exists(), 'the limit kept the other host out'
