# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Red-team findings on the simulated Windows host (the twin models win_bridge.ps1)."""
from __future__ import annotations

import json

from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import ENTRY_ID, TwinEnv

ADMINISTRATORS = 'S-1-5-32-544'


def test_restore_never_gives_a_file_the_user_wrote_to_the_recorded_owner() -> None:
    env = TwinEnv(['alice', 'bob'])
    database = f"{env.data_root('alice')}\\notion.db"
    env.machine.state['files'][database.lower()]['owner'] = ADMINISTRATORS   # written by an elevated process
    env.app_data(users=['alice'])
    entry = f"{env.quarantine_root('alice')}\\{ENTRY_ID}"
    record = json.loads(env.machine.read(f'{entry}\\manifest.json'))
    [item] = [i for i in record['items'] if i['original_path'] == database]
    assert item['attributes'] == {'owner_sid': ADMINISTRATORS}
    alice_sid = next(p['sid'] for p in env.machine.state['profiles'] if p['username'] == 'alice')
    stored = f"{entry}\\{item['stored_as']}"
    env.machine.write(stored, 'written by alice')                                 # alice swaps in her own file
    env.machine.state['files'][stored.lower()]['owner'] = alice_sid
    restored = env.quarantine(state='restored', id=ENTRY_ID)
    for path in (stored, database):
        found = env.machine.state['files'].get(path.lower())
        if found and found['type'] == 'file' and env.machine.read(path) == b'written by alice':
            assert found.get('owner') == alice_sid, f'an administrator run gave the file alice wrote to {found.get("owner")}'
    assert restored.get('failed') is True
    assert f"Refusing to move '{stored}': it belongs to {alice_sid}, not its recorded owner {ADMINISTRATORS}." \
        in restored['msg']
