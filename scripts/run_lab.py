#!/usr/bin/env python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The main job on the bundled lab: the escalation ladder in check mode, for real, then a re-check.

Seeds a fresh lab (two simulated Windows workstations and a Linux workstation
with sandboxed homes) under .cache/lab, runs playbooks/ladder.yml three times
with inventories/lab, and prints what each host's rungs did. Run it with
`make lab`, which prepares the virtualenv and Ansible's environment.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / '.venv'))

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[str(ROOT / '.venv')])._install()

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import (  # noqa: E402
    LAB_INSTALLER,
    LAB_INSTALLER_VERSION,
    installer_content,
    seed_lab_workstations,
    seed_posix_home,
)

LADDER = ['app_data', 'proxy', 'restart', 'firewall', 'reinstall']
# restart and reinstall act every time by design; the re-check covers the converging rungs.
CONVERGING = ['app_data', 'proxy', 'firewall']
PASSES = (
    ('check', ['--check', '--diff'], LADDER, 'Check mode: what the ladder would do (nothing changes)'),
    ('apply', ['--diff'], LADDER, 'Apply: the ladder for real'),
    ('recheck', ['--check'], CONVERGING, 'Re-check: the converging rungs should find nothing left to do'),
)


def seed(lab_dir: Path) -> None:
    if lab_dir.exists():
        shutil.rmtree(lab_dir)
    lab_dir.mkdir(parents=True)
    for host, state in seed_lab_workstations().items():
        (lab_dir / f'{host}.json').write_text(json.dumps(state, indent=1, sort_keys=True))
    homes = lab_dir / 'ws-linux-01' / 'home'
    seed_posix_home(str(homes), 'frank')
    seed_posix_home(str(homes), 'grace', with_notion=False)


def run_pass(name: str, flags: list[str], rungs: list[str], lab_dir: Path, verbose: bool) -> int:
    reports = lab_dir / 'reports' / name
    reports.mkdir(parents=True)
    variables = {'escalation_report_dir': str(reports), 'escalation_rungs': rungs,
                 'escalation_app_installer': LAB_INSTALLER,
                 'escalation_app_checksum': hashlib.sha256(installer_content(LAB_INSTALLER_VERSION)).hexdigest()}
    command = ['ansible-playbook', '-i', str(ROOT / 'inventories' / 'lab'), str(ROOT / 'playbooks' / 'ladder.yml'),
               *flags, '-e', json.dumps(variables)]
    env = dict(os.environ, LOOPBREAKER_LAB_DIR=str(lab_dir))
    completed = subprocess.run(command, env=env, capture_output=not verbose, text=True, check=False)
    if completed.returncode and not verbose:
        sys.stdout.write(completed.stdout + completed.stderr)
    return completed.returncode


def summarise(name: str, title: str, lab_dir: Path) -> None:
    print(f'\n== {title}')
    print(f'{"host":<12} {"rung":<9} {"user":<10} {"status":<14} {"items":>5} {"bytes":>7} {"stopped":>7}  quarantine')
    manual: set[str] = set()
    for report_file in sorted((lab_dir / 'reports' / name).glob('*.json')):
        report = json.loads(report_file.read_text())
        for rung in report['rungs']:
            manual.update(rung.get('manual_actions') or [])
            if rung['rung'] == 'firewall' or rung.get('not_applicable'):
                print(f'{report["host"]:<12} {rung["rung"]:<9} {rung["summary"]}')
                continue
            nobody = {'user': '-', 'status': 'clean', 'items': 0, 'bytes': 0, 'processes_stopped': 0, 'errors': []}
            for user in rung['users'] or [nobody]:
                print(f'{report["host"]:<12} {rung["rung"]:<9} {user["user"]:<10} {user["status"]:<14} '
                      f'{user["items"]:>5} {user["bytes"]:>7} {user["processes_stopped"]:>7}  '
                      f'{rung["quarantine_id"] or "-"}')
                for error in user['errors']:
                    print(f'{"":<12} error: {error}')
    for action in sorted(manual):
        print(f'manual action: {action}')
    fleet = lab_dir / 'reports' / name / 'fleet'
    if (fleet / 'report.html').exists():
        print(f'fleet report: {fleet / "report.html"} (and report.json, junit.xml)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lab-dir', type=Path, default=ROOT / '.cache' / 'lab')
    parser.add_argument('--verbose', action='store_true', help='show the ansible-playbook output')
    args = parser.parse_args()
    seed(args.lab_dir)
    print(f'lab seeded in {args.lab_dir}:\n'
          '  ws-win-01   alice logged on, Notion running, corporate proxy, a firewall rule blocking her Notion.exe;\n'
          '              bob logged off, redirected AppData, PAC script; carol without Notion\n'
          '  ws-win-02   machine-wide proxy policy; dave; erin with AppData on D:\n'
          '  ws-linux-01 frank; grace without Notion (sandboxed homes, no GNOME session: proxy not applicable)')
    for name, flags, rungs, title in PASSES:
        code = run_pass(name, flags, rungs, args.lab_dir, args.verbose)
        summarise(name, title, args.lab_dir)
        if code:
            print(f'\nansible-playbook failed in the {name} pass (exit {code})')
            return code
    print(f'\nquarantine entries and simulated hosts stay in {args.lab_dir} for inspection')
    return 0


if __name__ == '__main__':
    sys.exit(main())
