# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.loopbreaker.notion.plugins.module_utils import _ladder
from ansible_collections.loopbreaker.notion.plugins.module_utils._incident import tried_rungs


def ladder_plan(diagnosis: dict[str, t.Any], incident: str | None = None, escalate: bool = False,
                skip: list[str] | None = None, max_rung: str | None = None,
                record: dict[str, t.Any] | None = None, also_tried: list[str] | None = None) -> dict[str, t.Any]:
    """The ladder's next step from a diagnose result (and its incident record)."""
    if not isinstance(diagnosis, dict) or 'findings' not in diagnosis:
        raise AnsibleFilterError('ladder_plan expects the result of loopbreaker.notion.diagnose')
    record = record if record is not None else diagnosis.get('incident')
    try:
        tried = tried_rungs(record)
        tried += [rung for rung in also_tried or () if rung not in tried]
        return _ladder.plan(diagnosis, tried, incident=incident or None, escalate=bool(escalate),
                            skip=skip or (), max_rung=max_rung or None,
                            resolved=bool(record and record.get('state') == 'resolved'))
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


def ladder_verdict(diagnosis: dict[str, t.Any]) -> dict[str, t.Any]:
    """A diagnose result condensed for reports: verdict, codes, and per user verdict and codes."""
    if not isinstance(diagnosis, dict) or 'findings' not in diagnosis:
        raise AnsibleFilterError('ladder_verdict expects the result of loopbreaker.notion.diagnose')
    return _ladder.verdict(diagnosis)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {'ladder_plan': ladder_plan, 'ladder_verdict': ladder_verdict}
