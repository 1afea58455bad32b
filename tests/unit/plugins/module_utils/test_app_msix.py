# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""app with package_format: msix, run against the simulated host as the action plugin runs it."""
from __future__ import annotations

import copy
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import NOTION_FAMILY, NOTION_IDENTITY
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_msix
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows

from .test_app import ALICE, BOB, data_root, machine, program_dir, run

MSIX = 'C:\\Installers\\Notion-7.40.0.msix'
FULL_NAME = f'{NOTION_IDENTITY}_7.40.0.0_x64__87smfmv0eebam'
URL = 'https://www.notion.com/desktop/windows-msix/download'
STAGED = 'C:\\ProgramData\\loopbreaker\\installers\\Notion.msix'


def statuses(result: dict[str, t.Any]) -> dict[str, str]:
    return {u['user']: u['status'] for u in result['users']}


def provisioned(twin: SimulatedWindows) -> list[str]:
    return [p['package_name'] for p in twin.state['provisioned']]


def msix_args(checksum: str, **extra: t.Any) -> dict[str, t.Any]:
    return {'state': 'present', 'installer': MSIX, 'checksum': checksum, 'package_format': 'msix', **extra}


def test_migrates_logged_on_users_and_provisions_for_all_leaving_the_logged_off_copy_and_every_data() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, False), running=('alice',))
    checksum = seed_msix(twin, MSIX, '7.40.0.0')
    data = {user: twin.tree_snapshot(data_root(user)) for user in ('alice', 'bob')}
    check = run(twin, check_mode=True, **msix_args(checksum))
    assert check['changed'] is True and provisioned(twin) == [] and twin.state['tasks_run'] == []
    result = run(twin, **msix_args(checksum))
    assert not result.get('failed'), result.get('msg')
    assert statuses(result) == statuses(check) == {'alice': 'migrated', 'bob': 'pending'}
    assert result['diff'] == check['diff']
    assert provisioned(twin) == [FULL_NAME]
    assert [(task['sid'], task['executable']) for task in twin.state['tasks_run']] == [
        (ALICE, program_dir('alice') + '\\Uninstall Notion.exe')], "alice's NSIS copy uninstalled as alice"
    assert not twin.exists(program_dir('alice') + '\\Notion.exe')
    assert twin.exists(program_dir('bob') + '\\Notion.exe'), "bob's copy waits for his session"
    for user in ('alice', 'bob'):
        assert twin.tree_snapshot(data_root(user)) == data[user], f"{user}'s data is untouched"
    calls = twin.state['calls'][-1]['operations']
    assert calls[0] == 'verify_package' and calls[-1] == 'provision_package', 'verified first, provisioned last'
    assert calls.index('run_as_user') < calls.index('provision_package'), 'Notion: uninstall the per-user app first'
    again = run(twin, **msix_args(checksum))
    assert again['changed'] is False and statuses(again) == {'alice': 'unchanged', 'bob': 'pending'}
    assert again['package']['status'] == 'unchanged'


def test_with_nobody_logged_on_the_package_is_provisioned_and_registers_at_the_next_logon() -> None:
    twin = machine()
    twin.add_profile('dave', sid(4))  # no NSIS copy, logged off
    checksum = seed_msix(twin, MSIX, '7.40.0.0')
    result = run(twin, **msix_args(checksum))
    assert result['changed'] is True and statuses(result) == {'dave': 'provisioned'}
    assert result['package'] == {'family_name': NOTION_FAMILY, 'version': '7.40.0.0', 'status': 'provisioned',
                                 'provisioned_before': [], 'operations': ['verify_package', 'provision_package']}
    twin.log_on(sid(4))
    again = run(twin, **msix_args(checksum))
    assert again['changed'] is False
    assert again['users'][0]['version_before'] == '7.40.0.0'
    assert again['facts']['provisioned'][0]['package_name'] == FULL_NAME


def sid(n: int) -> str:
    return f'S-1-5-21-4444-5555-6666-{1000 + n}'


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'signature': 'HashMismatch'}, r'has no valid signature \(status HashMismatch\)'),
    ({'publisher': 'CN=Notion Labs, Inc., O=Notion Labs, Inc., L=San Francisco, S=California, C=US'},
     f'is the package family {NOTION_IDENTITY}_eqq1tves88388'),
])
def test_a_package_that_is_not_notions_changes_nothing(kwargs: dict[str, t.Any], message: str) -> None:
    twin = machine(('alice', ALICE, True))
    checksum = seed_msix(twin, MSIX, '7.40.0.0', **kwargs)
    before = copy.deepcopy({k: twin.state[k] for k in ('files', 'packages', 'provisioned', 'hives')})
    with pytest.raises(RequestError, match=message):
        run(twin, **msix_args(checksum))
    assert {k: twin.state[k] for k in ('files', 'packages', 'provisioned', 'hives')} == before
    assert twin.state['tasks_run'] == []


def test_a_package_with_another_checksum_changes_nothing() -> None:
    twin = machine(('alice', ALICE, True))
    seed_msix(twin, MSIX, '7.40.0.0')
    with pytest.raises(RequestError, match='has SHA-256 .*, expected 0000'):
        run(twin, **msix_args('0' * 64))
    assert provisioned(twin) == [] and twin.state['tasks_run'] == []


def test_a_version_that_is_not_the_packages_changes_nothing() -> None:
    twin = machine(('alice', ALICE, True))
    checksum = seed_msix(twin, MSIX, '7.40.0.0')
    with pytest.raises(RequestError, match='version is 7.41.0 but installer .* is version 7.40.0.0'):
        run(twin, **msix_args(checksum, version='7.41.0'))
    assert run(twin, check_mode=True, **msix_args(checksum, version='7.40.0'))['changed'] is True


def test_an_older_package_than_the_provisioned_one_is_a_version_conflict() -> None:
    twin = machine()
    run(twin, **msix_args(seed_msix(twin, MSIX, '7.40.0.0')))
    older = 'C:\\Installers\\Notion-7.30.0.msix'
    with pytest.raises(RequestError, match=r'version 7\.40\.0\.0 is provisioned, and Windows refuses to provision '
                                           r'the older 7\.30\.0\.0 over it \(0x80073D06\)'):
        run(twin, **{**msix_args(seed_msix(twin, older, '7.30.0.0')), 'installer': older})


def test_a_failed_uninstall_provisions_nothing() -> None:
    twin = machine(('alice', ALICE, True))
    twin.state['files'][(program_dir('alice') + '\\Uninstall Notion.exe').lower()]['meta']['exit_code'] = 0
    twin.state['files'][(program_dir('alice') + '\\Uninstall Notion.exe').lower()]['meta']['hangs'] = True
    result = run(twin, **msix_args(seed_msix(twin, MSIX, '7.40.0.0')))
    assert result['failed'] is True and statuses(result) == {'alice': 'failed'}
    assert 'did not finish' in result['users'][0]['reason']
    assert provisioned(twin) == [] and result['package']['status'] == 'failed'


def test_a_downloaded_package_is_staged_verified_and_provisioned() -> None:
    twin = machine()
    checksum = seed_msix(twin, 'C:\\seed.msix', '7.40.0.0')
    twin.state['downloads'][URL] = {'content': twin.state['files']['c:\\seed.msix']['content'],
                                    'meta': twin.state['files']['c:\\seed.msix']['meta']}
    result = run(twin, state='present', installer=URL, checksum=checksum, package_format='msix', version='7.40.0.0')
    assert result['changed'] is True and not result.get('failed'), result.get('msg')
    assert result['package']['operations'] == ['download_file', 'verify_package', 'provision_package']
    assert provisioned(twin) == [FULL_NAME] and twin.exists(STAGED)
    assert run(twin, state='present', installer=URL, checksum=checksum, package_format='msix',
               version='7.40.0')['changed'] is False, 'three or four parts, the same version'


@pytest.mark.parametrize(('args', 'message'), [
    ({'state': 'present', 'installer': MSIX, 'package_format': 'msix', 'checksum': None},
     'package_format is msix but checksum is missing'),
    ({'state': 'stopped', 'package_format': 'msix', 'installer': MSIX, 'checksum': 'a' * 64},
     'only apply to state present or reinstalled'),
    ({'state': 'restarted', 'package_format': 'msix'}, 'only applies to state present, reinstalled or absent'),
    ({'state': 'absent', 'package_format': 'msix', 'remove_user_data': True},
     'remove_user_data does not apply with package_format: msix'),
    ({'state': 'present', 'installer': MSIX, 'checksum': 'a' * 64}, 'is an MSIX package: set package_format: msix'),
    ({'state': 'present', 'installer': 'C:\\x\\Notion Setup.exe', 'checksum': 'a' * 64, 'package_format': 'msix'},
     'must be an .msix or .appx package'),
    ({'state': 'present', 'installer': MSIX, 'checksum': 'a' * 64, 'package_family': 'Notion_1'},
     'package_family only applies with package_format: msix'),
    ({'state': 'present', 'installer': MSIX, 'checksum': 'a' * 64, 'package_format': 'msix',
      'package_family': 'no family'}, 'package_family must be a package family name'),
])
def test_bad_msix_requests_are_refused_before_anything(args: dict[str, t.Any], message: str) -> None:
    twin = machine(('alice', ALICE, True))
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _app
    validated = ArgumentSpecValidator(_app.ARGUMENT_SPEC, mutually_exclusive=_app.MUTUALLY_EXCLUSIVE,
                                      required_if=_app.REQUIRED_IF).validate(args)
    if validated.error_messages:
        assert any(message in m for m in validated.error_messages), validated.error_messages
        return
    with pytest.raises(RequestError, match=message):
        _app.run(twin, validated.validated_parameters, check_mode=True,
                 now=None, entry_token='x')  # type: ignore[arg-type]
    assert twin.state['calls'] == []


def test_absent_deprovisions_and_keeps_every_registered_user_and_their_package_data() -> None:
    twin = machine()
    twin.add_profile('dave', sid(4))
    run(twin, **msix_args(seed_msix(twin, MSIX, '7.40.0.0')))
    twin.log_on(sid(4))
    virtual = f'C:\\Users\\dave\\AppData\\Local\\Packages\\{NOTION_FAMILY}\\LocalCache\\Roaming\\Notion\\Cookies'
    twin.write(virtual, 'cookies')
    check = run(twin, check_mode=True, state='absent', package_format='msix')
    assert check['changed'] is True and provisioned(twin) == [FULL_NAME]
    result = run(twin, state='absent', package_format='msix')
    assert result['changed'] is True and result['package']['status'] == 'deprovisioned'
    assert provisioned(twin) == [] and twin.exists(virtual)
    assert [(u['user'], u['status'], u['version_after']) for u in result['users']] == [
        ('dave', 'unchanged', '7.40.0.0')]
    assert result['manual_actions'][0].startswith('The MSIX Notion stays registered for dave')
    again = run(twin, state='absent', package_format='msix')
    assert again['changed'] is False and again['package']['status'] == 'unchanged'


def test_the_default_format_reports_both_forms_per_user_and_the_provisioned_package() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, False))
    run(twin, **msix_args(seed_msix(twin, MSIX, '7.40.0.0')))
    twin.log_on(BOB)
    facts = run(twin, check_mode=True, state='stopped')['facts']
    by_user = {u['user']: u for u in facts['users']}
    assert by_user['alice']['installed'] is False and by_user['alice']['msix'] == [], 'migrated, not yet logged on again'
    assert by_user['bob']['installed'] is True, "bob's per-user copy is still there"
    assert [(p['family_name'], p['version'], p['state']) for p in by_user['bob']['msix']] == [
        (NOTION_FAMILY, '7.40.0.0', 'Installed')]
    assert [p['package_name'] for p in facts['provisioned']] == [FULL_NAME]


def test_users_choose_whose_copies_are_migrated_and_reinstalled_is_present() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    checksum = seed_msix(twin, MSIX, '7.40.0.0')
    result = run(twin, **msix_args(checksum, state='reinstalled', users=['bob']))
    assert statuses(result) == {'bob': 'migrated'} and provisioned(twin) == [FULL_NAME]
    assert twin.exists(program_dir('alice') + '\\Notion.exe') and not twin.exists(program_dir('bob') + '\\Notion.exe')
    again = run(twin, **msix_args(checksum, state='reinstalled', users=['bob']))
    assert again['changed'] is False, 'reinstalling a package in place would remove its data: it is left as it is'
