# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_batch.py: the batch semantics both Python hosts inherit."""
from __future__ import annotations

import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import (
    CHANGE_FLAGS,
    BatchRunner,
    BridgeOperationError,
    data_changed,
    substitute,
)

PROFILES = [
    {'sid': 'S-1-5-21-1-1001', 'username': 'alice', 'profile_path': 'C:\\Users\\alice',
     'folders': {'AppData': 'D:\\Roaming\\alice', 'Local AppData': 'C:\\Users\\alice\\AppData\\Local'}},
    {'sid': 'S-1-5-21-1-1002', 'username': 'bob', 'profile_path': 'C:\\Users\\bob',
     'folders': {'AppData': 'C:\\Users\\bob\\AppData\\Roaming', 'Local AppData': 'C:\\Users\\bob\\AppData\\Local'}},
]


class Recorder(BatchRunner):
    """A host whose operations only record what they were called with."""

    def __init__(self, fail_paths: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, dict[str, t.Any]]] = []
        self.fail_paths = fail_paths
        self.hooks: list[str] = []

    def begin_batch(self, operations):
        self.hooks.append(f'begin:{len(operations)}')

    def end_batch(self):
        self.hooks.append('end')
        return {'extra_key': 'from end_batch'}

    def op_get_profiles(self, shell_folders):
        self.calls.append(('get_profiles', {'shell_folders': shell_folders}))
        return {'profiles': PROFILES}

    def op_stat_paths(self, patterns):
        self.calls.append(('stat_paths', {'patterns': patterns}))
        if any(p in self.fail_paths for p in patterns):
            raise BridgeOperationError(f'cannot stat {patterns[0]}')
        return {'entries': [{'path': p} for p in patterns]}

    def op_remove_path(self, path):
        self.calls.append(('remove_path', {'path': path}))
        if path in self.fail_paths:
            raise BridgeOperationError(f"Cannot remove '{path}'.")
        return {'removed': True, 'missing': False}

    def op_write_registry(self, key, values, sid=None):
        self.calls.append(('write_registry', {'key': key, 'values': values, 'sid': sid}))
        return {'created_key': False}

    def op_read_files(self, patterns):
        raise RuntimeError('host bug')


def statuses(envelope) -> list[str]:
    return [r['status'] for r in envelope['results']]


# ---------------------------------------------------------------------- groups


def test_failure_skips_the_rest_of_its_group_only() -> None:
    host = Recorder(fail_paths=('bad',))
    envelope = host.run_batch([
        {'op': 'remove_path', 'group': 'A', 'path': 'a1'},
        {'op': 'remove_path', 'group': 'A', 'path': 'bad'},
        {'op': 'remove_path', 'group': 'A', 'path': 'a3'},
        {'op': 'remove_path', 'group': 'B', 'path': 'b1'},
        {'op': 'remove_path', 'group': 'A', 'path': 'a4'},
        {'op': 'remove_path', 'path': 'ungrouped'},
    ])
    assert statuses(envelope) == ['ok', 'error', 'skipped', 'ok', 'skipped', 'ok']
    assert [c[1]['path'] for c in host.calls] == ['a1', 'bad', 'b1', 'ungrouped']
    assert envelope['results'][1]['error'] == "Cannot remove 'bad'."
    assert envelope['results'][2] == {'op': 'remove_path', 'group': 'A', 'status': 'skipped', 'data': None, 'error': None}


def test_ungrouped_failure_skips_nothing() -> None:
    host = Recorder(fail_paths=('bad',))
    envelope = host.run_batch([
        {'op': 'remove_path', 'path': 'bad'},
        {'op': 'remove_path', 'path': 'next'},
        {'op': 'remove_path', 'group': None, 'path': 'bad'},
        {'op': 'remove_path', 'group': None, 'path': 'last'},
    ])
    assert statuses(envelope) == ['error', 'ok', 'error', 'ok']


@pytest.mark.parametrize('group', [0, '', 'S-1-5-21-1-1001/20261129T141500Z-1a2b3c', ('t', 1)])
def test_falsy_and_structured_group_keys_still_group(group) -> None:
    envelope = Recorder(fail_paths=('bad',)).run_batch([
        {'op': 'remove_path', 'group': group, 'path': 'bad'},
        {'op': 'remove_path', 'group': group, 'path': 'x'},
    ])
    assert statuses(envelope) == ['error', 'skipped']
    assert envelope['results'][1]['group'] == group


def test_each_profile_error_in_one_profile_does_not_fail_the_operation() -> None:
    host = Recorder(fail_paths=('C:\\Users\\bob\\x',))
    envelope = host.run_batch([
        {'op': 'get_profiles', 'shell_folders': {}},
        {'op': 'stat_paths', 'group': 'g', 'each_profile': True, 'patterns': ['{ProfilePath}\\x']},
        {'op': 'remove_path', 'group': 'g', 'path': 'after'},
    ])
    assert statuses(envelope) == ['ok', 'ok', 'ok']
    assert envelope['results'][1]['data'] == {'by_sid': {
        'S-1-5-21-1-1001': {'status': 'ok', 'data': {'entries': [{'path': 'C:\\Users\\alice\\x'}]}, 'error': None},
        'S-1-5-21-1-1002': {'status': 'error', 'data': None, 'error': 'cannot stat C:\\Users\\bob\\x'},
    }}


# ------------------------------------------------------------ each_profile


def test_each_profile_substitutes_nested_parameters() -> None:
    host = Recorder()
    values = {'Path': {'type': 'REG_SZ', 'data': '{AppData}\\Notion'},
              'List': {'type': 'REG_MULTI_SZ', 'data': ['{Sid}', '{ProfilePath}', 'plain', '{Unknown}']},
              'Count': {'type': 'REG_DWORD', 'data': 7}, 'Flag': {'type': 'REG_DWORD', 'data': True},
              'Nothing': {'type': 'REG_SZ', 'data': None}}
    envelope = host.run_batch([
        {'op': 'get_profiles', 'shell_folders': {'AppData': 'AppData\\Roaming'}},
        {'op': 'write_registry', 'each_profile': True, 'key': 'Software\\{Sid}\\{Local AppData}', 'values': values},
    ])
    assert statuses(envelope) == ['ok', 'ok']
    assert host.calls[1:] == [
        ('write_registry', {'key': 'Software\\S-1-5-21-1-1001\\C:\\Users\\alice\\AppData\\Local', 'sid': None, 'values': {
            'Path': {'type': 'REG_SZ', 'data': 'D:\\Roaming\\alice\\Notion'},
            'List': {'type': 'REG_MULTI_SZ', 'data': ['S-1-5-21-1-1001', 'C:\\Users\\alice', 'plain', '{Unknown}']},
            'Count': {'type': 'REG_DWORD', 'data': 7}, 'Flag': {'type': 'REG_DWORD', 'data': True},
            'Nothing': {'type': 'REG_SZ', 'data': None}}}),
        ('write_registry', {'key': 'Software\\S-1-5-21-1-1002\\C:\\Users\\bob\\AppData\\Local', 'sid': None, 'values': {
            'Path': {'type': 'REG_SZ', 'data': 'C:\\Users\\bob\\AppData\\Roaming\\Notion'},
            'List': {'type': 'REG_MULTI_SZ', 'data': ['S-1-5-21-1-1002', 'C:\\Users\\bob', 'plain', '{Unknown}']},
            'Count': {'type': 'REG_DWORD', 'data': 7}, 'Flag': {'type': 'REG_DWORD', 'data': True},
            'Nothing': {'type': 'REG_SZ', 'data': None}}}),
    ]
    # the caller's parameters are not modified by the substitution
    assert values['Path']['data'] == '{AppData}\\Notion'
    assert envelope['results'][1]['data'] == {'by_sid': {
        'S-1-5-21-1-1001': {'status': 'ok', 'data': {'created_key': False}, 'error': None},
        'S-1-5-21-1-1002': {'status': 'ok', 'data': {'created_key': False}, 'error': None},
    }}


def test_each_profile_without_profiles_runs_for_nobody() -> None:
    host = Recorder()
    envelope = host.run_batch([{'op': 'stat_paths', 'each_profile': True, 'patterns': ['{ProfilePath}']}])
    assert envelope['results'][0]['data'] == {'by_sid': {}}
    assert host.calls == []


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        ('{ProfilePath}\\x', 'C:\\Users\\a\\x'),
        ('{AppData}{AppData}', 'RR'),
        ('{appdata}', '{appdata}'),                      # placeholders are case-sensitive
        ('{ProfilePath', '{ProfilePath'),
        ('{Local AppData}\\q', 'L\\q'),
        (['{Sid}', ['{Sid}', {'k': '{Sid}'}]], ['S', ['S', {'k': 'S'}]]),
        ({'{Sid}': '{Sid}'}, {'{Sid}': 'S'}),            # keys are not substituted
        (42, 42),
        (None, None),
        (True, True),
    ],
)
def test_substitute(value, expected) -> None:
    assert substitute(value, {'ProfilePath': 'C:\\Users\\a', 'Sid': 'S', 'AppData': 'R', 'Local AppData': 'L'}) == expected


# ---------------------------------------------------------------- check mode


def test_check_mode_refuses_mutating_operations_without_calling_them() -> None:
    host = Recorder()
    envelope = host.run_batch([
        {'op': 'get_profiles', 'shell_folders': {}},
        {'op': 'stat_paths', 'patterns': ['C:\\x']},
        {'op': 'remove_path', 'group': 'g', 'path': 'C:\\x'},
        {'op': 'remove_path', 'group': 'g', 'path': 'C:\\y'},
        {'op': 'write_registry', 'each_profile': True, 'key': 'k', 'values': {}},
    ], check_mode=True)
    assert statuses(envelope) == ['ok', 'ok', 'error', 'skipped', 'error']
    assert [r['error'] for r in envelope['results']] == [None, None, 'refused in check mode', None,
                                                         'refused in check mode']
    assert [call[0] for call in host.calls] == ['get_profiles', 'stat_paths']
    assert envelope['changed'] is False
    assert host.check_mode is True


def test_check_mode_is_reset_by_the_next_batch() -> None:
    host = Recorder()
    host.run_batch([], check_mode=True)
    envelope = host.run_batch([{'op': 'remove_path', 'path': 'x'}])
    assert statuses(envelope) == ['ok']
    assert host.check_mode is False


# -------------------------------------------------------------- unknown ops


@pytest.mark.parametrize('check_mode', [False, True])
def test_vocabulary_operation_missing_on_this_host(check_mode: bool) -> None:
    # list_firewall_rules is in the vocabulary (not mutating) but Recorder has no op_list_firewall_rules
    envelope = Recorder().run_batch([{'op': 'list_firewall_rules'}, {'op': 'stat_paths', 'patterns': []}],
                                    check_mode=check_mode)
    assert envelope['results'][0] == {'op': 'list_firewall_rules', 'group': None, 'status': 'error', 'data': None,
                                      'error': 'operation list_firewall_rules is not available on this host'}
    assert statuses(envelope) == ['error', 'ok']


def test_operation_outside_the_vocabulary_is_an_error_result() -> None:
    envelope = Recorder().run_batch([{'op': 'frobnicate'}])
    assert envelope['results'] == [{'op': 'frobnicate', 'group': None, 'status': 'error', 'data': None,
                                    'error': 'operation frobnicate is not available on this host'}]


def test_operation_outside_the_vocabulary_is_refused_in_check_mode() -> None:
    """An unknown name might mutate: check mode refuses it like any mutating operation."""
    host = Recorder()
    envelope = host.run_batch([{'op': 'frobnicate', 'group': 'g'}, {'op': 'stat_paths', 'group': 'g', 'patterns': []},
                               {'op': 'stat_paths', 'patterns': []}], check_mode=True)
    assert envelope['results'][0] == {'op': 'frobnicate', 'group': 'g', 'status': 'error', 'data': None,
                                      'error': 'refused in check mode'}
    assert statuses(envelope) == ['error', 'skipped', 'ok']
    assert envelope['changed'] is False


def test_ok_result_of_an_operation_outside_the_vocabulary_counts_as_a_change() -> None:
    class Extended(Recorder):
        def op_frobnicate(self):
            return {'updated': True}

    assert Extended().run_batch([{'op': 'frobnicate'}])['changed'] is True


# ------------------------------------------------------------------ envelope


def test_envelope_shape_and_hooks() -> None:
    host = Recorder()
    envelope = host.run_batch([{'op': 'remove_path', 'group': 7, 'path': 'x'}, {'op': 'stat_paths', 'patterns': ['p']}])
    assert envelope == {
        'changed': True,
        'results': [
            {'op': 'remove_path', 'group': 7, 'status': 'ok', 'data': {'removed': True, 'missing': False}, 'error': None},
            {'op': 'stat_paths', 'group': None, 'status': 'ok', 'data': {'entries': [{'path': 'p'}]}, 'error': None},
        ],
        'extra_key': 'from end_batch',
    }
    assert host.hooks == ['begin:2', 'end']


def test_empty_batch() -> None:
    host = Recorder()
    assert host.run_batch([]) == {'changed': False, 'results': [], 'extra_key': 'from end_batch'}
    assert host.hooks == ['begin:0', 'end']


def test_end_batch_runs_when_an_operation_crashes() -> None:
    host = Recorder()
    with pytest.raises(RuntimeError, match='^host bug$'):
        host.run_batch([{'op': 'remove_path', 'path': 'x'}, {'op': 'read_files', 'patterns': []}])
    assert host.hooks == ['begin:2', 'end']


def test_default_hooks_add_nothing() -> None:
    class Bare(BatchRunner):
        def op_remove_path(self, path):
            return {'removed': False, 'missing': True}

    assert Bare().run_batch([{'op': 'remove_path', 'path': 'x'}]) == {
        'changed': False,
        'results': [{'op': 'remove_path', 'group': None, 'status': 'ok', 'data': {'removed': False, 'missing': True},
                     'error': None}],
    }


@pytest.mark.parametrize(
    ('operations', 'changed'),
    [
        pytest.param([{'op': 'remove_path', 'path': 'x'}], True, id='mutating-with-flag'),
        pytest.param([{'op': 'stat_paths', 'patterns': []}], False, id='read-only'),
        pytest.param([{'op': 'remove_path', 'path': 'bad'}], False, id='failed-mutation'),
        pytest.param([{'op': 'write_registry', 'key': 'k', 'values': {}}], False, id='mutating-no-flag'),
        pytest.param([{'op': 'get_profiles', 'shell_folders': {}},
                      {'op': 'remove_path', 'each_profile': True, 'path': '{ProfilePath}\\x'}], True, id='each-profile'),
    ],
)
def test_envelope_changed(operations, changed: bool) -> None:
    assert Recorder(fail_paths=('bad',)).run_batch(operations)['changed'] is changed


def test_read_only_operation_with_a_change_flag_is_not_a_change() -> None:
    class Odd(Recorder):
        def op_stat_paths(self, patterns):
            return {'removed': True, 'created': True}

    assert Odd().run_batch([{'op': 'stat_paths', 'patterns': []}])['changed'] is False


# --------------------------------------------------------------- data_changed


def test_change_flags() -> None:
    assert CHANGE_FLAGS == ('moved', 'removed', 'created', 'updated', 'acl_corrected', 'created_key', 'stopped',
                            'deleted', 'bytes')


@pytest.mark.parametrize(
    ('data', 'expected'),
    [
        (None, False),
        ({}, False),
        ({'moved': True, 'missing': False}, True),
        ({'moved': False, 'missing': True}, False),
        ({'removed': True, 'missing': False}, True),
        ({'removed': False, 'missing': True}, False),
        ({'created': True, 'acl_corrected': False}, True),
        ({'created': False, 'acl_corrected': True}, True),
        ({'created': False, 'acl_corrected': False}, False),
        ({'created': False, 'updated': True}, True),
        ({'created': False, 'updated': False}, False),
        ({'created_key': True}, True),
        ({'created_key': False}, False),
        ({'stopped': [1004], 'already_gone': []}, True),
        ({'stopped': [], 'already_gone': [1004]}, False),
        ({'deleted': ['ProxyServer'], 'missing': []}, True),
        ({'deleted': [], 'missing': ['ProxyServer']}, False),
        ({'bytes': 12}, True),
        ({'bytes': 0}, False),
        ({'missing': True, 'exists': True, 'entries': [1]}, False),
        ({'by_sid': {}}, False),
        ({'by_sid': {'a': {'status': 'ok', 'data': {'moved': False}, 'error': None},
                     'b': {'status': 'ok', 'data': {'moved': True}, 'error': None}}}, True),
        ({'by_sid': {'a': {'status': 'ok', 'data': {'moved': False}, 'error': None}}}, False),
        ({'by_sid': {'a': {'status': 'error', 'data': {'moved': True}, 'error': 'x'}}}, False),
        ({'by_sid': {'a': {'status': 'ok', 'data': None, 'error': None}}}, False),
    ],
)
def test_data_changed(data, expected: bool) -> None:
    assert data_changed(data) is expected
