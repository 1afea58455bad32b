# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_validation.py: the argument checks every module shares."""
from __future__ import annotations

import re
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import (
    check_quarantine,
    check_seconds,
    check_text_options,
    check_user_options,
    raw_int_problem,
    redact,
    redact_url,
    shown,
    url_secrets,
    url_userinfo,
)

SPEC = {'timeout': {'type': 'int', 'default': 30}, 'name': {'type': 'str'}, 'root': {'type': 'path'},
        'names': {'type': 'list', 'elements': 'str'}, 'flag': {'type': 'bool'}}


def refuses(check: t.Callable[..., None], *args: t.Any, message: str) -> None:
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        check(*args)


@pytest.mark.parametrize(('value', 'message'), [
    ('inf', "timeout must be a whole number of at most 18 digits, got 'inf'"),
    (' -Infinity ', "timeout must be a whole number of at most 18 digits, got ' -Infinity '"),
    (float('inf'), 'timeout must be a whole number of at most 18 digits, got inf'),
    ('NaN', "timeout must be a whole number of at most 18 digits, got 'NaN'"),
    ('1e400', "timeout must be a whole number of at most 18 digits, got '1e400'"),
    ('1' * 19, f"timeout must be a whole number of at most 18 digits, got '{'1' * 19}'"),
    ('1' * 18, None),
    (10 ** 30, None),                 # a real int: the range check reports it, with the module's bound
    ('30', None), (30, None), (True, None), (None, None),
    ('soon', None), ([1], None),      # not numbers: the spec's own message says so
])
def test_raw_int_problem(value: t.Any, message: str | None) -> None:
    assert raw_int_problem(SPEC, {'timeout': value}) == message


def test_raw_int_problem_ignores_other_options_and_absent_ones() -> None:
    assert raw_int_problem(SPEC, {'name': 'inf', 'flag': 'inf'}) is None
    assert raw_int_problem(SPEC, {}) is None


@pytest.mark.parametrize(('params', 'message'), [
    ({'name': 'a\x00b'}, "name must not contain NUL characters, got 'a\\x00b'"),
    ({'root': '/srv/\x00'}, "root must not contain NUL characters, got '/srv/\\x00'"),
    ({'names': ['ok', 'b\x00']}, "names must not contain NUL characters, got 'b\\x00'"),
    ({'names': ['line\nbreak']}, "names must not contain control characters, got 'line\\nbreak'"),
    ({'name': 'tab\there'}, "name must not contain control characters, got 'tab\\there'"),
    ({'name': 'del\x7f'}, "name must not contain control characters, got 'del\\x7f'"),
    ({'name': 'x' * 4097}, 'name is too long: 4097 characters, at most 4096'),
    ({'names': ['x'] * 10001}, 'names has 10001 entries, at most 10000'),
])
def test_check_text_options_refuses(params: dict[str, t.Any], message: str) -> None:
    refuses(check_text_options, params, SPEC, message=message)


@pytest.mark.parametrize('params', [
    {'name': 'x' * 4096}, {'names': ['x'] * 10000}, {'name': 'Jürgen 😀'}, {'name': None}, {'timeout': 'a\x00'},
    {'flag': True}, {},
])
def test_check_text_options_accepts(params: dict[str, t.Any]) -> None:
    check_text_options(params, SPEC)


@pytest.mark.parametrize(('params', 'message'), [
    ({'users': []}, 'users must name at least one user; leave it out to mean every user'),
    ({'users': ['alice', '']}, 'users must not contain empty names'),
    ({'exclude_users': [' ']}, 'exclude_users must not contain empty names'),
    ({'users': ['../root']}, "users must hold profile names, not paths, got '../root'"),
    ({'users': ['CORP\\alice\\x']}, "users must hold profile names, not paths, got 'CORP\\\\alice\\\\x'"),
    ({'users': ['\\alice']}, "users must hold profile names, not paths, got '\\\\alice'"),
    ({'exclude_users': ['/home/bob']}, "exclude_users must hold profile names, not paths, got '/home/bob'"),
    ({'users': ['..']}, "users must hold profile names, not paths, got '..'"),
])
def test_check_user_options_refuses(params: dict[str, t.Any], message: str) -> None:
    refuses(check_user_options, params, message=message)


@pytest.mark.parametrize('params', [
    {}, {'users': None, 'exclude_users': None}, {'exclude_users': []}, {'users': ['alice', 'jürgen', 'o.brien']},
    {'users': ['CORP\\alice', 'AzureAD\\JaneDoe']},
])
def test_check_user_options_accepts(params: dict[str, t.Any]) -> None:
    """exclude_users: [] excludes nobody, which is what it says; a unicode, dotted or account name is a name."""
    check_user_options(params)


@pytest.mark.parametrize(('value', 'message'), [
    (0, 'timeout must be at least 1 second, got 0'),
    (-5, 'timeout must be at least 1 second, got -5'),
    (3601, 'timeout must be at most 3600 seconds, got 3601'),
    (10 ** 20, f'timeout must be at most 3600 seconds, got {10 ** 20}'),
])
def test_check_seconds_refuses(value: int, message: str) -> None:
    refuses(check_seconds, {'timeout': value}, 'timeout', 3600, message=message)


@pytest.mark.parametrize('value', [1, 30, 3600])
def test_check_seconds_accepts(value: int) -> None:
    check_seconds({'timeout': value}, 'timeout', 3600)


@pytest.mark.parametrize(('text', 'userinfo'), [
    ('https://user:pass@host/x.exe', 'user:pass'),
    ('https://token@host/x.exe', 'token'),
    ('ftp://a:b%40c@host/x', 'a:b%40c'),
    ('https://u:p@ss@host/x', 'u:p@ss'),
    ('https://host/x.exe', None),
    ('https://host/a@b.exe', None),
    ('C:\\Installers\\me@corp\\Notion.exe', None),
    ('user@host:/path', None),
    ('http://[::1', None),
])
def test_url_userinfo(text: str, userinfo: str | None) -> None:
    assert url_userinfo(text) == userinfo


def test_url_secrets_finds_userinfo_in_any_string_or_list_option_raw_and_decoded() -> None:
    params = {'installer': 'https://deploy:p%40ssw0rd!@files.example/x.exe', 'users': ['https://x:tiny@h/'],
              'timeout': 30, 'name': None}
    assert url_secrets(params) == {'deploy:p%40ssw0rd!', 'deploy:p@ssw0rd!', 'p%40ssw0rd!', 'p@ssw0rd!', 'x:tiny'}


def test_url_secrets_skips_what_is_too_short_to_redact_safely() -> None:
    """Redacting 'x' everywhere would garble the result; redact_url still hides it in messages."""
    assert url_secrets({'installer': 'https://x@files.example/x.exe'}) == set()
    assert url_secrets({'installer': 'https://ab:cd@files.example/x.exe'}) == set()
    assert redact_url('https://x@files.example/x.exe') == 'https://********@files.example/x.exe'


def test_redact_url_and_redact() -> None:
    url = 'https://deploy:s3cret-value@files.example/Notion%20Setup.exe'
    assert redact_url(url) == 'https://********@files.example/Notion%20Setup.exe'
    assert redact_url('https://files.example/x') == 'https://files.example/x'
    result = {'msg': f'failed ({url})', 'users': [{'reason': 'deploy:s3cret-value'}], 'n': 1, 'ok': None,
              url: ('s3cret-value',)}
    assert redact(result, url_secrets({'installer': url})) == {
        'msg': 'failed (https://********@files.example/Notion%20Setup.exe)', 'users': [{'reason': '********'}],
        'n': 1, 'ok': None, 'https://********@files.example/Notion%20Setup.exe': ['********']}
    assert redact(result, set()) is result


def test_shown_cuts_long_values() -> None:
    assert shown('x' * 10, limit=8) == "'xxxx..."
    assert shown('short') == "'short'"


QUARANTINE_DEFAULTS = {'state': 'listed', 'id': None, 'older_than': None, 'force': False, 'users': None,
                       'exclude_users': None, 'profiles_root': None, 'stop_app': True}


@pytest.mark.parametrize(('params', 'message'), [
    ({'state': 'purged'}, 'state is purged but any of the following are missing: id, older_than'),
    ({'state': 'restored'}, 'state is restored but all of the following are missing: id'),
    ({'state': 'purged', 'id': ''}, "id '' is not a quarantine entry id (like '20261129T141500Z-1a2b3c')"),
    ({'state': 'restored', 'id': '../x'}, "id '../x' is not a quarantine entry id (like '20261129T141500Z-1a2b3c')"),
    ({'id': '20261129T141500Z-1a2b3c'}, 'id only applies to state restored or purged, not listed'),
    ({'state': 'restored', 'id': '20261129T141500Z-1a2b3c', 'older_than': '1d'},
     'older_than only applies to state purged, not restored'),
    ({'state': 'purged', 'older_than': '1d', 'force': True}, 'force only applies to state restored, not purged'),
    ({'state': 'purged', 'older_than': 'soon'}, "older_than must look like '7d', '12h', '30m', '2w' or '45s', got 'soon'"),
    ({'state': 'purged', 'older_than': '3000000d'}, "older_than must be at most 36500d (100 years), got '3000000d'"),
    ({'state': 'purged', 'older_than': '36501d'}, "older_than must be at most 36500d (100 years), got '36501d'"),
    ({'state': 'purged', 'older_than': '9' * 40 + 's'},
     f"older_than must be at most 36500d (100 years), got '{'9' * 40}s'"),
    ({'users': []}, 'users must name at least one user; leave it out to mean every user'),
    ({'state': 'purged', 'older_than': '1\x00d'}, "older_than must not contain NUL characters, got '1\\x00d'"),
])
def test_check_quarantine_refuses(params: dict[str, t.Any], message: str) -> None:
    refuses(check_quarantine, {**QUARANTINE_DEFAULTS, **params}, _quarantine_state.ARGUMENT_SPEC, message=message)


@pytest.mark.parametrize('params', [
    {}, {'state': 'purged', 'older_than': '36500d'}, {'state': 'purged', 'older_than': '0s'},
    {'state': 'purged', 'id': '20261129T141500Z-1a2b3c'},
    {'state': 'restored', 'id': '20261129T141500Z-1a2b3c', 'force': True},
])
def test_check_quarantine_accepts(params: dict[str, t.Any]) -> None:
    check_quarantine({**QUARANTINE_DEFAULTS, **params}, _quarantine_state.ARGUMENT_SPEC)
