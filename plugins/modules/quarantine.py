#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: quarantine
short_description: List, restore or purge what the Notion remediation modules moved aside
description:
  - Every rung of this collection that removes user data moves it into a per-user quarantine entry
    instead (see M(loopbreaker.notion.app_data)). This module reads those entries back.
  - V(listed) returns every entry of the chosen users with its items and whether each is still held.
  - V(restored) moves the items of entry O(id) back where they came from, for every chosen user who
    has that entry. If Notion has recreated a path since, the restore refuses and changes nothing,
    unless O(force) is set; then the recreated data is first moved into a new quarantine entry, so
    nothing is lost either way. The restored entry is kept as a record marked C(restored).
  - V(purged) deletes entries for good, by O(id) or when older than O(older_than).
  - A manifest this version cannot read is reported under RV(unreadable) and never touched.
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Windows targets - Windows 10 or 11 (or Server 2016+) with Windows PowerShell 5.1, reached over a
    PowerShell connection (C(ansible.builtin.winrm) with pywinrm, C(ansible.builtin.psrp) with pypsrp on the
    controller, or C(ansible.builtin.ssh) with C(ansible_shell_type=powershell)) as a member of
    Administrators. Nothing is installed on the host.
  - macOS and Linux targets - a Python that ansible-core supports on targets, run as root (C(become)) to reach every user's home.
options:
  state:
    description: What to do with the quarantine.
    type: str
    choices: [listed, restored, purged]
    default: listed
  id:
    description:
      - Entry id, as returned by RV(loopbreaker.notion.app_data#module:quarantine_id). Required with
        V(restored); with V(purged), either O(id) or O(older_than). Refused with V(listed).
    type: str
  older_than:
    description:
      - With V(purged) only, entries created longer ago than this, e.g. C(30d), C(12h), C(90m), C(2w),
        C(45s); at most C(36500d).
    type: str
  force:
    description:
      - With V(restored) only, move data Notion has recreated into a new quarantine entry, then restore.
    type: bool
    default: false
  stop_app:
    description: With V(restored), stop the users' Notion processes first; with V(false) a running Notion fails the task.
    type: bool
    default: true
  users:
    description:
      - Only these users; a name with no profile, or an empty list, fails the task.
      - On Windows a user is a local, domain or Entra ID (C(S-1-12-1-)) account, named by profile name or account
        (C(CONTOSO\\alice), C(AzureAD\\JaneDoe)); a name two accounts share must be given as the account. Broken
        profiles (a C(.bak) key, a temporary or incomplete profile) are never users; see RV(skipped_profiles). Only the
        chosen users' hives are loaded.
    type: list
    elements: str
  exclude_users:
    description: Every user except these; an empty list excludes nobody.
    type: list
    elements: str
  state_dir:
    description:
      - macOS and Linux only. Where the trusted quarantine records and the host lock are kept. It must
        be reachable from C(/) through directories that only root can change; it is created C(0700).
      - On Windows the records are kept in C(HKLM\\SOFTWARE\\loopbreaker\\notion\\records), which only
        administrators can write.
      - Defaults to C(/var/lib/loopbreaker/notion); on macOS C(/private/var/lib/loopbreaker/notion), because
        C(/var) is a link there and no link is followed on the way to the state directory.
    type: path
  profiles_root:
    description: macOS and Linux only, as in M(loopbreaker.notion.app_data).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports what would be restored, displaced or purged; changes nothing.
  diff_mode:
    support: full
    description: Entries before and after.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the collection's bridge; macOS and Linux natively.
notes:
  - Idempotent. Restoring an entry already restored, or purging what is gone, reports no change.
seealso:
  - module: loopbreaker.notion.app_data
"""

EXAMPLES = r"""
- name: What is held in quarantine
  loopbreaker.notion.quarantine:
  register: held

- name: Put back what the last clear moved aside
  loopbreaker.notion.quarantine:
    state: restored
    id: "{{ cleared.quarantine_id }}"

- name: Restore even though Notion has rebuilt its cache since (the rebuilt cache is kept aside)
  loopbreaker.notion.quarantine:
    state: restored
    id: 20261129T141500Z-1a2b3c
    force: true

- name: Drop entries older than a month
  loopbreaker.notion.quarantine:
    state: purged
    older_than: 30d
"""

RETURN = r"""
skipped_profiles:
  description:
    - Windows ProfileList entries that are no usable profile and were left alone, each with the reason
      (a C(<SID>.bak) key kept by Windows after it gave the user a temporary profile, a temporary profile,
      one without C(ProfileImagePath), profile folder or C(NTUSER.DAT)). Empty on macOS and Linux.
  returned: always
  type: list
  elements: dict
  sample: [{user: bob, sid: S-1-5-21-1-2-3-1002, key: S-1-5-21-1-2-3-1002.bak, profile_path: 'C:\\Users\\bob',
            reason: 'a backup of the profile kept by Windows (.bak): ...'}]
state:
  description: The requested state.
  returned: always
  type: str
entries:
  description: Entries of the chosen users as found before this task acted.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Entry id.
      type: str
      returned: always
    user:
      description: Profile name.
      type: str
      returned: always
    created:
      description: UTC creation time.
      type: str
      returned: always
    module:
      description: Module that created it.
      type: str
      returned: always
    reason:
      description: Why it was created.
      type: str
      returned: always
    path:
      description: Entry directory.
      type: str
      returned: always
    restored:
      description: UTC time it was restored, null while held.
      type: str
      returned: always
    bytes:
      description: Bytes held.
      type: int
      returned: always
    items:
      description: "Per item: original_path, scope, type, bytes, files, in_quarantine, original_exists."
      type: list
      elements: dict
      returned: always
unreadable:
  description: Manifests that could not be read, with the reason; never modified.
  returned: always
  type: list
  elements: dict
restored:
  description:
    - With V(restored), per item the entry id, user, path, action (C(restored) or C(not_in_quarantine))
      and displaced_to (id of the entry now holding data Notion had recreated, or null).
  returned: when state is restored
  type: list
  elements: dict
purged:
  description: With V(purged), id, user, path and bytes of each entry deleted.
  returned: when state is purged
  type: list
  elements: dict
"""

import datetime
import os
import platform
import secrets

from ansible_collections.loopbreaker.notion.plugins.module_utils import _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def main() -> None:
    module = new_module(_quarantine_state.ARGUMENT_SPEC,
                        mutually_exclusive=_quarantine_state.MUTUALLY_EXCLUSIVE,
                        required_if=_quarantine_state.REQUIRED_IF, supports_check_mode=True)

    def act() -> dict:
        layout, host = native_context(platform.system(), module.params['profiles_root'], os.path.isdir,
                                      state_dir=module.params['state_dir'], exclusive=not module.check_mode)
        return _quarantine_state.run(host, layout, module.params, check_mode=module.check_mode,
                                     now=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
                                     entry_token=secrets.token_hex(3))

    succeeded, result = native_outcome(act, diff=module._diff)
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()
