#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: app
short_description: Stop, restart, uninstall, install or reinstall the Notion desktop app, per user
description:
  - The last rungs of the "Cannot Connect to Workspace" runbook. V(restarted) is "end Notion in Task
    Manager and reopen it" for a white screen after clearing the cache; V(reinstalled) is "uninstall,
    install the latest build" for a loop that returns at every launch.
  - Discovery runs in every state, check mode included, and is returned as RV(facts) - per user the
    Notion uninstall entry (C(Notion <version>), never Notion Calendar), the executable with its version
    and signature, running processes and user data; machine-wide copies; MSIX packages.
  - Notion for Windows installs per user under C(%LOCALAPPDATA%\\Programs\\Notion), and its uninstaller
    run as an administrator against another user's install exits 0 and deletes nothing. So every
    uninstall and install runs as the owning user, in their interactive session, through a one-shot
    scheduled task with the user as principal, waited on with O(timeout) and deleted afterwards. A user
    who is not logged on is reported C(pending) with the reason instead.
  - An installer is verified before anything is removed - the SHA-256 O(checksum) when given, and on
    Windows always the Authenticode signature, its signer O(signer) and issuer O(signer_issuers). A mismatch
    refuses the task (a local installer) or that user's whole sequence (a downloaded one), with nothing changed.
  - V(absent) keeps user data unless O(remove_user_data), which moves it into the same per-user
    quarantine as M(loopbreaker.notion.app_data).
  - On macOS the bundles are O(app_path) (C(/Applications/Notion.app)) and each chosen user's
    C(~/Applications/Notion.app). A new bundle comes from a C(.dmg) or C(.zip) - unpacked into a private
    work directory and verified there (the SHA-256 O(checksum), C(codesign --verify --deep --strict), and
    the signing team O(team_id)) before any Notion process is stopped or any bundle removed - or from
    Homebrew's C(notion) cask, run as the owner of the Homebrew installation. V(restarted) relaunches
    Notion with C(launchctl asuser) in the session of a user logged in at the console.
  - Linux has no official Notion app; the module reports RV(not_applicable).
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Windows targets - Windows 10 or 11 (or Server 2016+) with Windows PowerShell 5.1, reached over a
    PowerShell connection (C(ansible.builtin.winrm) with pywinrm, C(ansible.builtin.psrp) with pypsrp on the
    controller, or C(ansible.builtin.ssh) with C(ansible_shell_type=powershell)) as a member of
    Administrators. Nothing is installed on the host.
  - Windows targets - the users to (re)install for logged on (their installs run in their session); the
    installer a local path or an https URL the host can download.
  - macOS targets - C(dscl), C(codesign), C(hdiutil), C(ditto) and C(launchctl) (part of macOS), run as root;
    Homebrew only with O(use_homebrew).
options:
  state:
    description:
      - V(stopped) ends the users' Notion processes (renderer and GPU helpers included) and waits until
        they are gone. V(restarted) does that, then starts Notion again in each logged-on user's session.
        By default both act on the users running Notion.
      - V(absent) uninstalls in each user's context and removes the leftover program folder.
      - V(present) installs O(installer) where Notion is missing or at another version; with the same
        version installed nothing changes.
      - V(reinstalled) stops, uninstalls, cleans, installs, and checks the new executable is signed.
    type: str
    required: true
    choices: [present, absent, reinstalled, restarted, stopped]
  installer:
    description:
      - A path on the target, or an C(http(s)) URL the target downloads (to
        C(C:\\ProgramData\\loopbreaker\\installers) on Windows, into the private work directory on
        macOS). Required for V(present) and V(reinstalled) unless O(use_homebrew).
      - On Windows the download folder is created owned by Administrators with a protected ACL
        (Administrators and SYSTEM full control, Users read) and checked before every use; if it, or
        C(C:\\ProgramData\\loopbreaker), already exists owned by another account or writable by one (a
        standard user may create folders in C(C:\\ProgramData)), the run is refused for every user and
        nothing is downloaded or run. Remove the folder and run again.
      - The installer is verified (O(checksum), O(signer)) before each user's sequence and again by the
        step that runs it, which holds it open against writes until it has finished.
      - On Windows Notion's per-user setup C(.exe); on macOS a C(.dmg) or C(.zip) holding C(Notion.app).
      - A path must be absolute, without C(..) components, and on Windows on a local drive (not a UNC
        share, which the per-user task cannot reach); a URL must be C(http) or C(https) with a host.
        Credentials in a URL (C(https://user:password@host/...)) are used for the download and
        shown as C(********) in every result.
    type: str
  checksum:
    description: SHA-256 the installer must have (64 hex digits).
    type: str
  signer:
    description:
      - The Authenticode signer the installer and the installed executable must have on Windows, that is the subject
        organisation (C(O=)) of the signing certificate, compared without regard to case, runs of whitespace
        and trailing punctuation (C(Notion Labs, Inc) and C(Notion Labs, Inc.) are the same name; C(Notion Labs
        Inc) is not). The signature must also be C(Valid), the certificate must carry the code-signing EKU
        (C(1.3.6.1.5.5.7.3.3)), and its issuer must be one of O(signer_issuers).
      - The default is what Notion's installers are signed as, through Azure Trusted Signing
        (see C(docs/signatures.md) in the collection).
    type: str
    default: Notion Labs, Inc.
  signer_issuers:
    description:
      - Common names of the certificate authorities that may have issued the signer's certificate, with C(*)
        wildcards, case-insensitive. The default is Azure Trusted Signing's issuing CAs, which Notion signs
        through. Set it together with O(signer) for an installer signed another way.
    type: list
    elements: str
    default: ['Microsoft ID Verified CS EOC CA *', 'Microsoft ID Verified CS AOC CA *']
  version:
    description:
      - The version the installer brings, for the idempotency of V(present). By default read from a
        local installer's file version, or from Notion's release file name (C(Notion Setup 7.35.0.exe))
        in a URL. When unknown, V(present) leaves an existing install alone.
      - With O(package_format=msix) a local package's version is read from its manifest (O(version), when
        given, must be the same, three or four parts); for a URL it is O(version).
    type: str
  remove_user_data:
    description: With V(absent), also move each user's Notion data into their quarantine.
    type: bool
    default: false
  users:
    description:
      - Only these users; a name with no profile, or an empty list, fails before anything changes.
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
  timeout:
    description: Seconds (1 to 86400) to wait for each installer, uninstaller or download (on macOS, the download).
    type: int
    default: 600
  stop_timeout:
    description: Seconds (1 to 3600) to wait for Notion processes to exit.
    type: int
    default: 30
  profiles_root:
    description:
      - macOS only. Where home directories are (default C(/Users)); a user is an account with a home there,
        for C(~/Applications/Notion.app), their processes and their data.
    type: path
  state_dir:
    description:
      - macOS only. Where the trusted record of quarantined user data (O(remove_user_data)) and the host
        lock are kept; reachable from C(/) only through directories root alone can change, created C(0700).
        Defaults to C(/private/var/lib/loopbreaker/notion) (C(/var) is a link on macOS and no link is followed
        on the way to the state directory). On Windows records are kept in HKLM.
    type: path
  app_path:
    description:
      - macOS only. The machine-wide bundle, managed in every run whatever O(users) says; default
        C(/Applications/Notion.app).
    type: path
  team_id:
    description:
      - macOS only. The Apple Developer Team ID the new bundle must be signed by. By default Notion Labs'
        team, C(LBQJ96FQ8D).
    type: str
  use_homebrew:
    description:
      - macOS only. Install, remove or reinstall C(/Applications/Notion.app) through the C(notion) cask
        (C(brew fetch), then C(install), C(reinstall) or C(uninstall) C(--cask)) instead of O(installer).
        Homebrew checks the download's checksum before anything is replaced; the team is checked after.
    type: bool
    default: false
  package_format:
    description:
      - Windows only. V(nsis) (the default when omitted) runs Notion's per-user setup C(.exe) as each user.
      - V(msix) provisions Notion's official MSIX (O(installer), an C(.msix)/C(.appx) path or URL such as
        C(https://www.notion.com/desktop/windows-msix/download); not a bundle) for all users with
        C(Add-AppxProvisionedPackage -Online -SkipLicense). It needs no user session - logged-off users get it
        at their next logon - and replaces the C(pending) state of per-user installs.
      - The package is verified before anything changes - O(checksum) (required), a valid signature, and its
        family name (identity and publisher, see O(package_family)) - and again by the step that provisions
        it, which holds it open against writes until provisioning ends.
      - Following Notion's migration rule, each logged-on user's per-user copy is stopped and uninstalled as
        that user before the package is provisioned, in one sequence (a failed uninstall provisions nothing).
        A logged-off user's per-user copy is left as it is (its uninstaller only acts in their session) and
        the user is reported C(pending) until a run while they are logged on removes it. No user data is
        touched either way; the MSIX reads C(%APPDATA%\\Notion). O(users) and O(exclude_users) choose whose
        per-user copies are migrated; the package itself is always provisioned for all users.
      - Idempotent - a provisioned package of the wanted version (from the package, or O(version) for a URL)
        and no per-user copy of a logged-on user is no change. An older version than one provisioned or
        installed is refused before anything changes, as Windows would refuse it. V(reinstalled) does what
        V(present) does - reinstalling a package in place would remove its users' package data.
      - With V(absent), deprovisions the family (C(Remove-AppxProvisionedPackage -Online)) so later logons no
        longer get it; users who have it registered keep it and its package data (removing it for a user
        deletes C(Packages\\<family>), virtualised AppData included), and are listed in RV(manual_actions).
        Per-user copies are not touched; O(remove_user_data) does not apply.
    type: str
    choices: [nsis, msix]
  package_family:
    description:
      - With O(package_format=msix), the package family name the package must have,
        C(<identity name>_<publisher id>); the publisher id is a hash of the manifest's publisher, so this
        pins both. By default Notion's, C(com.notion.app.desktop.notion_87smfmv0eebam) (publisher
        C(CN="Notion Labs, Inc.", O="Notion Labs, Inc.", L=San Francisco, S=California, C=US)).
    type: str
attributes:
  check_mode:
    support: full
    description: Discovery and the per-user plan (operations that would run); nothing changes, nothing is downloaded.
  diff_mode:
    support: full
    description: Version before and after per user.
  platform:
    platforms: [windows, darwin]
    support: full
    description: Windows through the bridge; macOS natively; Linux reports not applicable.
notes:
  - Idempotent for V(present), V(absent) and V(stopped); V(restarted) and V(reinstalled) always act, as their names say.
seealso:
  - module: loopbreaker.notion.app_data
  - module: loopbreaker.notion.quarantine
"""

EXAMPLES = r"""
- name: White screen after clearing the cache - restart Notion for the users running it
  loopbreaker.notion.app:
    state: restarted

- name: The loop returns at every launch - reinstall the latest build, verified
  loopbreaker.notion.app:
    state: reinstalled
    installer: https://desktop-release.notion-static.com/Notion%20Setup%207.35.0.exe
    checksum: "{{ notion_installer_sha256 }}"

- name: Make sure Notion is installed for everyone from a share copied to the host
  loopbreaker.notion.app:
    state: present
    installer: C:\Installers\Notion Setup 7.35.0.exe

- name: On a Mac, replace Notion.app from a disk image copied to the host
  loopbreaker.notion.app:
    state: reinstalled
    installer: /Library/Caches/installers/Notion-4.3.0.dmg
    checksum: "{{ notion_dmg_sha256 }}"

- name: Uninstall for one user and set their data aside
  loopbreaker.notion.app:
    state: absent
    users: [alice]
    remove_user_data: true
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
installer_version:
  description: The version the installer brings, when known.
  returned: always
  type: str
bundles:
  description: >-
    macOS - one entry per Notion.app managed, with C(path), C(scope) (C(machine) or C(user)), C(user),
    C(status), C(reason), C(version_before), C(version_after) and C(operations).
  returned: on macOS
  type: list
  elements: dict
users:
  description: One entry per user concerned.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: Profile name.
      type: str
      returned: always
    sid:
      description: SID (Windows).
      type: str
      returned: always
    status:
      description: >-
        C(installed), C(upgraded), C(downgraded), C(reinstalled), C(removed), C(stopped), C(restarted),
        C(unchanged), C(pending) (the user is not logged on) or C(failed); with O(package_format=msix),
        C(migrated) (per-user copy uninstalled, the MSIX registers at their next logon), C(provisioned)
        (the MSIX registers at their next logon), C(unchanged), C(pending) or C(failed).
      type: str
      returned: always
    reason:
      description: Why pending, unchanged or failed.
      type: str
      returned: always
    version_before:
      description: Installed version before.
      type: str
      returned: always
    version_after:
      description: Installed version after (or as planned in check mode).
      type: str
      returned: always
    processes_stopped:
      description: Process ids stopped.
      type: list
      elements: int
      returned: always
    processes_not_stopped:
      description:
        - On Windows, processes left running because the process behind the id was no longer the one the
          probe listed (another image name, owner or start time; Windows reuses process ids), each with pid,
          name and reason. Only the listed process is ever stopped.
      type: list
      elements: dict
      returned: on Windows
    operations:
      description: Primitive operations run (planned in check mode).
      type: list
      elements: str
      returned: always
    quarantine_id:
      description: Quarantine entry holding removed user data.
      type: str
      returned: always
    uid:
      description: User id (macOS).
      type: int
      returned: on macOS
    logged_on:
      description: Whether the user has a console session (macOS).
      type: bool
      returned: on macOS
    relaunched:
      description: The bundle Notion was relaunched from (macOS V(restarted)).
      type: str
      returned: on macOS
facts:
  description: >-
    Discovery. Windows - per user install, executable, version, signature, processes and data (and
    C(error) when the user's hive or profile could not be read: that user is reported C(failed) in
    RV(users), whatever the state, except V(stopped)), with C(msix) - the user's MSIX packages and their
    install state; machine-wide installs; MSIX packages
    (C(packages) - registered, with C(user_sids), C(user_states) and C(publisher); C(provisioned) - staged for
    all users). macOS - bundles with version and signing team, users with their session, processes and data,
    Homebrew.
  returned: always
  type: dict
package_format:
  description: C(msix) when the run provisioned (or would provision) an MSIX.
  returned: with O(package_format=msix)
  type: str
package:
  description: >-
    The MSIX for all users - C(family_name), C(version), C(status) (C(provisioned), C(deprovisioned),
    C(unchanged) or C(failed)), C(provisioned_before) (versions of the family provisioned before) and C(operations).
  returned: with O(package_format=msix)
  type: dict
manual_actions:
  description: What this module leaves to a person (MSIX packages, machine-wide installs).
  returned: always
  type: list
  elements: str
not_applicable:
  description: True on Linux, where Notion has no official app.
  returned: on Linux
  type: bool
"""

import datetime
import os
import platform
import secrets

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app, _macos_app
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def main() -> None:
    module = new_module(_app.ARGUMENT_SPEC, mutually_exclusive=_app.MUTUALLY_EXCLUSIVE,
                        required_if=_app.REQUIRED_IF, supports_check_mode=True)
    system = platform.system().lower()
    if system != 'darwin':
        try:
            _app.validate(module.params, platform=system)
        except RequestError as error:
            module.fail_json(msg=str(error), changed=False)
        module.exit_json(changed=False, not_applicable=True, platform=system, state=module.params['state'],
                         users=[], facts={}, manual_actions=[],
                         msg='Notion has no official desktop app for this platform; nothing to manage')

    def act() -> dict:
        _app.validate(module.params, platform=system)
        return _macos_app.run(module.params, runner=module.run_command, check_mode=module.check_mode,
                              now=datetime.datetime.now(datetime.timezone.utc), token=secrets.token_hex(3),
                              path_exists=os.path.exists)

    succeeded, result = native_outcome(act, diff=module._diff, errors=(RequestError, _macos_app.MacAppError))
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()
