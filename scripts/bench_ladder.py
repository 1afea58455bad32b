#!/usr/bin/env python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark (numbers, not a test): the ladder over N simulated hosts against a no-op bridge call per host.

Every host is a copy of the lab's ws-win-02 (one fault: a block rule, fixed by the firewall rung),
reached through the simulated_windows connection, probing the lab's real services. The floor is a
play of one read-only bridge call per host (``incident`` listed); the ladder is
playbooks/ladder.yml for an incident. Both with the same forks. Prints wall time, the ratio and the
bridge calls per host, the tasks the ladder's play ran (headers, once per task, skipped ones too)
and whether the issue's target (at most 5x the floor) is met. Run with `make bench`
(BENCH_HOSTS="20 100 500" by default).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / '.venv'))

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: E402

_AnsibleCollectionFinder(paths=[str(ROOT / '.venv')])._install()

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab_services import LabServices  # noqa: E402
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._ladder_lab import (  # noqa: E402
    diagnose_options,
    seed_ladder_lab,
)

FLOOR = """---
- name: Floor, one read-only bridge call per host
  hosts: all
  gather_facts: false
  tasks:
    - name: One no-op bridge call
      loopbreaker.notion.incident:
        state: listed
"""


TARGET = 5.0  # issue 11: the ladder at most 5x the no-op floor


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, tasks the play ran: the headers the default callback prints, once per task)."""
    started = time.monotonic()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode:
        sys.stdout.write(completed.stdout[-4000:] + completed.stderr[-2000:])
        raise SystemExit(f'failed: {" ".join(command[:3])}')
    return time.monotonic() - started, completed.stdout.count('\nTASK [')


def bench(hosts: int, forks: int, work: Path, info: dict) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    template = seed_ladder_lab(info)['ws-win-02']
    inventory = {'all': {'hosts': {}, 'vars': {'ansible_connection': 'loopbreaker.notion.simulated_windows',
                                               'ladder_diagnose': diagnose_options(info),
                                               'ladder_settle_seconds': 0}}}
    for number in range(hosts):
        state = work / f'h{number:03d}.json'
        state.write_text(json.dumps(template))
        inventory['all']['hosts'][f'h{number:03d}'] = {'loopbreaker_simulated_state': str(state)}
    (work / 'inventory.json').write_text(json.dumps(inventory))
    (work / 'floor.yml').write_text(FLOOR)
    env = dict(os.environ)
    base = ['ansible-playbook', '-i', str(work / 'inventory.json'), '--forks', str(forks)]
    floor, _tasks = timed([*base, str(work / 'floor.yml')], env)
    for number in range(hosts):  # the floor's calls are not the ladder's
        state = work / f'h{number:03d}.json'
        data = json.loads(state.read_text())
        data['calls'] = []
        state.write_text(json.dumps(data))
    ladder, tasks = timed([*base, str(ROOT / 'playbooks' / 'ladder.yml'), '-e', 'ladder_hosts=all',
                           '-e', json.dumps({'ladder_incident': 'BENCH-1'})], env)
    calls = [len(json.loads((work / f'h{n:03d}.json').read_text())['calls']) for n in range(hosts)]
    return {'hosts': hosts, 'forks': forks, 'floor_s': round(floor, 1), 'ladder_s': round(ladder, 1),
            'ratio': round(ladder / floor, 1), 'bridge_calls_per_host': max(calls), 'tasks': tasks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('hosts', nargs='*', type=int, default=[20, 100, 500])
    parser.add_argument('--forks', type=int, default=10)
    parser.add_argument('--work', type=Path, default=ROOT / '.cache' / 'bench-ladder')
    args = parser.parse_args()
    services = LabServices(args.work.parent / 'bench-services')
    info = services.start()
    try:
        print(f'{"hosts":>6} {"forks":>5} {"floor s":>8} {"ladder s":>9} {"ratio":>6} {"calls/host":>10} '
              f'{"tasks":>5} {"<= 5x":>5}')
        for hosts in args.hosts:
            row = bench(hosts, args.forks, args.work / str(hosts), info)
            print(f'{row["hosts"]:>6} {row["forks"]:>5} {row["floor_s"]:>8} {row["ladder_s"]:>9} {row["ratio"]:>6} '
                  f'{row["bridge_calls_per_host"]:>10} {row["tasks"]:>5} {"yes" if row["ratio"] <= TARGET else "no":>5}',
                  flush=True)
    finally:
        services.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
