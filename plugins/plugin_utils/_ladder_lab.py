# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ladder lab: workstations that are really broken, each with one fault, against the lab's services.

Private to this collection. Every fault is real to diagnose: the simulated Windows
hosts run their probes against the services of _lab_services (through the proxy
in each user's hive), and their local faults are the files, rules and signatures
diagnose reads. ``EXPECTED`` says where each host's ladder must stop.
"""
from __future__ import annotations

import datetime
import os
import typing as t

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import (
    LAB_INSTALLER,
    LAB_INSTALLER_VERSION,
    seed_installer,
    seed_posix_home,
    seed_user_proxy,
    seed_windows_user,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab_services import NOTION_NAMES
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

SID = 'S-1-5-21-3004336348-1177238915-682003330-{}'
ENTRA_SID = 'S-1-12-1-3471203945-1285628934-2761536129-1094381106'
KIM_SID = SID.format(1102)
# host -> (the fault, the rung the ladder must stop at, the finding codes it must see first)
EXPECTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    'ws-win-01': ('squid refuses the msgstore hosts (alice); an intercepting proxy with a foreign CA (bob)', 'proxy',
                  ('notion_host_blocked', 'tls_intercepted', 'websocket_blocked')),
    'ws-win-02': ("a firewall rule blocks Entra ID user dave's Notion.exe; kim's profile is broken (.bak)", 'firewall',
                  ('block_rule',)),
    'ws-win-03': ("erin's renderer crashed (log.log)", 'restart', ('renderer_crashed',)),
    'ws-win-04': ("frank's Notion.exe is not signed", 'reinstall', ('install_unsigned',)),
    'ws-linux-01': ("grace's notion.db is corrupt", 'app_data', ('cache_corrupt',)),
}


def log_line(when: datetime.datetime, level: str, text: str) -> str:
    return f'[{when.strftime("%Y-%m-%d %H:%M:%S")}.000] [{level}] {text}\n'


def diagnose_options(info: dict[str, t.Any]) -> dict[str, t.Any]:
    """What the ladder's diagnose needs to find the lab's stand-in instead of Notion's hosts."""
    return {'port': info['notion_port'], 'resolve': {name: info['address'] for name in NOTION_NAMES},
            'ca_bundle': info['ca_bundle'], 'timeout': 3}


def seed_ladder_lab(info: dict[str, t.Any], now: datetime.datetime | None = None) -> dict[str, dict[str, t.Any]]:
    """Twin states of the lab's Windows workstations, keyed by host name."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    states = {}

    first = SimulatedWindows(empty_state('WS-WIN-01'))
    seed_windows_user(first, 'alice', SID.format(1001), loaded=True, running=True)
    seed_user_proxy(first, SID.format(1001), proxy_server=info['squid_proxy'], bypass='<local>')
    seed_windows_user(first, 'bob', SID.format(1002), loaded=False)
    seed_user_proxy(first, SID.format(1002), proxy_server=info['intercepting_proxy'])
    states['ws-win-01'] = first.state

    # An Intune-managed machine: dave is an Entra ID user, and kim's profile broke (Windows renamed her
    # key to .bak and gave her a temporary profile): she is skipped and reported, never a user.
    second = SimulatedWindows(empty_state('WS-WIN-02'))
    seed_windows_user(second, 'dave', ENTRA_SID, loaded=True, running=True, account='AzureAD\\DaveDoe')
    second.add_broken_profile(KIM_SID + '.bak', 'kim', profile_path='C:\\Users\\kim')
    second.add_broken_profile(KIM_SID, 'kim', profile_path='C:\\Users\\TEMP', state=0x0804)
    second.state['firewall_rules'].append({
        'name': '{7A1B2C3D-0E4F-4051-9A62-83C94DA5E1F2}', 'display_name': 'Block Notion (ticket 4711)',
        'direction': 'out', 'action': 'block', 'profiles': ['domain', 'private', 'public'],
        'program': 'C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'enabled': True, 'description': ''})
    states['ws-win-02'] = second.state

    third = SimulatedWindows(empty_state('WS-WIN-03'))
    root = seed_windows_user(third, 'erin', SID.format(1201), loaded=True, running=True)
    earlier = now - datetime.timedelta(minutes=5)
    third.write(root + '\\logs\\log.log',
                log_line(earlier - datetime.timedelta(minutes=1), 'info', 'App started, version 7.35.0')
                + log_line(earlier, 'error', 'render-process-gone {"reason":"crashed","exitCode":-1073741819}'))
    states['ws-win-03'] = third.state

    fourth = SimulatedWindows(empty_state('WS-WIN-04'))
    profile = fourth.add_profile('frank', SID.format(1301), loaded=True)
    fourth.install_notion(profile, {'version': '7.30.1', 'signer': None}, ['/S'])
    fourth.write('C:\\Users\\frank\\AppData\\Roaming\\Notion\\notion.db', 'SQLite format 3\x00' + 'n' * 400)
    seed_installer(fourth, LAB_INSTALLER, LAB_INSTALLER_VERSION)
    states['ws-win-04'] = fourth.state
    return states


def seed_linux_lab(homes: str) -> None:
    """ws-linux-01: grace, whose notion.db is no SQLite database any more."""
    root = seed_posix_home(homes, 'grace')
    with open(os.path.join(root, 'notion.db'), 'wb') as handle:
        handle.write(b'\x00' * 64 + b'torn write')


def windows_drift(seeded: dict[str, t.Any], current: dict[str, t.Any], *, reinstalled: bool) -> list[str]:
    """How a simulated host differs from its seeded state, in what a user or an admin would see.

    Compares files, firewall rules and registry values. Leaves out what restore.yml cannot and
    should not undo: the collection's own quarantine folders and records, the blobs' change counters
    (a proxy restore writes the original settings with a higher counter, as Windows requires) and,
    after a reinstall, the install (the broken one it replaced is not wanted back). Processes are
    not compared: a relaunch is not a change to the machine.
    """
    problems = []

    def visible(files: dict[str, t.Any]) -> dict[str, tuple[str, str | None]]:
        shown = {}
        for key, entry in files.items():
            if '\\loopbreaker' in key:
                continue
            if reinstalled and '\\programs\\notion' in key:
                continue
            shown[key] = (entry['type'], entry.get('content'))
        return shown

    before, after = visible(seeded['files']), visible(current['files'])
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            state = 'missing' if key not in after else 'added' if key not in before else 'changed'
            problems.append(f'{state}: {key}')
    if sorted(seeded['firewall_rules'], key=repr) != sorted(current['firewall_rules'], key=repr):
        problems.append('firewall rules differ')
    for sid, hive in seeded['hives'].items():
        for key, entry in hive.items():
            if 'loopbreaker' in key or (reinstalled and '\\uninstall\\' in key):
                continue
            values = {n: v for n, v in entry.get('values', {}).items() if v['type'] != 'REG_BINARY'}
            now = current['hives'].get(sid, {}).get(key, {}).get('values', {})
            if values != {n: v for n, v in now.items() if v['type'] != 'REG_BINARY'}:
                problems.append(f'registry values differ: {sid}\\{key}')
    return problems


def home_snapshot(root: str) -> dict[str, bytes]:
    """Every file under a lab home, by relative path, leaving out the collection's quarantine."""
    snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != 'loopbreaker']
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as handle:
                snapshot[os.path.relpath(path, root)] = handle.read()
    return snapshot
