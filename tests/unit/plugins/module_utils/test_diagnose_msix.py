# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose on a machine with the MSIX Notion: its install and its (possibly virtualised) data are found."""
from __future__ import annotations

from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import NOTION_FAMILY
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_msix
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

ALICE = 'S-1-5-21-4444-5555-6666-1001'
VIRTUAL = f'C:\\Users\\alice\\AppData\\Local\\Packages\\{NOTION_FAMILY}\\LocalCache\\Roaming\\Notion'
LOAD_FAILED = '[2026-12-01 10:00:00.000] [error] did-fail-load errorCode=-130 url=https://www.notion.so/\n'


def facts(twin: SimulatedWindows) -> dict:
    envelope = twin.run_batch(_diagnose.probe_operations(WINDOWS, None), check_mode=True)
    [fact] = _diagnose.collect(WINDOWS, {'users': ['alice']}, envelope, None)['users']
    return fact


def test_data_and_logs_only_in_the_virtualised_appdata_are_found_and_a_provisioned_package_is_an_install() -> None:
    twin = SimulatedWindows(empty_state('WS01'))
    twin.add_profile('alice', ALICE)
    twin.write(VIRTUAL + '\\logs\\log.log', LOAD_FAILED)
    twin.write(VIRTUAL + '\\notion.db', b'SQLite format 3\x00' + bytes(84))
    checksum = seed_msix(twin, 'C:\\Installers\\Notion.msix', '7.40.0.0')
    twin.op_provision_package('C:\\Installers\\Notion.msix', NOTION_FAMILY, checksum)
    fact = facts(twin)
    assert fact['data']['exists'] is True and fact['data']['roots'] == [VIRTUAL]
    assert [log['path'] for log in fact['logs']] == [VIRTUAL + '\\logs\\log.log']
    assert [db['path'] for db in fact['db']] == [VIRTUAL + '\\notion.db']
    assert fact['install']['msix'] == []
    assert [p['family_name'] for p in fact['install']['provisioned']] == [NOTION_FAMILY]
    codes = {f['code'] for f in _diagnose.local_findings(fact, None, 'windows')}
    assert codes == {'load_failed'}, 'a provisioned package registers at the next logon: not a missing install'


def test_a_registered_msix_is_reported_with_its_family_and_state() -> None:
    twin = SimulatedWindows(empty_state('WS01'))
    twin.add_profile('alice', ALICE)
    twin.write('C:\\Users\\alice\\AppData\\Roaming\\Notion\\notion.db', b'SQLite format 3\x00' + bytes(84))
    checksum = seed_msix(twin, 'C:\\Installers\\Notion.msix', '7.40.0.0')
    twin.op_provision_package('C:\\Installers\\Notion.msix', NOTION_FAMILY, checksum)
    twin.log_on(ALICE)
    fact = facts(twin)
    [msix] = fact['install']['msix']
    assert msix['family_name'] == NOTION_FAMILY and msix['version'] == '7.40.0.0' and msix['state'] == 'Installed'
    assert msix['install_location'].startswith('C:\\Program Files\\WindowsApps\\com.notion.app.desktop.notion_7.40')
    assert fact['data']['roots'] == ['C:\\Users\\alice\\AppData\\Roaming\\Notion']
    assert 'install_missing' not in {f['code'] for f in _diagnose.local_findings(fact, None, 'windows')}
