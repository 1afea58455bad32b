# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The native proxy module's record file: never read through a link, a FIFO or a directory."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.modules.proxy import _load_record, _save_record


def test_round_trip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / 'loopbreaker' / 'proxy-record.json'
    assert _load_record(str(path)) is None
    _save_record(str(path), {'Wi-Fi': {'web': 'proxy:3128'}})
    assert _load_record(str(path)) == {'Wi-Fi': {'web': 'proxy:3128'}}
    assert os.stat(path).st_mode & 0o777 == 0o600
    _save_record(str(path), None)
    assert not path.exists()


def test_a_link_is_replaced_on_write_and_refused_on_read(tmp_path: Path) -> None:
    secret = tmp_path / 'secret'
    secret.write_text('{"root": "only"}', encoding='utf-8')
    path = tmp_path / 'record.json'
    path.symlink_to(secret)
    with pytest.raises(RequestError, match=re.escape(f'cannot read the proxy record {path}: ')):
        _load_record(str(path))
    _save_record(str(path), {'a': 1})
    assert not path.is_symlink() and json.loads(path.read_text(encoding='utf-8')) == {'a': 1}
    assert secret.read_text(encoding='utf-8') == '{"root": "only"}'


@pytest.mark.parametrize('kind', ['fifo', 'directory', 'corrupt', 'list'])
def test_anything_but_a_json_object_fails_before_a_change(tmp_path: Path, kind: str) -> None:
    path = tmp_path / 'record.json'
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'directory':
        path.mkdir()
    else:
        path.write_bytes(b'\xff{' if kind == 'corrupt' else b'[1, 2]')
    expected = 'is not a regular file' if kind in ('fifo', 'directory') else 'is corrupt'
    with pytest.raises(RequestError, match=re.escape(f'the proxy record {path} {expected}; nothing was changed')):
        _load_record(str(path))
