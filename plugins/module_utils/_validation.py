# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument checks every module shares, on both paths, before anything is read from the host.

Private to this collection. Pure functions: each takes module parameters (after the
argument spec, unless it says otherwise) and raises RequestError with a message
that starts with the offending option's name, or returns what it computed. The
modules call them from their ``Request.from_params``/``validate`` functions, so the
Windows action plugins and the native modules refuse the same input with the same
message.
"""
from __future__ import annotations

import decimal
import re
import typing as t
import urllib.parse

from ansible_collections.loopbreaker.notion.plugins.module_utils._host import MAX_TEXT, RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import ENTRY_ID_PATTERN, parse_duration

MAX_ENTRIES = 10000
# check_type_int turns '1e999999999' into a 10**999999999 int (memory and time) and raises
# OverflowError, not TypeError, on 'inf': both are refused before the argument spec runs.
MAX_INT_DIGITS = 18
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
REDACTED = '********'
MIN_SECRET = 6


def shown(value: object, limit: int = 120) -> str:
    """repr() of a value, cut to ``limit`` characters so a huge value never floods a message."""
    text = repr(value)
    return text if len(text) <= limit else f'{text[:limit - 3]}...'


# ------------------------------------------------------------ before the spec


def raw_int_problem(spec: dict[str, t.Any], raw: dict[str, t.Any]) -> str | None:
    """The message for an int option the argument spec would crash on or blow up, else None.

    Runs on the task's arguments as given, before ArgumentSpecValidator/AnsibleModule.
    """
    for option, option_spec in spec.items():
        value = raw.get(option)
        if option_spec.get('type') != 'int' or value is None or isinstance(value, int):
            continue
        try:
            number = decimal.Decimal(value.strip() if isinstance(value, str) else value)
        except (decimal.DecimalException, TypeError, ValueError):
            continue  # the spec reports it as not convertible, with its own message
        if not number.is_finite() or number.adjusted() >= MAX_INT_DIGITS:
            return f'{option} must be a whole number of at most {MAX_INT_DIGITS} digits, got {shown(value)}'
    return None


# ------------------------------------------------------------- after the spec


def _texts(value: t.Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def check_text_options(params: dict[str, t.Any], spec: dict[str, t.Any]) -> None:
    """Every str/path option (and list of them): no NUL or control characters, bounded size."""
    for option, option_spec in spec.items():
        value = params.get(option)
        if value is None or option_spec.get('type') not in ('str', 'path', 'list'):
            continue
        if isinstance(value, list) and len(value) > MAX_ENTRIES:
            raise RequestError(f'{option} has {len(value)} entries, at most {MAX_ENTRIES}')
        for text in _texts(value):
            if '\x00' in text:
                raise RequestError(f'{option} must not contain NUL characters, got {shown(text)}')
            if _CONTROL.search(text):
                raise RequestError(f'{option} must not contain control characters, got {shown(text)}')
            if len(text) > MAX_TEXT:
                raise RequestError(f'{option} is too long: {len(text)} characters, at most {MAX_TEXT}')


def check_user_options(params: dict[str, t.Any]) -> None:
    """users and exclude_users mean the same in every module.

    ``users: []`` is refused: leaving users out means every user, and an empty list
    that silently meant the same would turn "nobody" into "everybody". ``exclude_users: []``
    excludes nobody, which is what it says.
    """
    if params.get('users') is not None and not params['users']:
        raise RequestError('users must name at least one user; leave it out to mean every user')
    for option in ('users', 'exclude_users'):
        for name in params.get(option) or ():
            if not name.strip():
                raise RequestError(f'{option} must not contain empty names')
            # A Windows account name (DOMAIN\\name, AzureAD\\FirstLast) names a user too: one backslash, two parts.
            parts = name.split('\\')
            if '/' in name or len(parts) > 2 or any(not p.strip() or p.strip() in ('.', '..') for p in parts):
                raise RequestError(f'{option} must hold profile names, not paths, got {shown(name)}')


def check_seconds(params: dict[str, t.Any], option: str, maximum: int) -> None:
    value = params[option]
    if value < 1:
        raise RequestError(f'{option} must be at least 1 second, got {value}')
    if value > maximum:
        raise RequestError(f'{option} must be at most {maximum} seconds, got {value}')


# ------------------------------------------------------------- credentials


def url_userinfo(text: str) -> str | None:
    """The ``user:password`` part of a URL, None when there is none."""
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return None
    if not parts.scheme or '@' not in parts.netloc:
        return None
    return parts.netloc.rsplit('@', 1)[0] or None


def url_secrets(params: dict[str, t.Any]) -> set[str]:
    """Every string that must not appear in a result: userinfo of any URL in the parameters.

    The whole userinfo (raw and percent-decoded) and the password alone, each when it is long
    enough not to match unrelated text (a one-letter "secret" would blank every such letter of the
    result; messages built from the URL still show it redacted, see redact_url).
    """
    found: set[str] = set()
    for value in params.values():
        for text in _texts(value):
            userinfo = url_userinfo(text)
            if userinfo is None:
                continue
            for form in (userinfo, urllib.parse.unquote(userinfo)):
                password = form.partition(':')[2]
                found |= {part for part in (form, password) if len(part) >= MIN_SECRET}
    return found


def redact_url(text: str) -> str:
    """The URL with its userinfo replaced, for messages built from it."""
    userinfo = url_userinfo(text)
    return text.replace(userinfo + '@', REDACTED + '@', 1) if userinfo else text


def redact(value: t.Any, secrets: set[str]) -> t.Any:
    """value (a result, recursively) with every secret replaced by ``********``."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item, secrets) for item in value]
    return value


def check_common(params: dict[str, t.Any], spec: dict[str, t.Any]) -> None:
    """What every module checks first: text options, then users/exclude_users."""
    check_text_options(params, spec)
    check_user_options(params)


# -------------------------------------------------------------- quarantine

MAX_AGE_DAYS = 36500


def check_quarantine(params: dict[str, t.Any], spec: dict[str, t.Any]) -> None:
    """The quarantine module's request, checked before the probe (the spec only sees presence)."""
    check_common(params, spec)
    state = params['state']
    if params.get('id') is not None and state == 'listed':
        raise RequestError('id only applies to state restored or purged, not listed')
    if params.get('older_than') is not None and state != 'purged':
        raise RequestError(f'older_than only applies to state purged, not {state}')
    if params.get('force') and state != 'restored':
        raise RequestError(f'force only applies to state restored, not {state}')
    if state == 'purged' and params.get('id') is None and params.get('older_than') is None:
        # id: null passes the spec's required_if (the key is there); it is still no selector.
        raise RequestError('state is purged but any of the following are missing: id, older_than')
    if state == 'restored' and params.get('id') is None:
        raise RequestError('state is restored but all of the following are missing: id')
    if params.get('id') is not None and not ENTRY_ID_PATTERN.fullmatch(params['id']):
        raise RequestError(f"id {shown(params['id'])} is not a quarantine entry id (like '20261129T141500Z-1a2b3c')")
    if params.get('older_than') is not None:
        try:
            age = parse_duration(params['older_than'])
        except OverflowError:
            age = None
        except ValueError as error:
            raise RequestError(str(error)) from None
        if age is None or age.days > MAX_AGE_DAYS:
            raise RequestError(f"older_than must be at most {MAX_AGE_DAYS}d (100 years), got {shown(params['older_than'])}")
