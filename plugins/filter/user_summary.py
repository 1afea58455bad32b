# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError


def user_summary(user: dict[str, t.Any]) -> dict[str, t.Any]:
    """One line's worth of a module's per-user result, for reports."""
    if not isinstance(user, dict) or not ('user' in user or 'name' in user):
        raise AnsibleFilterError('user_summary expects one entry of a module result\'s "users" or "targets" list')
    items = user.get('items')
    if items is None:
        moved = 1 if user.get('status') == 'changed' else 0
    else:
        moved = sum(1 for item in items if item.get('action') in ('quarantined', 'removed'))
    return {
        'user': user.get('user', user.get('name')),
        'status': user.get('status'),
        'items': moved,
        'bytes': user.get('bytes', 0),
        'processes_stopped': len(user.get('processes_stopped') or []),
        'errors': list(user.get('errors') or (user.get('notes') if user.get('status') == 'failed' else None) or []),
    }


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'user_summary': user_summary}
