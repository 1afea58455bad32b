#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

# Documentation only: the module is plugins/modules/win_bridge.ps1.

DOCUMENTATION = r"""
module: win_bridge
short_description: "Internal: run primitive operations on a Windows host for loopbreaker.notion modules"
description:
  - Internal to the collection and subject to change without notice. The collection's action plugins call
    it on Windows hosts; playbooks should use the public modules instead.
  - Runs a batch of primitive operations (enumerate profiles, stat/read/write/move/remove paths, read and
    write registry values and list subkeys in HKLM or in a user's hive, list and stop processes,
    list/set/remove firewall rules, identify and verify files, download files, run or start a program as a
    logged-on user, list MSIX packages, keep records in an administrator-only store, make an
    administrator-only folder) and returns one result per operation. It has no knowledge of Notion; callers send paths, names
    and values and interpret the data themselves.
  - The vocabulary of operations and their parameters is fixed in
    C(plugins/module_utils/_bridge_vocabulary.py); a contract test keeps this module and its Python twin
    (the simulated Windows host used in tests) identical to it.
  - Operations run in order. An operation that fails (status C(error)) marks every later operation with
    the same C(group) as C(skipped); operations of other groups, and operations with no group,
    still run. The module itself only fails for malformed input (an unknown operation, an unknown or missing
    parameter), or when it cannot take the host-wide lock, before anything runs.
  - A batch with mutating operations (not in check mode) holds the named mutex C(Global\loopbreaker.notion)
    (ACL Administrators and SYSTEM) while it runs. A second run waits up to 60 s and then fails the whole call
    with C(Another run of loopbreaker.notion holds the host-wide lock ...; gave up after 60 s. Nothing was
    changed.); a mutex of that name created by a non-administrator is refused the same way. A lock abandoned
    by a run that died is taken over with a warning.
  - An operation naming a C(sid) whose hive is not loaded (the user is logged off) loads that
    user's C(NTUSER.DAT) under C(HKEY_USERS\loopbreaker_<sid>) and reuses it for the rest of the batch;
    every hive loaded by the batch is unloaded at the end, whether operations failed or not.
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Windows PowerShell 5.1 on the target, run as a member of Administrators. Called only by this collection's
    action plugins.
options:
  operations:
    description:
      - The batch, run in order. Each item is a dict with the key C(op) naming the operation, the
        operation's own parameters (see the notes) and optionally C(group) and C(each_profile).
      - "C(op): the operation name, one of the operations listed in the notes."
      - "C(group): any string. When an operation of a group fails, the later operations of that group are
        skipped."
      - "C(each_profile): when true, the operation runs once per profile returned by the batch's earlier
        C(get_profiles) operation (which must come before it). In every string parameter, also inside lists
        and dicts, C({ProfilePath}), C({Sid}) and C({<shell folder value name>}) (for example
        C({Local AppData})) are replaced with that profile's values. Its data is then
        C({by_sid: {<sid>: {status, data, error}}}), where a per-profile failure only marks that profile's
        entry C(error) and the operation itself stays C(ok)."
      - Unknown operations, unknown parameters and missing required parameters fail the module before any
        operation runs.
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    support: partial
    description: Read-only operations run; every mutating operation is refused with status C(error) and
      the message C(refused in check mode). The action plugins never send mutating operations in check mode.
  diff_mode:
    support: none
    description: Returns no diff; the action plugins build diffs from the data.
  platform:
    platforms: windows
    support: full
    description: Windows hosts only (a PowerShell module).
notes:
  - Requires administrator rights on the host (loading other users' hives, reading their processes and
    profiles, setting directory owners, managing firewall rules). Works on Windows PowerShell 5.1.
  - "WITHIN: C(stat_paths), C(read_files), C(write_file), C(ensure_private_dir), C(move_path) and C(remove_path)
    take an optional C(within) (normally the user's profile). A path outside it is refused. Every component
    strictly below within, up to the path's parent, is opened with C(FILE_FLAG_OPEN_REPARSE_POINT) (never
    followed), checked through that handle (any reparse point is refused with C(Refusing '<path>':
    '<component>' is a junction or symbolic link below '<within>'.)) and held open without
    C(FILE_SHARE_DELETE) while the operation runs, so it cannot be renamed or replaced by a junction between
    the check and the use. A held folder can still become a junction while it is empty, so each entry opened
    by name is also checked, from the final paths of the two handles, to be the entry of that name inside its
    held folder, and new files and renames are made relative to that folder's handle, never by its path.
    within itself may be reached through a junction (a relocated profile). Pattern
    walks never descend into a link; a link that is itself a match is reported (type C(junction) or
    C(symlink), 0 bytes), moved and removed as a link, never followed. Without within, a path below a
    profile folder of ProfileList is checked as if within were that folder (a relocated C(C:\\Users) or an
    FSLogix profile folder works); elsewhere no junction or link may be anywhere above the path."
  - A path the bridge may not open (an ACL without Administrators; a network share, which a WinRM network
    logon cannot reach without credential delegation) fails the reading operation with C(Access to the path
    ... is denied), never reads as absent."
  - The handle-based checks are in the collection's C# module_util C(SafePath)
    (C(plugins/module_utils/SafePath.cs)).
  - "Operations (parameters; optional ones in brackets; mutating operations marked *):"
  - "C(get_profiles) (shell_folders, [users], [exclude_users]): every subkey of
    C(HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList), logged-off users included. A real
    user is a C(S-1-5-21-) or C(S-1-12-1-) (Entra ID) SID with a ProfileImagePath, a profile folder and an
    C(NTUSER.DAT); other SIDs are C(special). A C(<SID>.bak) key, a temporary profile (State bit 0x0800 or a
    C(TEMP) folder) or an incomplete entry is listed in C(skipped) ({key, sid, username, profile_path,
    reason}) instead, never failing the call. users/exclude_users (profile or account names,
    case-insensitive) set C(selected); without them every real user is selected. Only a selected profile is
    read: its hive is loaded, read and unloaded at once (a failed unload is that profile's error), its shell
    folders (shell_folders maps value names of C(User Shell Folders) to their default path relative to the
    profile) expanded with its own C(environment) (machine variables, the profile's USERPROFILE, APPDATA,
    LOCALAPPDATA, HOMEDRIVE, HOMEPATH, then the hive's Environment and Volatile Environment); an unknown
    variable is that profile's error, never the administrator's value. Returns C({profiles: [{sid,
    username, account, profile_path, loaded, special, selected, folders, folder_source, environment,
    error}], skipped: [...]}); folder_source is C(registry), C(default) or C(not_read) (not selected).
    C(each_profile) operations run for the selected profiles only."
  - "C(stat_paths) (patterns, [within]): absolute paths with C(*) allowed in any segment. Returns C({entries:
    [{pattern, path, type, bytes, files, modified, owner_sid, links}]}); type is C(file), C(directory),
    C(junction) or C(symlink), bytes and files are recursive for a directory (0 for a link), modified is UTC
    ISO 8601, owner_sid the owner's SID and links the hard-link count. Patterns matching nothing add no entries."
  - "C(read_files) (patterns, [within], [max_bytes=1048576]): returns C({files: [{path, content, error}]}), the
    UTF-8 text of each matching file, read through a handle that does not follow links; a link, a file larger
    than max_bytes or one that is not UTF-8 has content null and error C(a junction or symbolic link),
    C(larger than <max_bytes> bytes) or C(not UTF-8 text)."
  - "C(write_file)* (path, content, [within]): writes UTF-8 without BOM to a new file beside the target, then
    renames it over the target; parent directories are created (with within: one by one, each checked). A link
    at the target is removed and replaced, never written through. Returns C({bytes})."
  - "C(ensure_private_dir)* (path, owner_sid, [within]): creates the directory and its parents, and makes its ACL
    grant Full Control only to owner_sid, Administrators and SYSTEM, inheritance from the parent disabled, owner
    set to owner_sid, read and written through a handle on the directory itself; a link there is refused.
    Returns C({created, acl_corrected})."
  - "C(move_path)* (source, destination, [within], [expect_type], [attributes]): renames the source through a
    handle opened on it without following links (what was checked is what moves); a missing source is
    reported, an existing destination is an error, another volume is an error. expect_type C(file) or
    C(directory): anything else (a link included) is refused, and a file must have one hard link. attributes
    C({owner_sid}): the moved item's owner is set, its explicit ACEs removed and its DACL inherited from its
    new parent, written with C(NtSetSecurityObject) through the same handle (nothing below it is touched).
    Returns C({moved, missing})."
  - "C(remove_path)* (path, [within]): deletes a file or a directory tree, each entry opened without following
    links and deleted through its own handle, so a link inside is removed, never walked into. Returns
    C({removed, missing})."
  - "C(list_processes) (names): processes whose image name (for example C(Notion.exe)) matches one of names,
    case-insensitive. Returns C({processes: [{pid, name, path, owner_sid, session_id, started}]}); started is
    the process's creation time in UTC (C(Win32_Process.CreationDate), round-trip format)."
  - "C(stop_processes)* (processes, [timeout_seconds=30]): each process is given as C(list_processes) returned
    it (C({pid, name, owner_sid, started})). Windows reuses process ids, so the bridge opens the process by id,
    and through that handle (which keeps the id from passing to another process) checks that its image name,
    owner SID and start time are still those; only then is it terminated. Any other process is left running
    and reported in not_stopped with the reason. Waits for the stopped ones to exit; any still running at the
    timeout make the operation fail. Returns C({stopped, already_gone, not_stopped: [{pid, name, reason}]})."
  - "C(read_registry) (key, [sid], [names]): key is a path below the hive root; no sid means HKLM, a sid
    means that user's hive. Returns C({exists, values: {<name>: {type, data}}}); types are C(REG_SZ),
    C(REG_EXPAND_SZ) (not expanded), C(REG_DWORD), C(REG_QWORD), C(REG_BINARY) (base64) and
    C(REG_MULTI_SZ) (list). Without names every value is returned."
  - "C(write_registry)* (key, values, [sid]): creates the key if needed and sets each value from
    C({type, data}), in the same encoding C(read_registry) returns. Returns C({created_key})."
  - "C(delete_registry_values)* (key, names, [sid]): returns C({deleted, missing})."
  - "C(list_firewall_rules) ([programs]): every Windows Defender Firewall rule of the local, Group Policy and
    MDM stores, read from the registry values the firewall keeps them in (the [MS-GPFAS] rule grammar) in one
    pass, optionally only those whose program matches one of programs (case-insensitive, C(*) wildcards,
    matched and returned as stored, never expanded). Returns C({rules: [{name, display_name, direction,
    action, profiles, program, enabled, description, protocol, local_ports, remote_ports, local_addresses,
    remote_addresses, service, interface_types, interfaces, edge_traversal, grouping, store}],
    local_rules_apply: {domain, private, public}}) with direction C(in)/C(out), action C(allow)/C(block),
    profiles a subset of C(domain), C(private), C(public), lists empty for any, store C(local),
    C(group_policy) or C(mdm), and local_rules_apply false where either policy sets C(AllowLocalPolicyMerge) 0."
  - "C(set_firewall_rule)* (name, display_name, direction, action, profiles, program, enabled, [description,
    protocol, local_ports, remote_ports, local_addresses, remote_addresses, service, interface_types,
    interfaces, edge_traversal, grouping]): creates the local rule with that unique name, or updates the
    existing local rule in place (re-created under the same name when its group changes); an optional field
    left out means any. Returns C({created, updated}); updated is false when nothing differed."
  - "C(remove_firewall_rule)* (name): removes the local rule of that name; returns C({removed, missing})."
  - Firewall rules are managed with the NetSecurity cmdlets, because only they expose a rule's unique
    name apart from its display name.
  - "C(list_registry_subkeys) (key, [sid], [names]): every direct subkey of key (HKLM without sid, else that
    user's hive, loaded if needed), ordered by lower-case name. Returns C({keys: [{name, values: {<name>:
    {type, data}}}]}), values encoded as C(read_registry) returns them (only the named ones when names is
    given). A missing key gives no subkeys; a subkey that cannot be opened is skipped with a warning."
  - "C(get_file_info) (paths): returns C({files: [{path, exists, bytes, version, sha256, signature: {status,
    signer, subject, issuer, ekus}}]}). version is the file's ProductVersion, else its FileVersion, trimmed
    (null without a version resource); sha256 is lower-case hex; status is the Authenticode status
    C(Get-AuthenticodeSignature) gives (C(Valid), C(NotSigned), C(HashMismatch), C(NotTrusted),
    C(UnknownError), ...), signer the C(O=) of the signing certificate's subject (else its C(CN=), else null),
    subject the whole subject, issuer the issuing CA's C(CN=) and ekus the certificate's enhanced key usage
    OIDs. A missing file has exists false and every other field null."
  - "C(download_file)* (url, destination, [timeout_seconds=300], [sha256], [signer]): http and https only, with
    TLS 1.2 enabled and the system proxy. Parents are created; the body goes to a temporary file beside
    destination which then replaces it, so a failed download leaves an earlier file untouched. With sha256
    and/or signer the temporary file is verified as C(verify_file) does first, and a refused download leaves
    nothing behind. Returns C({bytes, sha256}); an error is
    the exception message followed by the URL in brackets. The file gets no mark of the web and inherits its
    folder's ACL, so a program for C(run_as_user) must be saved where its user can read it."
  - "C(run_as_user)* (sid, executable, arguments, [timeout_seconds=600], [success_codes=[0]], [sha256],
    [signer]): runs the
    program as that user in their own interactive session through a one-shot scheduled task named
    C(loopbreaker.notion-<guid>) (registered through the Task Scheduler COM API with the user's SID as the
    principal, never a name, so renamed, unresolvable and Entra ID accounts work; logon type Interactive, run
    level Limited, priority 4 so the program runs at normal priority rather than Task Scheduler's below-normal
    default 7; working directory the program's folder), waits for it, and deletes the task whatever happened.
    Each argument is
    quoted by the C runtime's rules, except an NSIS C(/D=<dir>) or C(_?=<dir>) argument, which is moved last
    and left unquoted as NSIS requires. A program still running at the timeout is stopped and the operation
    fails, and so does an exit code outside success_codes. With sha256 and/or signer the program is opened
    sharing only reads (every folder on its path held too, no link allowed) and verified as C(verify_file)
    does before the task is registered, and stays so until the task has ended: nobody can replace it between
    the check and the run. Returns C({exit_code}), signed like a process exit code."
  - "C(verify_file) (path, [sha256], [signer]): fails unless the file exists, has that SHA-256 when sha256 is
    given and, when signer (C({organization, issuers, ekus})) is given, a C(Valid) signature whose subject
    organisation (as C(get_file_info) reports it) is organization once both are normalised (Unicode NFC,
    whitespace runs as one space, case of A-Z and trailing punctuation ignored), whose issuer matches one of issuers
    (C(*) and C(?) wildcards, case-insensitive) and whose certificate carries every EKU OID of ekus. The rule
    is C(module_utils/_signature.py)'s, mirrored in C(Get-BridgeSignerProblem); C(docs/signatures.md) gives
    the evidence for Notion's. Returns the file's C(get_file_info) entry."
  - "C(start_as_user)* (sid, executable, [arguments]): starts the program like C(run_as_user), waits only until
    the task runs (30 s at most), then deletes the task; the program keeps running. Returns C({started,
    pid}); pid is best effort, the oldest process of that program owned by the user and started by the task,
    or null when none can be told apart (for example a single-instance app that handed over to a running
    instance and exited). A program that exits at once with a non-zero code is an error."
  - "C(list_packages) (names, [include_provisioned]): MSIX/AppX packages of all users, C(Get-AppxPackage -AllUsers
    -Name <name>) for each name (wildcards allowed), once per package full name. Returns C({packages: [{name,
    package_full_name, family_name, version, install_location, user_sids, publisher, publisher_id, architecture,
    signature_kind, status, user_states}]}); user_sids are the users for whom the package is installed, not merely
    staged; user_states maps every SID Windows lists to its install state (C(Installed), C(Staged), ...). With
    include_provisioned, also C(provisioned: [{display_name, package_name, family_name, version, publisher_id,
    architecture, install_location}]) from C(Get-AppxProvisionedPackage -Online), matched by display name: the
    packages staged for all users, which Windows registers for each user at their next logon."
  - "C(verify_package) (path, [family_name], [sha256]): read-only. Opens the .msix/.appx (not a bundle) and every
    folder on the way denying writes and deletes, hashes it, checks its Authenticode signature is C(Valid) and reads
    the Identity of its C(AppxManifest.xml) from that handle (no DTD, at most 4 MiB). Fails on another SHA-256 or
    family name when given. Returns C({path, bytes, sha256, signature, signer_subject, identity: {name, publisher,
    version, architecture, executable, publisher_id, family_name, package_full_name}}); publisher_id is computed as
    Windows does (SHA-256 of the UTF-16LE publisher, 65 bits in Crockford base32), so the family name pins the
    publisher."
  - "C(provision_package)* (path, family_name, sha256): verifies as C(verify_package) through a handle held until it
    is done, then C(Add-AppxProvisionedPackage -Online -PackagePath <path> -SkipLicense): staged for all users and
    registered at each user's next logon, no user session needed. The same package already provisioned returns
    C(changed: false); a higher version of the family provisioned is refused (0x80073D06), as Windows refuses a
    lower version than an installed one and a manifest publisher that is not the signer's subject. Returns
    C({package_name, version, changed})."
  - "C(remove_provisioned_package)* (package_name): C(Remove-AppxProvisionedPackage -Online); users who have the
    package registered keep it and its data. Returns C({removed, missing}); a missing package is not an error."
  - "C(probe_network) (endpoints, proxies, resolve, ca_bundle, timeout_seconds): read-only connectivity probes for
    C(loopbreaker.notion.diagnose). For every proxy setting (C({mode: direct|manual|pac|auto_detect, server, bypass,
    pac_url})) and every endpoint (C({name, host, port, kind: https|engineio, path})): the proxy for the URL (manual:
    WinINET's bypass rules; PAC and auto-detect: C(WinHttpGetProxyForUrl)), DNS (C(resolve) overrides names), TCP or
    proxy CONNECT, TLS with the issuer (machine store, or chains ending in C(ca_bundle)), HTTP, and for C(engineio) the
    polling handshake then the WebSocket upgrade. Returns C({results: [{proxy_index, name, host, port, kind, proxy, ok,
    failed_step, error, steps, elapsed_ms}], elapsed_ms}). Each step has the timeout. A C(pac) setting's results
    also have C(pac) C({url, evaluated, engine, returned, entry, skipped, fallbacks}) (the entry followed is the
    first of WinHTTP's list) or, when WinHTTP cannot fetch or run the PAC file, C({url, evaluated: false, error})
    and a C(note): the probe goes direct, as WinHTTP's clients fall back."
  - "C(read_file_tails) (patterns, max_bytes, head_bytes): read-only. For each matching regular file: C({path, bytes,
    modified, tail, head, error}), the last C(max_bytes) as text and the first C(head_bytes) as base64, opened with
    read/write/delete sharing (Notion keeps its log open); reparse points are listed with an error, not followed."
  - "C(read_trees) (patterns, within, max_bytes): each match as bytes, read with shared access: a file as one
    entry named C(''), a directory as every file below it (relative names with C(/)). Returns C({trees: [{pattern,
    path, type, owner_sid, files: [{name, mode, data}], error}]}), data base64; a match that is or holds a
    junction or symbolic link, or exceeds max_bytes (default 64 MiB), has C(files) null and an C(error). Every
    entry is opened without following links through held handles of the folders above it (from C(within), else
    the profile folder, else the drive root), so a folder turned into a junction meanwhile is refused."
  - "C(write_tree)* (path, files, within, attributes): creates the file (one entry named C('')) or directory of
    files under a temporary name beside path, each entry created relative to a held, verified folder, sets the
    owner from C(attributes.owner_sid) through the entry's own handle (inherited ACL), then renames it, relative
    to the held folder, to path. An existing path is an error. Returns C({created, bytes})."
  - "C(read_records) (namespace): the REG_SZ values of C(HKLM\\SOFTWARE\\loopbreaker\\notion\\records\\<namespace>)
    as C({records: [{key, content}], store}), ordered by name; a missing namespace has none; a store owned by
    or writable by anyone but Administrators and SYSTEM is an error. Names match
    C([A-Za-z0-9][A-Za-z0-9._-]{0,127})."
  - "C(write_record)* (namespace, key, content): creates or replaces one record (the namespace key is created
    with an ACL for Administrators and SYSTEM only). Returns C({updated, bytes})."
  - "C(remove_record)* (namespace, key): returns C({removed, missing})."
  - "C(ensure_admin_dir)* (path): a machine-wide folder only administrators can change (the installer
    staging folder). Every folder on the way is opened without following links and held: it must be a
    directory owned by Administrators, SYSTEM or TrustedInstaller that lets no one else take control of it
    (create rights, like C(C:\\ProgramData) gives Users, are fine). The folder itself is created with its
    security descriptor (owner Administrators; Administrators and SYSTEM full control, Users read and execute,
    protected). An existing one owned by anyone else, or that lets anyone else write, is refused, never taken
    over (C(Remove it and run again.)); one that is only different is corrected. Returns C({created,
    acl_corrected})."
  - "A user counts as logged on for C(run_as_user) and C(start_as_user) when they own an C(explorer.exe)
    outside session 0 (a loaded hive is not enough: services and remote logons load one without a desktop);
    otherwise the operation fails with C('<user>' is not logged on: there is no interactive session to run a
    per-user program in.)"
  - An NSIS uninstaller copies itself to C(%TEMP%), starts the copy and exits 0 at once, so C(run_as_user)
    returns before the uninstall has happened. Pass C(_?=<install folder>) to make it run in place and report
    its real exit code; it then leaves itself and the folder behind for the caller to remove.
"""

EXAMPLES = r"""
# Internal module: these show what the action plugins send.
- name: Probe every profile's AppData and the Notion processes
  loopbreaker.notion.win_bridge:
    operations:
      - op: get_profiles
        shell_folders:
          AppData: AppData\Roaming
          Local AppData: AppData\Local
      - op: stat_paths
        each_profile: true
        patterns:
          - '{AppData}\Notion\Cache'
          - '{AppData}\Notion\Partitions\notion\*Cache*'
      - op: list_processes
        names: [Notion.exe]

- name: Quarantine one user's cache; the second move is skipped if the first fails
  loopbreaker.notion.win_bridge:
    operations:
      - op: ensure_private_dir
        group: S-1-5-21-1-2-3-1001
        path: C:\Users\alice\AppData\Roaming\loopbreaker-quarantine
        owner_sid: S-1-5-21-1-2-3-1001
      - op: move_path
        group: S-1-5-21-1-2-3-1001
        source: C:\Users\alice\AppData\Roaming\Notion\Cache
        destination: C:\Users\alice\AppData\Roaming\loopbreaker-quarantine\20260101T000000Z\Cache
      - op: move_path
        group: S-1-5-21-1-2-3-1001
        source: C:\Users\alice\AppData\Roaming\Notion\Code Cache
        destination: C:\Users\alice\AppData\Roaming\loopbreaker-quarantine\20260101T000000Z\Code Cache

- name: Read a logged-off user's proxy settings (their hive is loaded, then unloaded)
  loopbreaker.notion.win_bridge:
    operations:
      - op: read_registry
        sid: S-1-5-21-1-2-3-1002
        key: Software\Microsoft\Windows\CurrentVersion\Internet Settings
        names: [ProxyEnable, ProxyServer, ProxyOverride, AutoConfigURL]

- name: Install Notion for a logged-on user from a verified installer; nothing runs if the check fails
  loopbreaker.notion.win_bridge:
    operations:
      - op: ensure_admin_dir
        group: S-1-5-21-1-2-3-1001
        path: C:\ProgramData\loopbreaker\installers
      - op: verify_file
        group: S-1-5-21-1-2-3-1001
        path: C:\ProgramData\loopbreaker\installers\Notion Setup 4.5.0.exe
        signer:
          organization: Notion Labs, Inc.
          issuers: [Microsoft ID Verified CS EOC CA *, Microsoft ID Verified CS AOC CA *]
          ekus: [1.3.6.1.5.5.7.3.3]
      - op: run_as_user
        group: S-1-5-21-1-2-3-1001
        sid: S-1-5-21-1-2-3-1001
        executable: C:\ProgramData\loopbreaker\installers\Notion Setup 4.5.0.exe
        arguments: [/S]
        timeout_seconds: 600
        signer:
          organization: Notion Labs, Inc.
          issuers: [Microsoft ID Verified CS EOC CA *, Microsoft ID Verified CS AOC CA *]
          ekus: [1.3.6.1.5.5.7.3.3]
"""

RETURN = r"""
changed:
  description: Whether a mutating operation succeeded and changed something (moved, removed, created,
    updated, corrected, wrote or downloaded bytes, stopped processes or deleted values). C(run_as_user)
    and C(start_as_user) never set it; only their caller knows what the program changed.
  returned: always
  type: bool
results:
  description: One entry per operation, in the order sent.
  returned: always
  type: list
  elements: dict
  contains:
    op:
      description: The operation name.
      type: str
      returned: always
      sample: move_path
    group:
      description: The group the operation was sent with, null when none.
      type: str
      returned: always
    status:
      description: C(ok), C(error), or C(skipped) after an earlier failure in the same group.
      type: str
      returned: always
      sample: ok
    data:
      description: The operation's data (shapes in the notes), or C({by_sid}) for C(each_profile)
        operations; null unless status is C(ok).
      type: dict
      returned: always
      sample: {moved: true, missing: false}
    error:
      description: The failure message when status is C(error), else null.
      type: str
      returned: always
hives_loaded:
  description: SIDs of the users whose hive the batch loaded because they were logged off, once per
    operation that needed it.
  returned: always
  type: list
  elements: str
  sample: [S-1-5-21-1-2-3-1002]
hives_unloaded:
  description: SIDs of the hives unloaded again, each as soon as the operation that loaded it ended; a
    hive in RV(hives_loaded) but not here could not be unloaded, which failed that operation (the user's
    next logon would get a temporary profile).
  returned: always
  type: list
  elements: str
  sample: [S-1-5-21-1-2-3-1002]
"""
