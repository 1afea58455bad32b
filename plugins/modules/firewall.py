#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: Let every Notion desktop install through the host firewall, and undo it
description:
  - The "pages never sync" rung of the "Cannot Connect to Workspace" runbook, the same as "Allow an app
    through firewall" in Windows Security, done for every Notion install of a host at once.
  - On Windows (Windows Defender Firewall) it finds each user's C(%LOCALAPPDATA%\Programs\Notion\Notion.exe)
    (the folder read from the user's own hive, logged-off users too), the machine-wide installs
    C(C:\Program Files\Notion\Notion.exe) and its Program Files (x86) twin, the MSIX Notion (package
    family C(com.notion.app.desktop.notion_87smfmv0eebam), its C(Notion.exe) looked for in the package's
    folder under C(C:\Program Files\WindowsApps), whose name carries the version; a package registered from
    any other folder is a developer-mode registration and gets no rule), and O(extra_programs); then
    ensures one allow rule per program and requested direction. Each rule is named
    C(loopbreaker.notion-<8 hex digits of the path's hash>-in) (or C(-out)) and displayed as
    "Notion (loopbreaker.notion) - <user> - inbound" (or outbound), with the program path in its description.
    A rule of that name with other settings is corrected in place, never duplicated.
  - Enabled block rules whose program is one of these Notion.exe files, for a requested direction and a
    requested profile, are conflicts. Block rules win over allow rules in Windows Defender Firewall, so by
    default they are disabled (O(conflicts)). Each changed block rule is first copied, as it was found and
    complete (protocol, local and remote ports and addresses, service, interface types and interfaces, edge
    traversal, profiles, description, group, enabled, action, direction, program), into
    C(HKLM\SOFTWARE\loopbreaker\notion\firewall) (value C(record)), so O(state=restored) can put it back
    exactly.
  - A block rule set by Group Policy or MDM (Intune) cannot be changed on the host (a local change only adds a
    local copy while the policy rule keeps applying), so it is never touched; it is listed in RV(conflicts)
    with handling C(not_locally_changeable) and its C(store), and RV(manual_actions) says which policy to change.
  - Where a policy sets "apply local firewall rules" to no (C(AllowLocalPolicyMerge) 0) for a profile, no local
    rule takes effect there, so the allow rules leave that profile out (none is added when no requested profile
    takes local rules), and RV(manual_actions) asks for the allow rule in the policy instead.
  - Rules of ours whose program is no longer found (uninstalled, or an O(extra_programs) entry no longer
    given, or an MSIX version no longer installed, even if its folder is still on disk), or whose direction is
    no longer requested, are removed. Rules of ours for programs this run does
    not cover (users left out with O(users) or O(exclude_users)) are left alone.
  - On macOS the Application Firewall (C(socketfilterfw)) gets C(/Applications/Notion.app) and each
    C(~/Applications/Notion.app) added and unblocked. Every command it runs is declared in
    C(plugins/module_utils/_socketfilterfw.py). What it added or unblocked is recorded in
    C(/Library/Application Support/loopbreaker/firewall-record.json).
  - On Linux there is no Notion firewall integration; the module validates its arguments and returns
    RV(not_applicable=true) without changing anything.
  - On Windows hosts (PowerShell connections) the logic runs on the controller and the host only executes
    primitive operations through the collection's internal Windows bridge, in at most two calls (three when an
    MSIX Notion is installed; its folder is searched for C(Notion.exe) once it is known). Every firewall rule of
    the machine is read once per run, from the stores the firewall keeps them in, whatever their number.
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Windows targets - Windows 10 or 11 (or Server 2016+) with Windows PowerShell 5.1, reached over a
    PowerShell connection (C(ansible.builtin.winrm) with pywinrm, C(ansible.builtin.psrp) with pypsrp on the
    controller, or C(ansible.builtin.ssh) with C(ansible_shell_type=powershell)) as a member of
    Administrators. Nothing is installed on the host.
  - macOS targets - the Application Firewall's C(socketfilterfw), run as root.
  - Windows targets - Windows Defender Firewall with its C(NetSecurity) cmdlets.
options:
  state:
    description:
      - V(present) ensures the allow rules and handles conflicts.
      - V(absent) removes only rules this module created (name prefix C(loopbreaker.notion-)) for the covered
        programs, and rules of ours whose program is gone. Conflicting block rules are left as they are
        (listed with handling C(left)), and so is the record. On macOS it removes only the apps this module
        added.
      - V(restored) does what V(absent) does and puts the recorded block rules back exactly as they were found
        (re-created if removed, re-enabled if disabled), then deletes the record. With O(users) or
        O(exclude_users), only the recorded rules naming a covered program (or a program no longer found) are
        put back and the others stay recorded. On macOS it also blocks again the apps this module unblocked.
    type: str
    choices: [present, absent, restored]
    default: present
  directions:
    description:
      - Directions to allow. Windows only; the macOS Application Firewall only filters incoming connections.
      - Only block rules for these directions are conflicts.
    type: list
    elements: str
    choices: [inbound, outbound]
    default: [inbound, outbound]
  profiles:
    description:
      - Windows Defender Firewall profiles the allow rules apply to; the default is what "Allow an app through
        firewall" ticks for a home or public network. Windows only.
      - Only block rules applying to at least one of these profiles are conflicts.
    type: list
    elements: str
    choices: [domain, private, public]
    default: [private, public]
  conflicts:
    description:
      - What to do with an enabled block rule that names a covered Notion.exe (macOS, a blocked Notion.app).
      - V(remove) deletes it; V(disable) disables it (macOS, both unblock the app); V(report) changes nothing
        and lists it in RV(conflicts).
      - Removed and disabled rules are recorded first, as they were, for O(state=restored).
    type: str
    choices: [remove, disable, report]
    default: disable
  users:
    description:
      - Only these users' own Notion installs (profile names, case-insensitive). A name with no profile on the
        host fails the task before anything changes. Machine-wide installs and O(extra_programs) are always
        covered.
      - By default every user profile. An empty list fails (leave the option out for every user).
    type: list
    elements: str
  exclude_users:
    description: Every profile except these. Names absent from the host are ignored; an empty list excludes nobody.
    type: list
    elements: str
  extra_programs:
    description:
      - Other Notion installs to cover, as exact absolute paths without wildcards; on Windows to a C(.exe)
        (an install made with the installer's C(/D=) option, for example) on a local drive (not a UNC
        path), on macOS to an C(.app) bundle; no C(..) components.
      - A path that does not exist is reported in RV(notices), not an error.
      - Give them on every run; a rule of ours for a program that is not found is removed as stale.
    type: list
    elements: str
  profiles_root:
    description:
      - macOS and Linux only. The directory holding the home directories, searched for
        C(~/Applications/Notion.app). Defaults to C(/Users) on macOS and C(/home) on Linux.
      - Must be an absolute path to an existing directory. Rejected on Windows, where profiles come from
        ProfileList.
    type: path
attributes:
  check_mode:
    support: full
    description: Reports exactly which rules would be added, corrected, removed, disabled or restored; changes nothing.
  diff_mode:
    support: full
    description: The affected firewall rules (Windows) or application entries (macOS) before and after.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS natively; Linux reports not applicable.
notes:
  - Idempotent. A second O(state=present) run finds exactly one rule per program and direction and reports
    no change.
  - Windows' default policy already allows outbound traffic and blocks unsolicited inbound; the rules matter
    where outbound is blocked by policy or where a block rule names Notion.exe (then it is the block rule that
    must go, which is why conflicts are disabled by default).
  - Block rules that come from Group Policy or MDM cannot be changed on the host; they are reported (see
    RV(manual_actions)), never duplicated, and the run stays idempotent.
  - A rule program is matched as the firewall service reads it. The service expands only machine variables
    (C(%ProgramFiles%), C(%SystemRoot%)...), so a rule naming C(%LOCALAPPDATA%\Programs\Notion\Notion.exe)
    matches no program at all; it is left as it is and listed in RV(ineffective_rules) with what it would mean
    for each user (expanded from that user's own environment or folders, never the administrator's). Our own
    rules always name the literal path.
  - On macOS, a firewall managed by a configuration profile (MDM) refuses command-line changes; the task then
    fails with that message and the profile must allow Notion instead.
seealso:
  - module: loopbreaker.notion.app_data
"""

EXAMPLES = r"""
- name: Allow every user's Notion through the firewall, disabling block rules that name it
  loopbreaker.notion.firewall:

- name: Outbound only, on every profile, and only report conflicting block rules
  loopbreaker.notion.firewall:
    directions: [outbound]
    profiles: [domain, private, public]
    conflicts: report

- name: Cover a Notion installed to another folder too
  loopbreaker.notion.firewall:
    extra_programs:
      - 'D:\Apps\Notion\Notion.exe'

- name: Preview
  loopbreaker.notion.firewall:
  check_mode: true
  diff: true

- name: Remove our rules and put back the block rules we changed
  loopbreaker.notion.firewall:
    state: restored
"""

RETURN = r"""
platform:
  description: C(windows), C(darwin) or C(linux).
  returned: always
  type: str
  sample: windows
state:
  description: The state requested.
  returned: always
  type: str
  sample: present
not_applicable:
  description: True on Linux, where there is nothing to do; the message says why.
  returned: on Linux
  type: bool
  sample: true
programs:
  description:
    - Every Notion install found. On Windows each has C(path), C(user) (C(machine) for a machine-wide
      install not under a profile, and for the MSIX), C(sid), C(source) (C(profile), C(machine), C(msix) or
      C(extra)), C(covered)
      (false for users left out), C(rules) (ours for it, each with C(name), C(direction) and a C(status) of
      C(added), C(corrected), C(removed), C(unchanged), C(failed) or C(skipped)) and C(conflicts) (names of
      block rules naming it).
    - On macOS each has C(path), C(user), C(sid), C(source), C(covered), C(status_before) and C(status)
      (C(allowed), C(blocked) or C(not_listed)).
  returned: always
  type: list
  elements: dict
added:
  description:
    - Windows, rules created, each with C(name), C(display_name), C(direction), C(action), C(profiles),
      C(program), C(enabled), C(description), C(protocol), C(local_ports), C(remote_ports),
      C(local_addresses), C(remote_addresses), C(service), C(interface_types), C(interfaces),
      C(edge_traversal), C(grouping), C(store) (C(local), C(group_policy) or C(mdm)), C(user) and C(reason). macOS, apps added to the Application
      Firewall, each with C(program), C(user), C(reason), C(before), C(after) and the C(commands) run.
    - In check mode, what a real run would do (the same for the lists below).
  returned: always
  type: list
  elements: dict
corrected:
  description:
    - Rules of ours that existed with other settings and were updated in place, with C(fields) (each changed
      setting's C(before) and C(after)). On macOS, apps unblocked.
  returned: always
  type: list
  elements: dict
removed:
  description:
    - Rules removed, with C(reason) (C(program not found), C(MSIX package version no longer installed),
      C(direction not requested), C(state absent),
      C(state restored), or C(blocks <program>) for a conflict removed with O(conflicts=remove)).
      On macOS, apps removed.
  returned: always
  type: list
  elements: dict
disabled:
  description: Block rules disabled (Windows; always empty on macOS).
  returned: always
  type: list
  elements: dict
restored:
  description: Recorded block rules put back by O(state=restored) (macOS, apps blocked again).
  returned: always
  type: list
  elements: dict
conflicts:
  description:
    - Block rules naming a covered Notion.exe (macOS, blocked Notion apps), with C(user), C(matched_program)
      and C(handling) (C(disabled), C(removed), C(reported), C(not_locally_changeable) for a Group Policy or
      MDM rule, whose C(store) says which, C(left) with O(state=absent) or O(state=restored), or C(failed)).
  returned: always
  type: list
  elements: dict
record:
  description:
    - Windows, C(key), C(value) and the C(rules) (names) recorded for O(state=restored) after this run.
    - macOS, C(path) of the record file and the apps C(added) and C(unblocked) by this module.
  returned: on Windows and macOS
  type: dict
  sample: {key: 'HKLM\SOFTWARE\loopbreaker\notion\firewall', value: record, rules: ['{0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D}']}
users_without_notion:
  description: Covered users with no Notion install of their own.
  returned: on Windows and macOS
  type: list
  elements: str
firewall:
  description: macOS, the Application Firewall's C(state) (0 off, 1 on, 2 blocking all incoming), C(enabled) and C(block_all).
  returned: on macOS
  type: dict
  sample: {state: 1, enabled: true, block_all: false}
local_rules_apply:
  description: Windows, per profile, whether local firewall rules take effect (false where Group Policy or MDM
    sets "apply local firewall rules" to no).
  returned: on Windows
  type: dict
  sample: {domain: true, private: true, public: false}
manual_actions:
  description: Windows, what only the owner of a policy can do (a Group Policy or MDM block rule to change, an
    allow rule that must come from the policy); repeated on every run until done.
  returned: on Windows and Linux
  type: list
  elements: str
ineffective_rules:
  description: Windows, rules naming a covered user's Notion.exe only through per-user variables, which the
    firewall service does not expand, so they match nothing; each as in RV(added) with C(expanded) (C(user),
    C(path)).
  returned: on Windows and Linux
  type: list
  elements: dict
notices:
  description:
    - Things worth knowing that are not failures (an extra program not found, a rule kept because its
      profile could not be read, the macOS firewall off).
  returned: always
  type: list
  elements: str
"""

import os
import platform
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.loopbreaker.notion.plugins.module_utils import _firewall, _firewall_darwin
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


class LocalTools:
    """socketfilterfw and the record file on this macOS host."""

    record_path = _firewall_darwin.DARWIN_RECORD

    def __init__(self, module: AnsibleModule) -> None:
        self._module = module

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = self._module.run_command(argv)
        return rc, out, err

    def read_record(self) -> str | None:
        try:
            with open(self.record_path, encoding='utf-8') as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_record(self, text: str) -> None:
        os.makedirs(os.path.dirname(self.record_path), mode=0o755, exist_ok=True)
        partial = self.record_path + '.partial'
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w', encoding='utf-8') as handle:
            handle.write(text)
        os.replace(partial, self.record_path)

    def delete_record(self) -> None:
        try:
            os.unlink(self.record_path)
        except FileNotFoundError:
            pass


def run_native(module: AnsibleModule) -> dict[str, t.Any]:
    system = platform.system()
    if system.lower() == 'linux':
        if module.params['profiles_root']:
            native_context(system, module.params['profiles_root'], os.path.isdir)
        return _firewall.not_applicable(module.params)
    layout, host = native_context(system, module.params['profiles_root'], os.path.isdir)
    return _firewall_darwin.run(host, layout, module.params, check_mode=module.check_mode, tools=LocalTools(module))


def main() -> None:
    module = new_module(_firewall.ARGUMENT_SPEC, mutually_exclusive=_firewall.MUTUALLY_EXCLUSIVE,
                        supports_check_mode=True)
    succeeded, result = native_outcome(lambda: run_native(module), diff=module._diff)
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()
