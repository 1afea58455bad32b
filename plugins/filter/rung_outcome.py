# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_report import rung_record


def rung_outcome(result: dict[str, t.Any], rung: str, check_mode: bool = False) -> dict[str, t.Any]:
    """Detection and remediation of one rung's module result, as in the fleet report."""
    if not isinstance(result, dict):
        raise AnsibleFilterError('rung_outcome expects a registered result of a loopbreaker.notion module')
    module = 'app' if rung in ('restart', 'reinstall') else rung
    record = rung_record(rung, module, result, check_mode=bool(check_mode))
    return {'detection': record['detection'], 'remediation': record['remediation']}


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'rung_outcome': rung_outcome}
