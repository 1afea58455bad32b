# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local POSIX host's network and evidence primitives (a mixin of LocalHost).

Private to this collection. ``probe_network`` runs the standard-library probes of
_netprobe; on POSIX a proxy setting is used as given (``manual`` with server and
bypass, or ``pac`` with its URL, from the diagnose options or the environment); a
PAC file is fetched and evaluated with pypac (_pac, http/https/file URLs); auto-detect
(WPAD) is not evaluated and is reported. ``read_file_tails`` walks like every LocalHost read (no links
followed below the profiles root) and reads only the bounded head and tail; ``quick_check`` runs
SQLite's ``PRAGMA quick_check`` on a file reached the same way.
"""
from __future__ import annotations

import base64
import datetime
import os
import sqlite3
import stat
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _netprobe
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.module_utils._nofollow import open_regular


class LocalProbes:
    """op_probe_network and op_read_file_tails for LocalHost."""

    _glob: t.Callable[..., t.Iterator[t.Any]]
    _parent: t.Callable[..., t.Any]

    def quick_check(self, path: str) -> str | None:
        """PRAGMA quick_check of the regular file at path, reached through no link; None if it cannot be opened."""
        try:
            chain, name = self._parent(path, None)
        except (OSError, BridgeOperationError):
            return None
        with chain:
            try:
                fd, _status = open_regular(chain.fd, name)
            except (OSError, BridgeOperationError):
                return None
        try:
            via = f'/proc/self/fd/{fd}' if os.path.isdir('/proc/self/fd') else f'/dev/fd/{fd}'
            connection = sqlite3.connect(f'file:{via}?mode=ro&immutable=1', uri=True, timeout=1)
            try:
                rows = connection.execute('PRAGMA quick_check').fetchall()
            finally:
                connection.close()
            return 'ok' if rows == [('ok',)] else '; '.join(str(r[0]) for r in rows[:3])
        except sqlite3.DatabaseError as error:
            return str(error)
        finally:
            os.close(fd)

    def op_probe_network(self, endpoints: list[dict[str, t.Any]], proxies: list[dict[str, t.Any]],
                         resolve: dict[str, str] | None = None, ca_bundle: str | None = None,
                         timeout_seconds: int = 5) -> dict[str, t.Any]:
        if not endpoints:
            raise BridgeOperationError('probe_network needs at least one endpoint')
        settings = proxies or [{'mode': 'direct'}]
        outcome = _netprobe.probe_all(endpoints, settings, resolve=resolve, ca_bundle=ca_bundle,
                                      timeout_seconds=timeout_seconds, proxy_for=_netprobe.proxy_for)
        for result in outcome['results']:
            if settings[result['proxy_index']].get('mode') in ('auto', 'auto_detect'):
                result['note'] = 'auto-detect (WPAD) is not evaluated on macOS/Linux: probed direct'
            elif result.get('pac', {}).get('error') and result['failed_step'] != 'pac':
                result['note'] = f"PAC not used ({result['pac']['error']}): probed direct, as the OS falls back"
        return outcome

    def op_read_file_tails(self, patterns: list[str], max_bytes: int = 65536, head_bytes: int = 0) -> dict[str, t.Any]:
        files = []
        for pattern in patterns:
            for chain, name, status in self._glob(pattern, None):
                if stat.S_ISDIR(status.st_mode):
                    continue
                path = os.path.join(chain.path, name)
                try:
                    files.append({'path': path, **_tail(chain.fd, name, max_bytes, head_bytes), 'error': None})
                except (OSError, BridgeOperationError) as error:
                    files.append({'path': path, 'bytes': None, 'modified': None, 'tail': None, 'head': None,
                                  'error': str(error)})
        return {'files': files}


def _tail(parent_fd: int, name: str, max_bytes: int, head_bytes: int) -> dict[str, t.Any]:
    fd, status = open_regular(parent_fd, name)
    try:
        head = os.pread(fd, head_bytes, 0) if head_bytes else b''
        start = max(0, status.st_size - max_bytes)
        tail = os.pread(fd, max_bytes, start) if max_bytes else b''
    finally:
        os.close(fd)
    modified = datetime.datetime.fromtimestamp(status.st_mtime, datetime.timezone.utc)
    return {'bytes': status.st_size, 'modified': modified.strftime('%Y-%m-%dT%H:%M:%SZ'),
            'tail': tail.decode('utf-8', 'replace'), 'head': base64.b64encode(head).decode()}
