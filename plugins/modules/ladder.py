#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: ladder
short_description: Fix the Notion "Cannot Connect to Workspace" loop at the lowest rung that works, in one task
description:
  - The whole climb of the role C(loopbreaker.notion.ladder) for one host, in one task run by the controller
    (an action plugin) - M(loopbreaker.notion.diagnose), the rung the diagnosis points to, Notion relaunched
    for the logged-on users whose app the rung stopped (V(app_data) and V(sessions), Windows), a wait of
    O(settle_seconds), a re-diagnosis (O(loopbreaker.notion.diagnose#module:since) = the rung's start, probing the
    proxy settings the last diagnosis found), the attempt recorded with M(loopbreaker.notion.incident); then
    the next rung, at most O(max_steps) times, stopping as soon as the host is healthy.
  - Rung order and choice are those of the role (a finding that names a rung goes there first; with an
    O(incident) and no finding the lowest rung not yet tried; O(escalate) applies exactly the next rung;
    without an incident only findings lead to a rung). Rungs V(app_data) and V(sessions) run
    M(loopbreaker.notion.app_data), V(proxy) M(loopbreaker.notion.proxy), V(restart) and V(reinstall)
    M(loopbreaker.notion.app), V(firewall) M(loopbreaker.notion.firewall).
  - Each module runs as its own task would, with the task's connection and module_defaults (also
    C(group/loopbreaker.notion.all)) - on Windows its Python logic drives the bridge from the controller, on
    macOS and Linux the module runs on the host. A one-rung fix on Windows costs 6 bridge calls (7 for the
    proxy rung) and one Ansible task instead of the ~25 the role used to run per host.
  - Options are checked, and the arguments of every module the climb may run, before anything runs.
  - In check mode the diagnosis runs for real and the first rung runs in check mode; the result shows the
    climb it would make.
  - A task cannot select rungs by tag; the role turns C(--tags ladder_rung_<rung>) into O(skip) of the others.
version_added: 0.3.0
author: loopbreaker.notion contributors (@loopbreaker)
options:
  incident:
    description: The incident id (a ticket number); without it the ladder acts on findings only and remembers nothing.
    type: str
  escalate:
    description: Apply exactly the next rung above those tried for O(incident), whatever the diagnosis says.
    type: bool
    default: false
  max_rung:
    description: Never climb above this rung.
    type: str
    choices: [app_data, browser_data, sessions, proxy, restart, firewall, reinstall]
  skip:
    description: Rungs never to apply. V(reinstall) is always skipped without O(app_installer).
    type: list
    elements: str
    default: []
    choices: [app_data, browser_data, sessions, proxy, restart, firewall, reinstall]
  users:
    description: Only these users; empty = the users the findings concern.
    type: list
    elements: str
    default: []
  max_steps:
    description: At most this many rungs in one run (1 to 100).
    type: int
    default: 3
  settle_seconds:
    description: Seconds to wait on the controller after a rung before re-diagnosing, for fresh log evidence
      (0 to 3600).
    type: int
    default: 10
  diagnose:
    description:
      - Options of M(loopbreaker.notion.diagnose) for every diagnosis of the climb.
      - C(endpoints), C(port), C(resolve), C(ca_bundle), C(timeout), C(log_window_minutes), C(proxy), C(no_proxy),
        C(network).
    type: dict
    default: {}
  app_data_scopes:
    description: Scopes of the V(app_data) rung (the V(sessions) rung clears C(cookies)).
    type: list
    elements: str
    default: [cache, service_workers, storage]
    choices: [all, cache, service_workers, storage, cookies]
  proxy_mode:
    description: Mode of the V(proxy) rung.
    type: str
    default: bypass
    choices: [direct, bypass]
  proxy_bypass_hosts:
    description: Hosts the V(proxy) rung exempts; empty = Notion's hosts.
    type: list
    elements: str
    default: []
  firewall_conflicts:
    description: What the V(firewall) rung does with block rules naming Notion.exe.
    type: str
    default: disable
    choices: [remove, disable, report]
  browser_stop:
    description:
      - Whether the V(browser_data) rung ends a user's running browser first (gracefully, then forced), as
        M(loopbreaker.notion.browser_data)'s O(loopbreaker.notion.browser_data#module:stop_browser). Without it
        a running browser's profiles are skipped and reported, never half-edited.
    type: bool
    default: false
  app_installer:
    description: Installer of the V(reinstall) rung; without it that rung is skipped.
    type: str
  app_checksum:
    description: SHA-256 of O(app_installer).
    type: str
  profiles_root:
    description: macOS/Linux only; where the home directories are.
    type: path
  state_dir:
    description: macOS/Linux only; the root-only directory for trusted records.
    type: path
attributes:
  check_mode:
    support: full
    description: Diagnoses for real (read-only), then runs the chosen rung in check mode and stops with the climb it
      would make.
  diff_mode:
    support: full
    description: The diffs of the rung modules, in order.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS and Linux through each module's native implementation.
notes:
  - Runs on the controller as an action plugin; there is no module to run on the host by itself.
seealso:
  - module: loopbreaker.notion.diagnose
  - module: loopbreaker.notion.incident
"""

EXAMPLES = r"""
- name: Fix the loop for a ticket, climbing at most two rungs
  loopbreaker.notion.ladder:
    incident: INC0042
    max_steps: 2
    settle_seconds: 5
  register: climb

- name: What it did
  ansible.builtin.debug:
    msg: "{{ climb.before.codes }} -> {{ climb.steps | map(attribute='summary') | list }} -> {{ climb.after.verdict }}"
"""

RETURN = r"""
check_mode:
  description: Whether the run was in check mode.
  returned: success
  type: bool
incident:
  description: The incident id, or null.
  returned: success
  type: str
before:
  description: The first diagnosis, condensed (C(verdict), C(codes), C(users) with each user's verdict and codes).
  returned: success
  type: dict
after:
  description: The last diagnosis, condensed like RV(before) (the first one when nothing was re-diagnosed).
  returned: success
  type: dict
steps:
  description:
    - One entry per step. A step that applies nothing has C(rung) null and C(reason), C(summary), C(notes).
    - Otherwise C(rung), C(reason), C(climb) (the rungs it would go through), C(users), C(changed),
      C(summary) (C(<rung> -> healthy) or, in check mode, C(<rung> (would apply; climb ...))), C(after)
      (the re-diagnosis, condensed; null in check mode), C(module) (the module that applied it),
      C(result) (that module's own result), C(relaunch) (the M(loopbreaker.notion.app) result of the
      relaunch, when there was one) and C(incident_result) (the M(loopbreaker.notion.incident) result).
  returned: success
  type: list
  elements: dict
stopped_at:
  description: The last rung applied, or null.
  returned: success
  type: str
manual_actions:
  description: What is left to a person, from the last diagnosis.
  returned: success
  type: list
  elements: str
record:
  description: The incident's record on the host after the run (null without an incident).
  returned: success
  type: dict
diagnosis:
  description: The full results of M(loopbreaker.notion.diagnose), C(before) (the first) and C(after) (the last
    re-diagnosis, or null).
  returned: success
  type: dict
"""

from ansible_collections.loopbreaker.notion.plugins.module_utils import _ladder
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def main() -> None:
    # The spec is the action's, so a direct run refuses bad input as the action would; it never climbs here.
    module = new_module(_ladder.ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg='loopbreaker.notion.ladder runs on the controller as an action plugin, not on the host')


if __name__ == '__main__':
    main()
