# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Batch semantics of the bridge vocabulary, for the Python hosts.

Private to this collection. Both Python implementations of the vocabulary —
the simulated Windows host and the local POSIX host used by the native modules
— inherit this runner, so groups, ``each_profile`` expansion and the result
envelope behave exactly as win_bridge.ps1 does (see _bridge_vocabulary).
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS

Envelope = dict[str, t.Any]
CHANGE_FLAGS: tuple[str, ...] = ('moved', 'removed', 'created', 'updated', 'acl_corrected', 'created_key',
                                 'stopped', 'deleted', 'bytes')


class HostError(Exception):
    """The host could not be read, or refused the whole batch; nothing was changed."""


class BridgeOperationError(Exception):
    """One operation failed; the batch records it and goes on with other groups."""


class BatchRunner:
    """Runs a list of operations; subclasses provide ``op_<name>`` methods."""

    check_mode = False

    def begin_batch(self, operations: list[dict[str, t.Any]]) -> None:
        """Hook before the first operation."""

    def end_batch(self) -> dict[str, t.Any]:
        """Hook after the last operation, also on failure; returns extra envelope keys."""
        return {}

    def run_batch(self, operations: list[dict[str, t.Any]], *, check_mode: bool = False) -> Envelope:
        self.check_mode = check_mode
        self.begin_batch(operations)
        results: list[dict[str, t.Any]] = []
        failed_groups: set[t.Any] = set()
        profiles: list[dict[str, t.Any]] = []
        try:
            for operation in operations:
                group = operation.get('group')
                if group is not None and group in failed_groups:
                    results.append(_envelope(operation, 'skipped'))
                    continue
                result = self._run_one(operation, profiles)
                if operation['op'] == 'get_profiles' and result['status'] == 'ok':
                    # each_profile runs for the profiles get_profiles selected (all when it was not filtered).
                    profiles = [p for p in result['data']['profiles'] if p.get('selected', True)]
                if result['status'] == 'error' and group is not None:
                    failed_groups.add(group)
                results.append(result)
        finally:
            extra = self.end_batch()
        changed = any(r['status'] == 'ok' and _mutates(r['op']) and data_changed(r['data'])
                      for r in results)
        return {'changed': changed, 'results': results, **extra}

    def _run_one(self, operation: dict[str, t.Any], profiles: list[dict[str, t.Any]]) -> dict[str, t.Any]:
        name = operation['op']
        params = {k: v for k, v in operation.items() if k not in ('op', 'group', 'each_profile')}
        try:
            if self.check_mode and _mutates(name):
                raise BridgeOperationError('refused in check mode')
            if operation.get('each_profile'):
                data = {'by_sid': {p['sid']: self._run_for_profile(name, params, p) for p in profiles}}
            else:
                data = self.dispatch(name, params)
        except BridgeOperationError as error:
            return _envelope(operation, 'error', error=str(error))
        return _envelope(operation, 'ok', data=data)

    def _run_for_profile(self, name: str, params: dict[str, t.Any], profile: dict[str, t.Any]) -> dict[str, t.Any]:
        substitutions = {'ProfilePath': profile['profile_path'], 'Sid': profile['sid'], **profile['folders']}
        try:
            data = self.dispatch(name, substitute(params, substitutions))
        except BridgeOperationError as error:
            return {'status': 'error', 'data': None, 'error': str(error)}
        return {'status': 'ok', 'data': data, 'error': None}

    def dispatch(self, name: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
        handler = getattr(self, f'op_{name}', None)
        if handler is None:
            raise BridgeOperationError(f'operation {name} is not available on this host')
        return handler(**params)


def _mutates(name: str) -> bool:
    """Unknown names count as mutating, so check mode refuses them too."""
    operation = OPERATIONS.get(name)
    return operation is None or operation.mutates


def _envelope(operation: dict[str, t.Any], status: str, data: t.Any = None, error: str | None = None) -> dict[str, t.Any]:
    return {'op': operation['op'], 'group': operation.get('group'), 'status': status, 'data': data, 'error': error}


def substitute(value: t.Any, substitutions: dict[str, str]) -> t.Any:
    """Replace ``{Name}`` placeholders in every string of a parameter tree."""
    if isinstance(value, str):
        for name, replacement in substitutions.items():
            value = value.replace('{' + name + '}', replacement)
        return value
    if isinstance(value, list):
        return [substitute(item, substitutions) for item in value]
    if isinstance(value, dict):
        return {k: substitute(v, substitutions) for k, v in value.items()}
    return value


def data_changed(data: dict[str, t.Any] | None) -> bool:
    if not data:
        return False
    if 'by_sid' in data:
        return any(entry['status'] == 'ok' and data_changed(entry['data']) for entry in data['by_sid'].values())
    return any(bool(data.get(flag)) for flag in CHANGE_FLAGS)
