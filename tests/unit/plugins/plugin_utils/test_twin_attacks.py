# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the Windows bridge by a standard user, on the simulated Windows host.

The bridge runs as an administrator inside trees users control. Each test lets
a user (Mallory, or the profile's own user) do what Windows lets them do —
swap a directory of theirs for a junction between two operations of a batch,
pre-create C:\\ProgramData\\loopbreaker, replace a staged installer, hold the
host-wide lock — and asserts the refusal message and that nothing outside the
user's profile changed: a digest of every file-system entry outside it (with
owner and ACL) and of HKLM, taken before and after.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import typing as t
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import HostError
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import (
    NOTION_FAMILY,
    NOTION_IDENTITY,
    NOTION_PUBLISHER,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import (
    seed_installer,
    seed_windows_user,
    serve_installer,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_packages import msix_meta
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import (
    ADMINISTRATORS_SID,
    PROGRAM_DATA_ACL,
    SYSTEM_SID,
    SimulatedWindows,
    empty_state,
)
from ansible_collections.loopbreaker.notion.tests.unit import bridge_ps1

ALICE = 'S-1-5-21-7-8-9-1001'
MALLORY = 'S-1-5-21-7-8-9-1066'
PROFILE = 'C:\\Users\\alice'
MALLORY_PROFILE = 'C:\\Users\\mallory'
NOTION = PROFILE + '\\AppData\\Roaming\\Notion'
QUARANTINE = PROFILE + '\\AppData\\Local\\loopbreaker\\quarantine\\20260304T050607Z-a1b2c3'
SYSTEM32 = 'C:\\Windows\\System32'
URL = 'https://desktop-release.notion-static.com/Notion%20Setup%207.40.0.exe'
STAGING = 'C:\\ProgramData\\loopbreaker\\installers'
DOWNLOADED = STAGING + '\\Notion Setup 7.40.0.exe'
NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
EVIL = {'kind': 'payload', 'exit_code': 0}
REPO = Path(__file__).resolve().parents[4]
SAFE_PATH = REPO / 'plugins' / 'module_utils' / 'SafePath.cs'


@pytest.fixture
def twin() -> SimulatedWindows:
    machine = SimulatedWindows(empty_state('WS01'))
    machine.mkdir('C:\\ProgramData', owner=SYSTEM_SID, acl=PROGRAM_DATA_ACL)
    machine.write(SYSTEM32 + '\\drivers\\etc\\hosts', '127.0.0.1 localhost')
    machine.write(SYSTEM32 + '\\config\\SAM', 'sam')
    seed_windows_user(machine, 'alice', ALICE, loaded=True)
    seed_windows_user(machine, 'mallory', MALLORY, loaded=True)
    machine.write(MALLORY_PROFILE + '\\Documents\\secret.txt', 'mallory only')
    return machine


def outside(machine: SimulatedWindows, *left_out: str) -> str:
    """Digest of every file-system entry outside alice's profile (and left_out) and of HKLM.

    An entry is its content, type, owner, ACL and junction target.
    """
    prefixes = [path.lower() for path in (PROFILE, *left_out)]
    files = {key: entry for key, entry in machine.state['files'].items()
             if not any(key == prefix or key.startswith(prefix + '\\') for prefix in prefixes)}
    text = json.dumps({'files': files, 'hklm': machine.state['hives']['HKLM']}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def results(machine: SimulatedWindows, operations: list[dict[str, t.Any]]) -> list[tuple[str, str | None]]:
    return [(r['status'], r['error']) for r in machine.run_batch(operations)['results']]


def swap(machine: SimulatedWindows, before_op: str, path: str, target: str, user: str = ALICE) -> None:
    """Just before ``before_op`` runs, ``user`` replaces ``path`` with a junction to ``target``."""
    machine.state['faults'].append({'during_op': before_op, 'as_user': user,
                                    'replace_with_junction': {'path': path, 'target': target}})


# ------------------------------------------- a junction swapped in under WITHIN

def test_junction_swapped_in_before_stat_is_not_walked_through(twin: SimulatedWindows) -> None:
    before = outside(twin)
    swap(twin, 'stat_paths', NOTION, MALLORY_PROFILE)
    envelope = twin.run_batch([{'op': 'stat_paths', 'patterns': [NOTION + '\\*', NOTION + '\\Documents\\*'],
                                'within': PROFILE}])
    assert envelope['results'][0]['status'] == 'ok'
    # Mallory's files are not reported through alice's junction; the junction is not a directory to walk.
    assert envelope['results'][0]['data'] == {'entries': []}
    assert outside(twin) == before


def test_junction_swapped_in_before_the_move_stops_the_move(twin: SimulatedWindows) -> None:
    before = outside(twin)
    twin.mkdir(PROFILE + '\\AppData\\Roaming\\Decoy\\Cache')
    swap(twin, 'move_path', NOTION, SYSTEM32)
    assert results(twin, [
        {'op': 'ensure_private_dir', 'group': 'a', 'path': QUARANTINE, 'owner_sid': ALICE, 'within': PROFILE},
        {'op': 'move_path', 'group': 'a', 'source': NOTION + '\\config', 'destination': QUARANTINE + '\\items\\000-config',
         'within': PROFILE, 'expect_type': 'directory'},
    ]) == [('ok', None),
           ('error', f"Refusing '{NOTION}\\config': '{NOTION}' is a junction or symbolic link below '{PROFILE}'.")]
    assert twin.exists(SYSTEM32 + '\\config\\SAM')
    assert outside(twin) == before


def test_junction_swapped_in_before_remove_protects_its_target(twin: SimulatedWindows) -> None:
    before = outside(twin)
    swap(twin, 'remove_path', PROFILE + '\\AppData\\Local\\Programs', MALLORY_PROFILE)
    assert results(twin, [{'op': 'remove_path', 'path': PROFILE + '\\AppData\\Local\\Programs\\Documents',
                           'within': PROFILE}]) == [
        ('error', f"Refusing '{PROFILE}\\AppData\\Local\\Programs\\Documents': '{PROFILE}\\AppData\\Local\\Programs' "
                  f"is a junction or symbolic link below '{PROFILE}'.")]
    assert twin.read(MALLORY_PROFILE + '\\Documents\\secret.txt') == b'mallory only'
    assert outside(twin) == before


def test_junction_swapped_in_before_write_file_writes_nowhere(twin: SimulatedWindows) -> None:
    twin.mkdir(QUARANTINE)
    before = outside(twin)
    swap(twin, 'write_file', QUARANTINE, SYSTEM32 + '\\drivers\\etc')
    assert results(twin, [{'op': 'write_file', 'path': QUARANTINE + '\\hosts', 'content': '6.6.6.6 update.microsoft.com',
                           'within': PROFILE}]) == [
        ('error', f"Refusing '{QUARANTINE}\\hosts': '{QUARANTINE}' is a junction or symbolic link below '{PROFILE}'.")]
    assert twin.read(SYSTEM32 + '\\drivers\\etc\\hosts') == b'127.0.0.1 localhost'
    assert outside(twin) == before


def test_junction_swapped_in_before_ensure_private_dir_sets_no_acl_elsewhere(twin: SimulatedWindows) -> None:
    before = outside(twin)
    swap(twin, 'ensure_private_dir', PROFILE + '\\AppData\\Local\\loopbreaker', 'C:\\Windows')
    assert results(twin, [{'op': 'ensure_private_dir', 'path': PROFILE + '\\AppData\\Local\\loopbreaker\\System32',
                           'owner_sid': ALICE, 'within': PROFILE}]) == [
        ('error', f"Refusing '{PROFILE}\\AppData\\Local\\loopbreaker\\System32': "
                  f"'{PROFILE}\\AppData\\Local\\loopbreaker' is a junction or symbolic link below '{PROFILE}'.")]
    assert twin.state['files']['c:\\windows\\system32'].get('owner') is None
    assert outside(twin) == before


def test_a_junction_that_is_itself_the_moved_item_moves_as_a_link(twin: SimulatedWindows) -> None:
    before = outside(twin)
    swap(twin, 'move_path', NOTION + '\\Cache', SYSTEM32)
    assert results(twin, [{'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': QUARANTINE + '\\000-Cache',
                           'within': PROFILE}]) == [('ok', None)]
    moved = twin.state['files'][(QUARANTINE + '\\000-Cache').lower()]
    assert (moved['type'], moved['target']) == ('junction', SYSTEM32)
    assert twin.exists(SYSTEM32 + '\\config\\SAM')
    assert outside(twin) == before


def test_a_junction_that_is_itself_the_moved_item_is_refused_with_expect_type(twin: SimulatedWindows) -> None:
    before = outside(twin)
    swap(twin, 'move_path', NOTION + '\\Cache', SYSTEM32)
    assert results(twin, [{'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': QUARANTINE + '\\000-Cache',
                           'within': PROFILE, 'expect_type': 'directory', 'attributes': {'owner_sid': ALICE}}]) == [
        ('error', f"Refusing to move '{NOTION}\\Cache': it is a junction, expected a directory.")]
    assert twin.state['files']['c:\\windows\\system32'].get('owner') is None
    assert outside(twin) == before


def test_a_user_cannot_swap_in_a_junction_where_they_have_no_rights(twin: SimulatedWindows) -> None:
    before = outside(twin)
    swap(twin, 'move_path', NOTION + '\\Cache', SYSTEM32, user=MALLORY)
    assert results(twin, [{'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': QUARANTINE + '\\000-Cache',
                           'within': PROFILE, 'expect_type': 'directory'}]) == [('ok', None)]
    assert twin.state['denied'] == [{'user': MALLORY, 'path': NOTION + '\\Cache', 'fault': 'during_op', 'at': 'move_path'}]
    assert outside(twin) == before


# ------------------------------------------------------ installer staging

def app_params(**args: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_app.ARGUMENT_SPEC, mutually_exclusive=_app.MUTUALLY_EXCLUSIVE,
                                      required_if=_app.REQUIRED_IF).validate(args)
    assert not validated.error_messages, validated.error_messages
    return validated.validated_parameters


def install(machine: SimulatedWindows, **args: t.Any) -> dict[str, t.Any]:
    return _app.run(machine, app_params(state='reinstalled', users=['alice'], **args), check_mode=False, now=NOW,
                    entry_token='a1b2c3')


def replace_installer(machine: SimulatedWindows, path: str, before_op: str = 'run_as_user') -> None:
    """Mallory replaces the installer with her own program just before ``before_op`` runs."""
    machine.state['faults'].append({'during_op': before_op, 'as_user': MALLORY,
                                    'replace_file': {'path': path, 'content': 'MZ mallory', 'meta': EVIL}})


def payload_ran(machine: SimulatedWindows) -> bool:
    return any(machine.read(run['executable']) == b'MZ mallory' for run in machine.state['tasks_run']
               if machine.state['files'].get(run['executable'].lower()))


def test_a_user_owned_programdata_loopbreaker_is_refused_before_anything_is_staged(twin: SimulatedWindows) -> None:
    twin.mkdir('C:\\ProgramData\\loopbreaker\\installers', owner=MALLORY)
    checksum = serve_installer(twin, URL, '7.40.0')
    replace_installer(twin, DOWNLOADED)
    before = outside(twin)
    result = install(twin, installer=URL, checksum=checksum)
    refusal = (f"Refusing '{STAGING}': 'C:\\ProgramData\\loopbreaker' is owned by {MALLORY}, not by Administrators or "
               'SYSTEM (a user created it, and may control what is in it). Remove it and run again.')
    assert result['failed'] is True
    assert refusal in result['msg']
    assert twin.state['tasks_run'] == [] and not payload_ran(twin)
    assert outside(twin) == before


def test_an_inherited_user_writable_staging_folder_is_refused(twin: SimulatedWindows) -> None:
    # What an earlier version left: created by an administrator, but with ProgramData's inherited ACL,
    # under which every user may create files (a DLL beside the installer) in it.
    twin.mkdir(STAGING, owner=ADMINISTRATORS_SID)
    checksum = serve_installer(twin, URL, '7.40.0')
    before = outside(twin)
    result = install(twin, installer=URL, checksum=checksum)
    assert result['failed'] is True
    assert (f"Refusing '{STAGING}': S-1-5-32-545 may write to '{STAGING}', which only administrators may change. "
            'Remove it and run again.') in result['msg']
    assert twin.state['tasks_run'] == []
    assert outside(twin) == before


def test_the_staged_installer_cannot_be_replaced_by_a_user(twin: SimulatedWindows) -> None:
    checksum = serve_installer(twin, URL, '7.40.0')
    replace_installer(twin, DOWNLOADED)
    result = install(twin, installer=URL, checksum=checksum)
    assert 'failed' not in result, result
    assert [u['status'] for u in result['users']] == ['reinstalled']
    assert twin.state['denied'] == [{'user': MALLORY, 'path': DOWNLOADED, 'fault': 'during_op', 'at': 'run_as_user'}]
    assert twin.state['files']['c:\\programdata\\loopbreaker\\installers']['acl'] == {
        'owner': ADMINISTRATORS_SID, 'allow': [ADMINISTRATORS_SID, SYSTEM_SID], 'read': ['S-1-5-32-545'],
        'protected': True}
    assert not payload_ran(twin)


def test_an_installer_swapped_after_verification_is_not_run(twin: SimulatedWindows) -> None:
    # A local installer the administrator named in a folder Mallory controls: verify_file passes, then she
    # swaps it while Notion is being stopped; run_as_user checks it again as it starts it.
    installer = MALLORY_PROFILE + '\\Downloads\\Notion Setup 7.40.0.exe'
    checksum = seed_installer(twin, installer, '7.40.0')
    replace_installer(twin, installer)
    before = outside(twin, installer)  # the file Mallory replaces herself
    result = install(twin, installer=installer, checksum=checksum)
    alice = result['users'][0]
    assert alice['status'] == 'failed'
    swapped = hashlib.sha256(b'MZ mallory').hexdigest()
    assert f"'{installer}' has SHA-256 {swapped}, expected {checksum}." in alice['reason']
    assert twin.state['denied'] == []
    assert not payload_ran(twin)
    assert outside(twin, installer) == before


# ----------------------------------------------------------- host-wide lock

def test_a_run_that_cannot_get_the_lock_changes_nothing(twin: SimulatedWindows) -> None:
    twin.state['lock'] = {'holder': 'another ansible-playbook run'}
    checksum = serve_installer(twin, URL, '7.40.0')
    before = outside(twin)
    with pytest.raises(HostError, match=r'^Another run of loopbreaker\.notion holds the host-wide lock '
                                        r'Global\\loopbreaker\.notion \(another ansible-playbook run\); gave up after '
                                        r'60 s\. Nothing was changed\.$'):
        install(twin, installer=URL, checksum=checksum)
    assert [call['check_mode'] for call in twin.state['calls']] == [True, False]
    assert twin.state['tasks_run'] == []
    assert outside(twin) == before


# ------------------------------------------------- files verified, then used by name

PACKAGE_DIR = MALLORY_PROFILE + '\\Downloads'


def seed_package(machine: SimulatedWindows, path: str) -> str:
    machine.write(path, 'PK notion 7.40.0.0', meta=msix_meta(NOTION_IDENTITY, NOTION_PUBLISHER, '7.40.0.0',
                                                             signer='Notion Labs, Inc.'), owner=MALLORY)
    return hashlib.sha256(b'PK notion 7.40.0.0').hexdigest()


def link_to(machine: SimulatedWindows, kind: str, name: str) -> str:
    """Mallory reaches the real file (or its folder) through a link of hers: the path the admin named."""
    if kind == 'the file':
        machine.add_junction(f'{PACKAGE_DIR}\\{name}', f'{PACKAGE_DIR}\\real\\{name}', owner=MALLORY)
        return f'{PACKAGE_DIR}\\{name}'
    machine.add_junction(f'{PACKAGE_DIR}\\pkg', f'{PACKAGE_DIR}\\real', owner=MALLORY)
    return f'{PACKAGE_DIR}\\pkg\\{name}'


@pytest.mark.parametrize('kind', ['the file', 'its folder'])
def test_a_package_reached_through_a_link_is_neither_verified_nor_provisioned(twin: SimulatedWindows,
                                                                              kind: str) -> None:
    """The bridge holds the package and its folders, opened without following links, from the check until DISM
    is done; a link anywhere could be turned to another (validly signed) package between the two, so it is
    refused, and the twin must not be kinder."""
    checksum = seed_package(twin, f'{PACKAGE_DIR}\\real\\Notion.msix')
    path = link_to(twin, kind, 'Notion.msix')
    before = outside(twin, PACKAGE_DIR)
    for operation in ({'op': 'verify_package', 'path': path, 'family_name': NOTION_FAMILY, 'sha256': checksum},
                      {'op': 'provision_package', 'path': path, 'family_name': NOTION_FAMILY, 'sha256': checksum}):
        [(status, error)] = results(twin, [operation])
        assert status == 'error' and 'junction or symbolic link' in str(error), (operation['op'], error)
    assert twin.provisioned() == [] and outside(twin, PACKAGE_DIR) == before


@pytest.mark.parametrize('kind', ['the file', 'its folder'])
def test_a_verified_installer_reached_through_a_link_is_not_run(twin: SimulatedWindows, kind: str) -> None:
    name = 'Notion Setup 7.40.0.exe'
    checksum = seed_installer(twin, f'{PACKAGE_DIR}\\real\\{name}', '7.40.0')
    path = link_to(twin, kind, name)
    [(status, error)] = results(twin, [{'op': 'run_as_user', 'sid': ALICE, 'executable': path, 'arguments': ['/S'],
                                        'sha256': checksum}])
    assert status == 'error' and 'junction or symbolic link' in str(error), error
    assert twin.state['tasks_run'] == []


def test_the_bridge_opens_what_it_verifies_without_following_a_link_and_keeps_that_handle() -> None:
    """Checked by name (Inspect) and then opened by name (FileStream), a symbolic link swapped in between -
    a developer-mode user may create one, an oplock on the file tells her when - was followed: the package
    (or installer) behind it was verified and held, and the link itself, held by nobody, could be turned
    to another file before DISM (or the task) opened the path."""
    text = bridge_ps1.bridge_text()
    for function in ('Open-BridgeVerifiedPackage', 'Open-BridgeVerifiedProgram'):
        body = bridge_ps1.function_text(text, function)
        assert '[LoopbreakerSafePath]::OpenHeldFile(' in body, function
        assert 'System.IO.FileStream' not in body and '::Inspect(' not in body, function
    source = SAFE_PATH.read_text(encoding='utf-8')
    assert 'public static FileStream OpenHeldFile(string path, PathLease lease)' in source


# ---------------------------------------- browser stores: read_trees and write_tree

CHROME_DEFAULT = PROFILE + '\\AppData\\Local\\Google\\Chrome\\User Data\\Default'
STASH = PROFILE + '\\AppData\\Local\\Stash\\Local Storage'


@pytest.mark.parametrize('within', [PROFILE, None])
def test_junction_swapped_in_before_read_trees_reads_nothing_through_it(
        twin: SimulatedWindows, within: str | None) -> None:
    """browser_data reads stores per profile without within: the profile folder is the anchor then."""
    twin.write(CHROME_DEFAULT + '\\Cookies', b'alice cookies')
    twin.mkdir(STASH)
    swap(twin, 'read_trees', CHROME_DEFAULT, MALLORY_PROFILE)
    twin.write(MALLORY_PROFILE + '\\Cookies', b'mallory cookies')
    swap(twin, 'read_trees', STASH + '\\leveldb', MALLORY_PROFILE + '\\Documents')
    before = outside(twin)
    operation: dict[str, t.Any] = {'op': 'read_trees', 'patterns': [
        CHROME_DEFAULT + '\\Cookies', CHROME_DEFAULT + '\\*', STASH + '\\leveldb']}
    if within:
        operation['within'] = within
    [result] = twin.run_batch([operation])['results']
    assert result['status'] == 'ok'
    # Nothing of Mallory's is read: the swapped folder is not walked, the swapped store is refused as a link.
    assert [(tree['path'], tree['files'], tree['error']) for tree in result['data']['trees']] == [
        (STASH + '\\leveldb', None,
         'it is a junction or symbolic link; not followed')]
    assert outside(twin) == before


@pytest.mark.parametrize('within', [PROFILE, None])
def test_junction_swapped_in_before_write_tree_writes_nowhere(twin: SimulatedWindows, within: str | None) -> None:
    twin.mkdir(CHROME_DEFAULT + '\\Local Storage')
    swap(twin, 'write_tree', CHROME_DEFAULT + '\\Local Storage', SYSTEM32)
    before = outside(twin)
    operation: dict[str, t.Any] = {'op': 'write_tree', 'path': CHROME_DEFAULT + '\\Local Storage\\config',
                                   'files': [{'name': 'SAM', 'mode': 384, 'data': 'ZXZpbA=='}]}
    if within:
        operation['within'] = within
    assert results(twin, [operation]) == [
        ('error', f"Refusing '{CHROME_DEFAULT}\\Local Storage\\config': '{CHROME_DEFAULT}\\Local Storage' is a "
                  f"junction or symbolic link below '{PROFILE}'.")]
    assert twin.read(SYSTEM32 + '\\config\\SAM') == b'sam'
    assert outside(twin) == before


def test_read_trees_and_write_tree_hold_safe_path_handles_like_the_other_path_operations() -> None:
    """Checked by name (Assert-BridgeWithin, Get-Item) and then read or created by name, a folder the user
    turns into a junction in between was followed: the administrator read another user's files into the
    controller, or wrote a store's bytes (and gave them the user as owner) wherever the junction pointed."""
    text = bridge_ps1.bridge_text()
    reading = ''.join(bridge_ps1.function_text(text, name) for name in (
        'Invoke-BridgeOp_read_trees', 'Read-BridgeTreeFiles', 'Read-BridgeHeldFile'))
    assert '[LoopbreakerSafePath]::Lease(' in reading or 'Open-BridgeHeldLease' in reading
    assert '[LoopbreakerSafePath]::ReadFile(' in reading and '[LoopbreakerSafePath]::Inspect(' in reading
    writing = ''.join(bridge_ps1.function_text(text, name) for name in (
        'Invoke-BridgeOp_write_tree', 'Write-BridgeHeldFile', 'Set-BridgeHeldOwner', 'Set-BridgeInheritedOwner'))
    assert 'Open-BridgeHeldLease' in writing
    assert '[LoopbreakerSafePath]::CreateInside(' in writing and '.RenameInto(' in writing
    assert '.SetOwnerInherited(' in writing and '[LoopbreakerSafePath]::OpenForMove(' in writing
    for body in (reading, writing):
        for by_name in ('Assert-BridgeWithin', 'Get-Item', 'Get-ChildItem', 'System.IO.FileStream', 'WriteAllBytes',
                        '[System.IO.File]::Move', '[System.IO.Directory]::Move', 'GetAccessControl', 'SetAccessControl',
                        'CreateDirectory('):
            assert by_name not in body, by_name
    helper = bridge_ps1.function_text(text, 'Open-BridgeHeldLease')
    assert '[LoopbreakerSafePath]::Lease(' in helper and 'Get-BridgeProfileAnchor' in helper
