# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""read_trees and write_tree on a real POSIX file system: bytes out and in, never through a link."""
from __future__ import annotations

import base64
import os
import typing as t
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost


def one(host: LocalHost, operation: dict[str, t.Any]) -> dict[str, t.Any]:
    return host.run_batch([operation])['results'][0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / 'homes' / 'alice' / 'db').mkdir(parents=True)
    (tmp_path / 'homes' / 'alice' / 'db' / 'CURRENT').write_bytes(b'MANIFEST-1\n')
    (tmp_path / 'homes' / 'alice' / 'db' / 'sub').mkdir()
    (tmp_path / 'homes' / 'alice' / 'db' / 'sub' / 'x.ldb').write_bytes(bytes(range(256)))
    (tmp_path / 'homes' / 'alice' / 'Cookies').write_bytes(b'SQLite format 3\x00')
    return tmp_path / 'homes' / 'alice'


def test_read_trees_returns_files_and_directories_as_bytes(home: Path) -> None:
    host = LocalHost(str(home.parent), 'linux')
    result = one(host, {'op': 'read_trees', 'patterns': [str(home / 'db'), str(home / 'Cook*')]})
    trees = {Path(tr['path']).name: tr for tr in result['data']['trees']}
    assert [f['name'] for f in trees['db']['files']] == ['CURRENT', 'sub/x.ldb']
    assert base64.b64decode(trees['db']['files'][1]['data']) == bytes(range(256))
    assert trees['Cookies']['files'][0]['name'] == ''
    assert base64.b64decode(trees['Cookies']['files'][0]['data']) == b'SQLite format 3\x00'


def test_read_trees_refuses_links_and_oversized_trees(home: Path, tmp_path: Path) -> None:
    (tmp_path / 'secret').write_text('root only')
    os.symlink(tmp_path / 'secret', home / 'db' / 'LOG')
    os.symlink(tmp_path / 'secret', home / 'Linked')
    host = LocalHost(str(home.parent), 'linux')
    trees = {Path(tr['path']).name: tr for tr in one(host, {
        'op': 'read_trees', 'patterns': [str(home / 'db'), str(home / 'Linked')]})['data']['trees']}
    assert trees['db']['files'] is None and 'link' in trees['db']['error']
    assert trees['Linked']['files'] is None and 'link' in trees['Linked']['error']
    os.unlink(home / 'db' / 'LOG')
    small = one(host, {'op': 'read_trees', 'patterns': [str(home / 'db')], 'max_bytes': 100})['data']['trees'][0]
    assert small['files'] is None and 'larger' in small['error']


def test_write_tree_creates_a_directory_and_refuses_an_existing_path(home: Path) -> None:
    host = LocalHost(str(home.parent), 'linux')
    files = [{'name': 'CURRENT', 'data': base64.b64encode(b'M\n').decode(), 'mode': 0o644},
             {'name': 'a/b', 'data': base64.b64encode(b'\x00\x01').decode(), 'mode': 0o600}]
    done = one(host, {'op': 'write_tree', 'path': str(home / 'new'), 'files': files, 'within': str(home),
                      'attributes': {'uid': os.getuid(), 'gid': os.getgid(), 'mode': 0o700}})
    assert done['status'] == 'ok' and done['data'] == {'created': True, 'bytes': 4}
    assert (home / 'new' / 'CURRENT').read_bytes() == b'M\n' and (home / 'new' / 'a' / 'b').read_bytes() == b'\x00\x01'
    assert (home / 'new').stat().st_mode & 0o777 == 0o700
    again = one(host, {'op': 'write_tree', 'path': str(home / 'new'), 'files': files, 'within': str(home)})
    assert again['status'] == 'error' and 'already exists' in again['error']
    single = one(host, {'op': 'write_tree', 'path': str(home / 'Cookies2'), 'within': str(home),
                        'files': [{'name': '', 'data': base64.b64encode(b'db').decode(), 'mode': 0o600}]})
    assert single['status'] == 'ok' and (home / 'Cookies2').read_bytes() == b'db'
    assert not [p for p in home.iterdir() if p.name.endswith('.tmp')]


def test_write_tree_refuses_escaping_names_and_links_on_the_way(home: Path, tmp_path: Path) -> None:
    host = LocalHost(str(home.parent), 'linux')
    bad = one(host, {'op': 'write_tree', 'path': str(home / 'x'), 'within': str(home),
                     'files': [{'name': '../escape', 'data': '', 'mode': 0o600}]})
    assert bad['status'] == 'error' and not (home / 'escape').exists() and not (home / 'x').exists()
    (tmp_path / 'elsewhere').mkdir()
    os.symlink(tmp_path / 'elsewhere', home / 'link')
    through = one(host, {'op': 'write_tree', 'path': str(home / 'link' / 'x'), 'within': str(home),
                         'files': [{'name': '', 'data': '', 'mode': 0o600}]})
    assert through['status'] == 'error' and not list((tmp_path / 'elsewhere').iterdir())
