# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The twin's MSIX model: provisioned for all users with nobody logged on, registered at logon, refused when wrong."""
from __future__ import annotations

import copy

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import NOTION_FAMILY, NOTION_IDENTITY
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_msix
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

ALICE = 'S-1-5-21-100-200-300-1001'
BOB = 'S-1-5-21-100-200-300-1002'
MSIX = 'C:\\Installers\\Notion-7.40.0.msix'
FULL_NAME = f'{NOTION_IDENTITY}_7.40.0.0_x64__87smfmv0eebam'
LOCATION = f'C:\\Program Files\\WindowsApps\\{FULL_NAME}'


@pytest.fixture
def twin() -> SimulatedWindows:
    machine = SimulatedWindows(empty_state('WS01'))
    machine.add_profile('alice', ALICE)   # both logged off: no explorer.exe anywhere
    machine.add_profile('bob', BOB)
    return machine


def provision(twin: SimulatedWindows, checksum: str, path: str = MSIX) -> dict:
    return twin.run_batch([{'op': 'provision_package', 'path': path, 'family_name': NOTION_FAMILY,
                            'sha256': checksum}])['results'][0]


def test_a_verified_msix_is_provisioned_with_nobody_logged_on_and_registers_at_each_logon(
        twin: SimulatedWindows) -> None:
    checksum = seed_msix(twin, MSIX, '7.40.0.0')
    result = provision(twin, checksum)
    assert result['status'] == 'ok', result
    assert result['data'] == {'package_name': FULL_NAME, 'version': '7.40.0.0', 'changed': True}
    listed = twin.run_batch([{'op': 'list_packages', 'names': ['*notion*'], 'include_provisioned': True}],
                            check_mode=True)['results'][0]['data']
    assert listed['provisioned'] == [{'display_name': NOTION_IDENTITY, 'package_name': FULL_NAME,
                                      'family_name': NOTION_FAMILY, 'version': '7.40.0.0',
                                      'publisher_id': '87smfmv0eebam', 'architecture': 'x64',
                                      'install_location': LOCATION}]
    [package] = listed['packages']
    assert package['user_sids'] == [] and package['user_states'] == {'S-1-5-18': 'Staged'}, 'registered for nobody yet'
    assert twin.op_get_file_info([LOCATION + '\\app\\Notion.exe'])['files'][0]['version'] == '7.40.0.0'
    twin.log_on(ALICE)
    [package] = twin.op_list_packages(['*notion*'])['packages']
    assert package['user_sids'] == [ALICE] and package['user_states'][ALICE] == 'Installed'
    again = provision(twin, checksum)
    assert again['data']['changed'] is False, 'the same package provisioned again changes nothing'


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'signature': 'NotTrusted'}, f"'{MSIX}' has no valid signature (status NotTrusted)."),
    ({'publisher': 'CN=Notion Labs, Inc., O=Notion Labs, Inc., L=San Francisco, S=California, C=US'},
     f"'{MSIX}' is the package family {NOTION_IDENTITY}_eqq1tves88388 (publisher CN=Notion Labs, Inc., O=Notion Labs, "
     f"Inc., L=San Francisco, S=California, C=US), expected {NOTION_FAMILY}."),
    ({'signer_subject': 'CN=Someone Else'},
     'Deployment failed with HRESULT: 0x8007000B, The app manifest publisher name (CN="Notion Labs, Inc.", '
     'O="Notion Labs, Inc.", L=San Francisco, S=California, C=US) must match the subject name of the signing '
     'certificate (CN=Someone Else).'),
])
def test_a_package_with_a_bad_signature_or_another_publisher_is_refused(
        twin: SimulatedWindows, kwargs: dict, message: str) -> None:
    checksum = seed_msix(twin, MSIX, '7.40.0.0', **kwargs)
    before = copy.deepcopy({k: twin.state[k] for k in ('packages', 'provisioned', 'files')})
    result = provision(twin, checksum)
    assert (result['status'], result['error']) == ('error', message)
    assert {k: twin.state[k] for k in ('packages', 'provisioned', 'files')} == before


def test_a_wrong_checksum_is_refused(twin: SimulatedWindows) -> None:
    seed_msix(twin, MSIX, '7.40.0.0')
    result = provision(twin, '0' * 64)
    assert result['status'] == 'error' and 'expected ' + '0' * 64 in result['error']
    assert twin.state['provisioned'] == []


def test_an_older_version_than_one_provisioned_or_installed_is_a_version_conflict(twin: SimulatedWindows) -> None:
    provision(twin, seed_msix(twin, MSIX, '7.40.0.0'))
    older = provision(twin, seed_msix(twin, 'C:\\Installers\\old.msix', '7.30.0.0'), 'C:\\Installers\\old.msix')
    assert older['status'] == 'error' and '0x80073D06' in older['error']
    newer = provision(twin, seed_msix(twin, 'C:\\Installers\\new.msix', '7.41.0.0'), 'C:\\Installers\\new.msix')
    assert newer['status'] == 'ok'
    assert [p['version'] for p in twin.state['provisioned']] == ['7.41.0.0'], 'the newer one replaces the staged one'


def test_verify_package_reads_the_identity_and_rejects_what_is_not_a_package(twin: SimulatedWindows) -> None:
    checksum = seed_msix(twin, MSIX, '7.40.0.0')
    info = twin.op_verify_package(MSIX, NOTION_FAMILY, checksum)
    assert info['identity']['family_name'] == NOTION_FAMILY and info['identity']['executable'] == 'app\\Notion.exe'
    twin.write('C:\\Installers\\setup.exe', 'MZ', meta={'kind': 'notion_installer', 'version': '7.40.0'})
    with pytest.raises(BridgeOperationError, match='is not an MSIX package'):
        twin.op_verify_package('C:\\Installers\\setup.exe')
    with pytest.raises(BridgeOperationError, match='does not exist'):
        twin.op_verify_package('C:\\Installers\\missing.msix')


def test_deprovisioning_keeps_the_registered_users_and_a_missing_package_is_reported(twin: SimulatedWindows) -> None:
    provision(twin, seed_msix(twin, MSIX, '7.40.0.0'))
    twin.log_on(BOB)
    assert twin.op_remove_provisioned_package(FULL_NAME) == {'removed': True, 'missing': False}
    assert twin.state['provisioned'] == []
    assert twin.op_list_packages(['*notion*'])['packages'][0]['user_sids'] == [BOB]
    assert twin.op_remove_provisioned_package(FULL_NAME) == {'removed': False, 'missing': True}
