#!/usr/bin/env python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The main job on the bundled lab: the ladder for an incident, on workstations that are really broken.

Starts the lab's network services on loopback (a stand-in for Notion's hosts with
its own test CA, squid refusing the msgstore hosts, an intercepting proxy with a
foreign CA), seeds four simulated Windows workstations and a Linux workstation,
one fault each, under .cache/lab, then runs playbooks/ladder.yml with
inventories/lab four times: check mode (the climb it would make), the incident
(each host stops at the rung that matches its fault, re-diagnosed healthy), the
same incident again (nothing changes), and an escalation on one host (exactly one
rung more); then playbooks/restore.yml undoes those runs from their fleet reports and every host
must be as it was seeded (but for a reinstall, which is not undone). Stops the services at the end.
Run it with `make lab`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
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
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab_services import LabServices  # noqa: E402
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._ladder_lab import (  # noqa: E402
    EXPECTED,
    diagnose_options,
    home_snapshot,
    seed_ladder_lab,
    seed_linux_lab,
    windows_drift,
)

INCIDENT = 'INC-4711'
ESCALATE_HOST = 'ws-win-01'
PASSES = (
    ('check', ['--check', '--diff'], {}, None, 'Check mode: the diagnosis and the climb the ladder would make'),
    ('incident', ['--diff'], {}, None, f'The ladder for incident {INCIDENT}'),
    ('again', [], {}, None, 'The same incident again: nothing may change'),
    ('escalate', [], {'ladder_escalate': True}, ESCALATE_HOST, f'Escalating {INCIDENT} on {ESCALATE_HOST}: exactly one rung'),
)


LINUX_HOME = Path('ws-linux-01') / 'home'
RESTORED_FROM = ('escalate', 'incident')  # newest run first


def seed(lab_dir: Path, info: dict) -> dict[str, dict]:
    """Seed the lab; returns what each host looked like, to compare with after the restore."""
    seeded = seed_ladder_lab(info)
    for host, state in seeded.items():
        (lab_dir / f'{host}.json').write_text(json.dumps(state, indent=1, sort_keys=True))
    seed_linux_lab(str(lab_dir / LINUX_HOME))
    (lab_dir / 'diagnose.json').write_text(json.dumps(diagnose_options(info), indent=1))
    return {**json.loads(json.dumps(seeded)), 'ws-linux-01': home_snapshot(str(lab_dir / LINUX_HOME))}


def restore(lab_dir: Path, verbose: bool) -> list[str]:
    """Run restore.yml from each run's fleet report, newest first; returns the hosts' problems."""
    print('\n== restore.yml from the fleet reports of the escalation and the incident: every host as seeded')
    env = dict(os.environ, LOOPBREAKER_LAB_DIR=str(lab_dir))
    for name in RESTORED_FROM:
        report = lab_dir / 'reports' / name / 'fleet' / 'report.json'
        command = ['ansible-playbook', '-i', str(ROOT / 'inventories' / 'lab'), str(ROOT / 'playbooks' / 'restore.yml'),
                   '-e', json.dumps({'restore_report': str(report)})]
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if verbose or completed.returncode:
            sys.stdout.write(completed.stdout + completed.stderr)
        if completed.returncode:
            return [f'restore.yml failed for the {name} run (exit {completed.returncode})']
    return []


def drift(lab_dir: Path, seeded: dict[str, dict]) -> list[str]:
    problems = []
    for host, (_fault, rung, _codes) in EXPECTED.items():
        if host == 'ws-linux-01':
            now = home_snapshot(str(lab_dir / LINUX_HOME))
            found = [f'differs: {path}' for path in sorted(set(now) | set(seeded[host]))
                     if now.get(path) != seeded[host].get(path)]
        else:
            found = windows_drift(seeded[host], json.loads((lab_dir / f'{host}.json').read_text()),
                                  reinstalled=rung == 'reinstall')
        print(f'{host:<12} {"as seeded" if not found else "; ".join(found[:3])}')
        problems += [f'restore: {host} {problem}' for problem in found]
    return problems


def run_pass(name: str, flags: list[str], extra: dict, limit: str | None, lab_dir: Path,
             verbose: bool) -> tuple[int, dict[str, int]]:
    reports = lab_dir / 'reports' / name
    reports.mkdir(parents=True)
    variables = {'ladder_report_dir': str(reports), 'ladder_incident': INCIDENT,
                 'ladder_app_installer': LAB_INSTALLER,
                 'ladder_app_checksum': hashlib.sha256(installer_content(LAB_INSTALLER_VERSION)).hexdigest(), **extra}
    command = ['ansible-playbook', '-i', str(ROOT / 'inventories' / 'lab'), str(ROOT / 'playbooks' / 'ladder.yml'),
               *flags, '-e', json.dumps(variables), *(['--limit', limit] if limit else [])]
    env = dict(os.environ, LOOPBREAKER_LAB_DIR=str(lab_dir))
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if verbose or completed.returncode:
        sys.stdout.write(completed.stdout + completed.stderr)
    changed = {m.group(1): int(m.group(2)) for m in re.finditer(r'^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)',
                                                                completed.stdout, re.M)}
    return completed.returncode, changed


def summarise(name: str, title: str, lab_dir: Path, changed: dict[str, int]) -> list[str]:
    """Print the pass; return what went against the lab's expectations."""
    print(f'\n== {title}')
    print(f'{"host":<12} {"before":<48} {"rungs":<34} {"after":<10} changed')
    problems = []
    for report_file in sorted((lab_dir / 'reports' / name).glob('*.json')):
        report = json.loads(report_file.read_text())
        host = report['host']
        before = f"{report['before']['verdict']} {','.join(report['before']['codes'])}"
        rungs = ' > '.join(s['rung'] for s in report['steps'] if s['rung']) or 'nothing to do'
        print(f'{host:<12} {before[:48]:<48} {rungs[:34]:<34} {report["after"]["verdict"]:<10} {changed.get(host, "?")}')
        for step in report['steps']:
            if step['rung'] is None:
                print(f'{"":<12} {step["reason"]}')
            elif name == 'check':
                print(f'{"":<12} would apply {step["rung"]} ({step["reason"]}); climb: {" > ".join(step["climb"])}')
        _fault, rung, codes = EXPECTED[host]
        applied = [s['rung'] for s in report['steps'] if s['rung']]
        if name == 'check' and applied[:1] != [rung]:
            problems.append(f'{name}: {host} would start at {applied[:1]}, expected {rung}')
        if name == 'check' and not set(codes) <= set(report['before']['codes']):
            problems.append(f'{name}: {host} diagnosed {report["before"]["codes"]}, expected {list(codes)}')
        if name == 'incident' and (applied != [rung] or report['after']['verdict'] != 'healthy'):
            problems.append(f'{name}: {host} applied {applied} ending {report["after"]["verdict"]}, expected {rung} '
                            'and healthy')
        if name == 'again' and (applied or changed.get(host)):
            problems.append(f'{name}: {host} applied {applied}, changed={changed.get(host)}; expected nothing')
        if name == 'escalate' and len(applied) != 1:
            problems.append(f'{name}: {host} applied {applied}, expected exactly one rung')
    fleet = lab_dir / 'reports' / name / 'fleet'
    if (fleet / 'report.html').exists():
        print(f'fleet report: {fleet / "report.html"} (and report.json, junit.xml)')
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lab-dir', type=Path, default=ROOT / '.cache' / 'lab')
    parser.add_argument('--verbose', action='store_true', help='show the ansible-playbook output')
    args = parser.parse_args()
    if args.lab_dir.exists():
        shutil.rmtree(args.lab_dir)
    args.lab_dir.mkdir(parents=True)
    services = LabServices(args.lab_dir / 'services')
    info = services.start()
    problems: list[str] = []
    try:
        seeded = seed(args.lab_dir, info)
        print(f'lab services: Notion stand-in https://127.0.0.1:{info["notion_port"]} (CA {info["ca_bundle"]}), '
              f'squid {info["squid_proxy"]} (refuses msgstore), intercepting proxy {info["intercepting_proxy"]} '
              f'({info["foreign_ca"]})')
        for host, (fault, rung, _codes) in EXPECTED.items():
            print(f'  {host:<12} {fault}  -> expected rung: {rung}')
        for name, flags, extra, limit, title in PASSES:
            code, changed = run_pass(name, flags, extra, limit, args.lab_dir, args.verbose)
            if code:
                print(f'\nansible-playbook failed in the {name} pass (exit {code})')
                return code
            problems += summarise(name, title, args.lab_dir, changed)
        failed = restore(args.lab_dir, args.verbose)
        problems += failed or drift(args.lab_dir, seeded)
    finally:
        services.stop()
    for problem in problems:
        print(f'UNEXPECTED: {problem}')
    print(f'\nsimulated hosts, reports and quarantine entries stay in {args.lab_dir}; the services are stopped')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
