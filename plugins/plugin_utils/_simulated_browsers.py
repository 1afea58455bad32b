# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The twin's binary-tree operations (read_trees, write_tree), for browser_data.

Private to this collection. Kept apart from _simulated_windows so that the
twin's file system model has one owner; SimulatedWindows mixes this class in.
It uses the twin's own helpers (``_matches``, ``_children``, ``_guard``,
``_check_unlocked``, ``write``, ``exists``) and models what the PowerShell
implementation does: files are read with shared access (a running browser's
locked file is still read), and ``write_tree`` refuses an existing path.
"""
from __future__ import annotations

import base64
import ntpath
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

DEFAULT_TREE_BYTES = 64 * 1048576
_LINK_TYPES = ('link', 'junction')


class SimulatedBrowserStores:
    """Mixin for SimulatedWindows."""

    state: dict[str, t.Any]

    def op_read_trees(self, patterns: list[str], within: str | None = None,
                      max_bytes: int = DEFAULT_TREE_BYTES) -> dict[str, t.Any]:
        trees = []
        for pattern in patterns:
            for entry in self._matches(pattern, within, sorted(self.state['files'])):  # type: ignore[attr-defined]
                tree: dict[str, t.Any] = {'pattern': pattern, 'path': entry['path'], 'type': entry['type'],
                                          'owner_sid': entry.get('owner'), 'files': None, 'error': None}
                try:
                    tree['files'] = self._tree_files(entry, max_bytes)
                except BridgeOperationError as error:
                    tree['error'] = str(error)
                trees.append(tree)
        return {'trees': trees}

    def _tree_files(self, entry: dict[str, t.Any], max_bytes: int) -> list[dict[str, t.Any]]:
        if entry['type'] in _LINK_TYPES:
            raise BridgeOperationError('it is a junction or symbolic link; not followed')
        inside = [entry] if entry['type'] == 'file' else self._children(entry['path'])  # type: ignore[attr-defined]
        files, total = [], 0
        for found in inside:
            if found['type'] in _LINK_TYPES:
                raise BridgeOperationError(f"it holds the junction or symbolic link '{found['path']}'; not followed")
            if found['type'] != 'file':
                continue
            data = base64.b64decode(found['content'])
            total += len(data)
            if total > max_bytes:
                raise BridgeOperationError(f'it is larger than {max_bytes} bytes')
            name = '' if found is entry else found['path'][len(entry['path']) + 1:].replace('\\', '/')
            files.append({'name': name, 'mode': 0o600, 'data': found['content']})
        return files

    def op_write_tree(self, path: str, files: list[dict[str, t.Any]], within: str | None = None,
                      attributes: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        path = self._guard(path, within)  # type: ignore[attr-defined]
        if self.exists(path):  # type: ignore[attr-defined]
            raise BridgeOperationError(f"Cannot write '{path}': it already exists.")
        written = 0
        single = len(files) == 1 and files[0]['name'] == ''
        for entry in files:
            name = entry['name']
            if not single and (not name or any(part in ('', '.', '..') for part in name.split('/'))):
                raise BridgeOperationError(f'Refusing the file name {name!r} in a tree.')
        if not single:
            self.mkdir(path)  # type: ignore[attr-defined]
        for entry in files:
            data = base64.b64decode(entry['data'], validate=True)
            target = path if single else ntpath.join(path, *entry['name'].split('/'))
            self.write(target, data)  # type: ignore[attr-defined]
            written += len(data)
        owner = (attributes or {}).get('owner_sid')
        if owner:
            for key, found in self.state['files'].items():
                if key == ntpath.normpath(path).rstrip('\\').lower() or key.startswith(
                        ntpath.normpath(path).rstrip('\\').lower() + '\\'):
                    found['owner'] = owner
        return {'created': True, 'bytes': written}
