#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: incident
short_description: Remember, per incident and user, which Notion fixes were tried and what they did
description:
  - The ladder (role C(loopbreaker.notion.ladder)) is driven by an incident, a user's report named by an id
    such as a ticket number. This module keeps, on the host, per incident and user, the rungs applied, when,
    the finding codes before and after, and the outcome.
  - Records live in the administrator-only store of trusted records (Windows
    C(HKLM\\SOFTWARE\\loopbreaker\\notion\\records\\incidents); macOS/Linux C(<state_dir>/records/incidents)).
  - States are V(opened), V(escalated) (a rung was applied and the problem persists), V(resolved) and, computed
    from the last update, V(expired) after O(expire_days). V(listed) only reads.
  - Recording the same rung again for a user with the same outcome changes nothing.
version_added: 0.2.0
author: loopbreaker.notion contributors (@loopbreaker)
options:
  id:
    description: The incident id (letters, digits, C(.), C(_), C(-); at most 128). Required except with V(listed).
    type: str
  state:
    description: V(listed) reads (one incident with O(id), else all); the others set the incident's state.
    type: str
    choices: [listed, opened, escalated, resolved]
    default: listed
  rung:
    description: With V(escalated) or V(resolved), the rung that was applied (an attempt is recorded for O(users)).
    type: str
    choices: [app_data, browser_data, sessions, proxy, restart, firewall, reinstall]
  users:
    description: The users the attempt concerns.
    type: list
    elements: str
    default: []
  before:
    description: Finding codes before the rung.
    type: list
    elements: str
    default: []
  after:
    description: Finding codes after the rung.
    type: list
    elements: str
    default: []
  expire_days:
    description: An incident not updated for this many days is V(expired); opening it again starts afresh.
    type: int
    default: 7
  previous:
    description:
      - The incident's record as read from this host earlier in the same run (JSON, C(null) for none), as
        RV(loopbreaker.notion.diagnose#module:incident) returns it. Saves the read, so recording an attempt
        costs one host call. Omit it to read the record.
    type: str
  profiles_root:
    description: macOS/Linux only; the directory holding home directories.
    type: path
  state_dir:
    description: macOS/Linux only; the root-only directory holding the trusted records.
    type: path
attributes:
  check_mode:
    support: full
    description: Reports the record as it would be; writes nothing.
  diff_mode:
    support: full
    description: The incident's record before and after, as JSON.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS and Linux natively.
"""

EXAMPLES = r"""
- name: Record that the proxy rung fixed alice's loop
  loopbreaker.notion.incident:
    id: INC-4711
    state: resolved
    rung: proxy
    users: [alice]
    before: [websocket_blocked]
    after: []
"""

RETURN = r"""
incident:
  description: The incident after the call (with its effective C(state) and the C(tried) rungs), or null.
  returned: always
  type: dict
incidents:
  description: With V(listed), every incident asked for.
  returned: when state is listed
  type: list
  elements: dict
"""

import datetime
import os
import platform

from ansible_collections.loopbreaker.notion.plugins.module_utils import _incident
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def main() -> None:
    module = new_module(_incident.ARGUMENT_SPEC, required_if=_incident.REQUIRED_IF,
                        supports_check_mode=True)

    def act() -> dict:
        _incident.validate(module.params)
        _layout, host = native_context(platform.system(), module.params['profiles_root'], os.path.isdir,
                                       state_dir=module.params['state_dir'])
        return _incident.run(host, module.params, check_mode=module.check_mode,
                             now=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0))

    succeeded, result = native_outcome(act, diff=module._diff)
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()
