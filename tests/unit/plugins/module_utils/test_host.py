# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_host.py: profile selection, envelope access, native context."""
from __future__ import annotations

import re

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    HostError,
    RequestError,
    native_context,
    operation_data,
    owns,
    per_profile,
    select_profiles,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import DARWIN, LINUX
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost


def profile(username: str, sid: str, special: bool = False) -> dict:
    return {'username': username, 'sid': sid, 'special': special}


PROFILES = [
    profile('systemprofile', 'S-1-5-18', special=True),
    profile('Alice', 'S-1-5-21-9-1001'),
    profile('bob', 'S-1-5-21-9-1002'),
    profile('LocalService', 'S-1-5-19', special=True),
    profile('Carol', 'S-1-5-21-9-1003'),
]


def usernames(profiles: list[dict]) -> list[str]:
    return [p['username'] for p in profiles]


@pytest.mark.parametrize(
    ('users', 'exclude', 'case_insensitive', 'expected'),
    [
        pytest.param(None, None, True, ['Alice', 'bob', 'Carol'], id='all-real-special-dropped'),
        pytest.param(None, [], False, ['Alice', 'bob', 'Carol'], id='empty-exclude-excludes-nobody'),
        pytest.param(['bob'], None, False, ['bob'], id='one'),
        pytest.param(['Carol', 'Alice'], None, False, ['Carol', 'Alice'], id='order-of-request'),
        pytest.param(['alice'], None, True, ['Alice'], id='windows-case-insensitive'),
        pytest.param(['BOB', 'carol'], None, True, ['bob', 'Carol'], id='windows-case-insensitive-two'),
        pytest.param(['bob', 'bob'], None, False, ['bob'], id='exact-duplicate-collapses'),
        pytest.param(['bob', 'Alice', 'bob'], None, True, ['bob', 'Alice'], id='duplicate-keeps-first-position'),
        pytest.param(None, ['bob'], False, ['Alice', 'Carol'], id='exclude-one'),
        pytest.param(None, ['ALICE', 'carol'], True, ['bob'], id='exclude-case-insensitive'),
        pytest.param(None, ['ALICE'], False, ['Alice', 'bob', 'Carol'], id='exclude-case-sensitive-no-match'),
        pytest.param(None, ['nobody', 'bob', 'ghost'], False, ['Alice', 'Carol'], id='exclude-ignores-unknown'),
        pytest.param(None, ['systemprofile'], True, ['Alice', 'bob', 'Carol'], id='exclude-special-is-noop'),
        pytest.param(None, ['Alice', 'bob', 'Carol'], False, [], id='exclude-everyone'),
    ],
)
def test_select_profiles(users, exclude, case_insensitive: bool, expected: list[str]) -> None:
    assert usernames(select_profiles(PROFILES, users, exclude, case_insensitive=case_insensitive)) == expected


def test_select_profiles_returns_the_profile_objects() -> None:
    chosen = select_profiles(PROFILES, ['carol'], None, case_insensitive=True)
    assert chosen[0] is PROFILES[4]


@pytest.mark.parametrize(
    ('users', 'case_insensitive', 'expected'),
    [
        pytest.param(['alice', 'ALICE'], True, ['Alice'], id='windows-same-user-two-spellings'),
        pytest.param(['Carol', 'bob', 'CAROL'], True, ['Carol', 'bob'], id='windows-first-spelling-position'),
    ],
)
def test_select_profiles_collapses_case_insensitive_duplicates(users, case_insensitive, expected) -> None:
    assert usernames(select_profiles(PROFILES, users, None, case_insensitive=case_insensitive)) == expected


def test_select_profiles_case_sensitive_distinct_users() -> None:
    profiles = [profile('alice', 'uid:501/alice'), profile('Alice', 'uid:502/Alice')]
    assert [p['sid'] for p in select_profiles(profiles, ['Alice', 'alice'], None, case_insensitive=False)] == [
        'uid:502/Alice', 'uid:501/alice']


@pytest.mark.parametrize(
    ('profiles', 'users', 'case_insensitive', 'message'),
    [
        pytest.param(PROFILES, ['zed'], True, 'users lists unknown user(s): zed; profiles on this host: Alice, Carol, bob',
                     id='one-unknown'),
        pytest.param(PROFILES, ['alice'], False, 'users lists unknown user(s): alice; profiles on this host: Alice, Carol, bob',
                     id='linux-case-sensitive'),
        pytest.param(PROFILES, ['bob', 'zed', 'amy'], True,
                     'users lists unknown user(s): zed, amy; profiles on this host: Alice, Carol, bob', id='two-unknown-in-order'),
        pytest.param(PROFILES, ['systemprofile'], True,
                     'users lists unknown user(s): systemprofile; profiles on this host: Alice, Carol, bob', id='special-not-selectable'),
        pytest.param([profile('systemprofile', 'S-1-5-18', special=True)], ['alice'], True,
                     'users lists unknown user(s): alice; profiles on this host: none', id='no-real-profiles'),
        pytest.param([], ['alice'], False, 'users lists unknown user(s): alice; profiles on this host: none', id='no-profiles'),
    ],
)
def test_select_profiles_unknown_user(profiles, users, case_insensitive, message) -> None:
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        select_profiles(profiles, users, None, case_insensitive=case_insensitive)


def test_select_profiles_refuses_an_empty_users_list() -> None:
    """users: [] once meant every user; an empty list of whom to act on is not "everyone"."""
    with pytest.raises(RequestError, match='^users must name at least one user; leave it out to mean every user$'):
        select_profiles(PROFILES, [], None, case_insensitive=True)


def test_select_profiles_does_not_mutate_its_input() -> None:
    before = [dict(p) for p in PROFILES]
    select_profiles(PROFILES, None, ['bob'], case_insensitive=True)
    assert PROFILES == before


# ----------------------------------------------------------------- envelope access

ENVELOPE = {
    'changed': False,
    'results': [
        {'op': 'get_profiles', 'group': None, 'status': 'ok', 'data': {'profiles': []}, 'error': None},
        {'op': 'stat_paths', 'group': 'g', 'status': 'error', 'data': None, 'error': "Access to the path 'C:\\x' is denied."},
        {'op': 'read_files', 'group': 'g', 'status': 'skipped', 'data': None, 'error': None},
        {'op': 'stat_paths', 'group': None, 'status': 'ok',
         'data': {'by_sid': {'S-1': {'status': 'ok', 'data': {'entries': []}, 'error': None}}}, 'error': None},
    ],
}


def test_operation_data_ok() -> None:
    assert operation_data(ENVELOPE, 0) == {'profiles': []}


@pytest.mark.parametrize(
    ('index', 'message'),
    [
        (1, "stat_paths failed: Access to the path 'C:\\x' is denied."),
        (2, 'read_files failed: skipped'),
    ],
)
def test_operation_data_raises_host_error(index: int, message: str) -> None:
    with pytest.raises(HostError, match=f'^{re.escape(message)}$'):
        operation_data(ENVELOPE, index)
    with pytest.raises(HostError, match=f'^{re.escape(message)}$'):
        per_profile(ENVELOPE, index)


def test_per_profile() -> None:
    assert per_profile(ENVELOPE, 3) == {'S-1': {'status': 'ok', 'data': {'entries': []}, 'error': None}}


@pytest.mark.parametrize(
    ('profile_', 'owner', 'expected'),
    [
        pytest.param({'sid': 'S-1-5-21-9-1001'}, 'S-1-5-21-9-1001', True, id='windows-sid'),
        pytest.param({'sid': 'S-1-5-21-9-1001'}, 'S-1-5-21-9-1002', False, id='windows-other-sid'),
        pytest.param({'sid': 'uid:501/alice', 'owner_sid': 'uid:501'}, 'uid:501', True, id='posix-owner'),
        pytest.param({'sid': 'uid:501/alice', 'owner_sid': 'uid:501'}, 'uid:501/alice', False, id='posix-not-by-sid'),
        pytest.param({'sid': 'uid:0/bob', 'owner_sid': 'uid:0'}, 'uid:501', False, id='posix-other-uid'),
    ],
)
def test_owns(profile_, owner, expected) -> None:
    assert owns(profile_, {'pid': 4, 'owner_sid': owner}) is expected


SANDBOXED = {'sid': 'uid:0/alice', 'owner_sid': 'uid:0', 'profile_path': '/tmp/pytest-1/homes/alice'}


@pytest.mark.parametrize(
    ('home', 'expected'),
    [
        pytest.param('/tmp/pytest-1/homes/alice', True, id='home-is-the-profile'),
        pytest.param('/tmp/pytest-1/homes/alice/snap/notion/42', True, id='home-below-the-profile'),
        pytest.param('/tmp/pytest-2/homes/alice', False, id='same-uid-another-sandbox'),
        pytest.param('/tmp/pytest-1/homes/alice2', False, id='sibling-with-the-same-prefix'),
        pytest.param('/tmp/pytest-1/homes/bob', False, id='same-uid-another-home'),
        pytest.param(None, True, id='home-unknown-owner-decides'),
    ],
)
def test_owns_a_posix_process_by_the_home_it_works_in(home, expected) -> None:
    """Sandboxed homes share one owner: HOME says which profile a process is working on."""
    assert owns(SANDBOXED, {'pid': 4, 'owner_sid': 'uid:0', 'home': home}) is expected


def test_owns_with_the_right_home_but_another_owner_is_false() -> None:
    assert owns(SANDBOXED, {'pid': 4, 'owner_sid': 'uid:501', 'home': '/tmp/pytest-1/homes/alice'}) is False


# ------------------------------------------------------------------ native_context


class IsDir:
    """Records what is asked; answers from a fixed set."""

    def __init__(self, *existing: str) -> None:
        self.existing = set(existing)
        self.asked: list[str] = []

    def __call__(self, path: str) -> bool:
        self.asked.append(path)
        return path in self.existing


@pytest.mark.parametrize(
    ('system', 'root', 'layout', 'expected_root'),
    [
        ('Linux', None, LINUX, '/home'),
        ('linux', '/srv/homes', LINUX, '/srv/homes'),
        ('Darwin', None, DARWIN, '/Users'),
        ('DARWIN', '/Volumes/Users', DARWIN, '/Volumes/Users'),
        ('Linux', '', LINUX, '/home'),
    ],
)
def test_native_context(system: str, root, layout, expected_root: str) -> None:
    is_dir = IsDir(expected_root)
    got_layout, host = native_context(system, root, is_dir)
    assert got_layout is layout
    assert isinstance(host, LocalHost)
    assert (host.profiles_root, host.platform) == (expected_root, layout.name)
    assert is_dir.asked == [expected_root]


@pytest.mark.parametrize('system', ['Windows', 'FreeBSD', 'Java', ''])
def test_native_context_unsupported_platform(system: str) -> None:
    is_dir = IsDir('/home')
    message = (f'unsupported platform {system!r}: Windows hosts must be reached over a PowerShell connection '
               '(winrm, psrp or ssh with the powershell shell)')
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        native_context(system, None, is_dir)
    assert is_dir.asked == []


@pytest.mark.parametrize('root', ['home', './home', '~/homes', 'C:\\Users'])
def test_native_context_relative_root(root: str) -> None:
    is_dir = IsDir(root)
    with pytest.raises(RequestError, match=f'^{re.escape(f"profiles_root must be an absolute path, got {root!r}")}$'):
        native_context('Linux', root, is_dir)
    assert is_dir.asked == []


@pytest.mark.parametrize(('root', 'message'), [
    ('/srv/ho\x00mes', 'profiles_root must not contain NUL characters'),
    ('/srv/homes/../../etc', "profiles_root must not contain '..' components, got '/srv/homes/../../etc'"),
    ('/srv/..', "profiles_root must not contain '..' components, got '/srv/..'"),
])
def test_native_context_refuses_nul_and_traversal_before_looking(root: str, message: str) -> None:
    is_dir = IsDir(root)
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        native_context('Linux', root, is_dir)
    assert is_dir.asked == []


@pytest.mark.parametrize(('system', 'root', 'checked'), [
    ('Linux', '/nonexistent', '/nonexistent'),
    ('Darwin', None, '/Users'),
])
def test_native_context_missing_root(system: str, root, checked: str) -> None:
    is_dir = IsDir()
    message = f'profiles_root {checked!r} does not exist or is not a directory'
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        native_context(system, root, is_dir)
    assert is_dir.asked == [checked]


def test_native_context_with_real_filesystem(tmp_path) -> None:
    import os

    (tmp_path / 'file').write_text('x')
    with pytest.raises(RequestError, match='does not exist or is not a directory'):
        native_context('Linux', str(tmp_path / 'file'), os.path.isdir)
    _layout, host = native_context('Linux', str(tmp_path), os.path.isdir)
    assert host.profiles_root == str(tmp_path)
