# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""browser_data on Windows end to end: ansible-playbook, the action plugin, the real win_bridge payload, the twin."""
from __future__ import annotations

import ntpath

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_windows_user
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils import _browser_seed as seed

from .conftest import Lab, assert_ok

ALICE = 'S-1-5-21-1-2-3-1001'
USER_DATA = 'C:\\Users\\alice\\AppData\\Local\\Microsoft\\Edge\\User Data'


def test_edge_profile_on_the_twin_through_the_action_plugin(lab: Lab) -> None:
    twin = lab.twin()
    seed_windows_user(twin, 'alice', ALICE, loaded=True)
    for relative, data in seed.built(seed.chromium_profile).items():
        twin.write(ntpath.join(USER_DATA, 'Default', relative.replace('/', '\\')), data)
    twin.write(ntpath.join(USER_DATA, 'Local State'), seed.local_state(['Default']))
    lab.save(twin)
    before = lab.twin().tree_snapshot(USER_DATA)

    completed, runs = lab.play('browser_data_runs', 'win', {'browsers': ['edge']})
    assert_ok(completed)
    assert runs['preview']['changed'] and runs['cleared']['changed'] and not runs['again']['changed']
    [alice] = [u for u in runs['cleared']['users'] if u['user'] == 'alice']
    [default] = alice['profiles']
    assert default['browser'] == 'edge' and default['status'] == 'cleared'
    # check mode: one call; a run: two (probe, apply); the idempotent run: one probe.
    assert len(lab.state()['calls']) == 4
    after = lab.twin()
    assert not after.exists(ntpath.join(USER_DATA, 'Default', 'IndexedDB', 'https_www.notion.so_0.indexeddb.leveldb'))
    assert after.exists(ntpath.join(USER_DATA, 'Default', 'IndexedDB', 'https_example.org_0.indexeddb.leveldb'))

    completed, restored = lab.play('restore', 'win', {'quarantine_id': runs['cleared']['quarantine_id']})
    assert_ok(completed)
    assert restored['apply']['changed'] and not restored['apply'].get('failed'), restored['apply']
    assert lab.twin().tree_snapshot(USER_DATA) == before
