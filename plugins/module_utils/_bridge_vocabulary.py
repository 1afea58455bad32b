# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fixed vocabulary of primitive operations the Windows bridge executes.

Private to this collection. The PowerShell bridge (plugins/modules/win_bridge.ps1)
and its Python twin (plugins/plugin_utils/_simulated_windows.py) must both
implement exactly these operations with exactly these parameters; a contract
test compares the three. The bridge knows nothing about Notion: callers send
data (paths, names, values) and get data back.

Batch semantics, shared by both implementations:
  * Operations run in order. An operation that fails marks every later
    operation with the same ``group`` as ``skipped``; other groups go on.
  * ``each_profile: true`` runs the operation once per profile returned by the
    batch's ``get_profiles`` operation (which must come first). In string
    parameters ``{ProfilePath}``, ``{Sid}`` and ``{<shell folder name>}`` are
    replaced with that profile's values; the result is ``{"by_sid": {...}}``.
  * An operation naming ``sid`` of a user whose hive is not loaded loads the
    user's NTUSER.DAT under a temporary key and unloads it when that
    operation ends, whether it failed or not; a failed unload fails the
    operation (the hive left loaded would give the user a temporary profile
    at the next logon). The batch's end unloads anything left over.
  * A path the bridge may not open (an ACL without Administrators, a share
    the network logon has no credentials for) fails the read operation with
    "Access to the path ... is denied": never reported as absent.
  * Without ``within``, a path below a profile folder of ProfileList is
    checked from that folder down, as with ``within`` set to it: the profile
    folder itself and what is above it resolve as Windows resolves them
    (a relocated C:\\Users, a profile folder that is a mounted volume).
  * In check mode an operation that mutates is refused (defence in depth: the
    action plugins never send one then).
  * WITHIN: a path operation given ``within`` (a directory, normally the
    user's profile) refuses any path outside it, and never goes through a
    link, junction or other reparse point strictly below it: the components
    are opened one by one without following links and kept open while the
    operation uses them (POSIX: directory file descriptors; Windows: handles
    opened with FILE_FLAG_OPEN_REPARSE_POINT and without FILE_SHARE_DELETE),
    so nothing can be swapped in between the check and the use. Without
    ``within`` the POSIX host applies the same rule below its profiles root.
  * A batch with mutating operations holds the host-wide lock of the
    collection while it runs (POSIX: flock on <state_dir>/lock, held by the
    module for its whole run; Windows: the named mutex
    ``Global\\loopbreaker.notion``); a second run waits up to 60 s, then fails
    before changing anything.
"""
from __future__ import annotations

import typing as t
from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    mutates: bool
    summary: str

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.required + self.optional


COMMON_PARAMETERS: tuple[str, ...] = ('op', 'group', 'each_profile')

_OPERATIONS: tuple[Operation, ...] = (
    Operation('get_profiles', ('shell_folders',), ('users', 'exclude_users'), False,
              'Profiles from ProfileList (logged-off users too). A real user is a S-1-5-21- or S-1-12-1- (Entra '
              'ID) SID with a ProfileImagePath, a profile folder and an NTUSER.DAT; other SIDs are special. A '
              '<SID>.bak key, a temporary profile (State 0x0800, a TEMP folder) or an incomplete one is not a '
              'profile: it is listed in skipped with the reason. users/exclude_users (profile or account names, '
              'case-insensitive) choose the selected profiles, by default every real user: only those are read '
              '(the hive loaded, read and unloaded again at once; a failed unload is that profile\'s error) and '
              'only those get each_profile operations. A selected profile has the requested shell folders from '
              'its hive, expanded with its environment (returned as environment: the machine\'s variables, the '
              'profile\'s USERPROFILE, APPDATA, LOCALAPPDATA, HOMEDRIVE, HOMEPATH..., then the hive\'s '
              'Environment and Volatile Environment); an unknown variable is an error of that profile, never '
              'the administrator\'s value. shell_folders maps a value name of "User Shell Folders" to its '
              'default path relative to the profile.'),
    Operation('stat_paths', ('patterns',), ('within',), False,
              'Expand wildcard patterns (* in any segment) and report type (file, directory, or for a link '
              'itself junction or symlink, never followed: 0 bytes), bytes and file count '
              '(recursive for directories) of each match, with its owner (POSIX uid, gid and mode; Windows '
              'owner_sid) and hard-link count. With within, see WITHIN.'),
    Operation('read_files', ('patterns',), ('within', 'max_bytes'), False,
              'Expand wildcard patterns and return the UTF-8 text of each matching regular file; a match that '
              'is a link, larger than max_bytes (default 1 MiB) or not UTF-8 is listed with an error instead '
              'of content. With within, see WITHIN.'),
    Operation('write_file', ('path', 'content'), ('within',), True,
              'Write UTF-8 text to a new file beside the target, then rename it over the target; parent '
              'directories are created. A link at the target is replaced, never written through. With '
              'within, see WITHIN.'),
    Operation('ensure_private_dir', ('path', 'owner_sid'), ('within',), True,
              'Create a directory (and parents) whose ACL grants only the owner, Administrators and '
              'SYSTEM, inheritance disabled; correct the ACL of an existing one. With within, see WITHIN.'),
    Operation('move_path', ('source', 'destination'), ('within', 'expect_type', 'attributes'), True,
              'Rename a file or directory on the same volume; a missing source is reported, not an '
              'error; an existing destination is an error. expect_type (file or directory): the source must '
              'be exactly that, not a link, and a file must have a single hard link, or nothing is moved. '
              'attributes, applied to the moved item itself (not recursively) through a handle that does '
              'not follow links: POSIX {uid, gid, mode}; Windows {owner_sid} (owner set, inherited ACL). '
              'With within, see WITHIN.'),
    Operation('remove_path', ('path',), ('within',), True,
              'Delete a file or directory tree without following links inside it; a missing path is '
              'reported, not an error. With within, see WITHIN.'),
    Operation('list_processes', ('names',), (), False,
              'Processes whose image name matches one of names (case-insensitive), with path, '
              'owner SID, session id and start time (started: Windows UTC, ISO 8601; Linux clock ticks since boot; '
              'macOS null).'),
    Operation('stop_processes', ('processes',), ('timeout_seconds',), True,
              'Terminate processes, each given as list_processes reported it ({pid, name, owner_sid, started}), '
              'and wait until they are gone. Process ids are reused: one is stopped only while the process with '
              'that id still has that image name, owner and start time, checked through a handle held until it '
              'has exited (so the id cannot change hands in between); any other is left running and listed in '
              'not_stopped ({pid, name, reason}), not an error. Returns stopped, already_gone and not_stopped; '
              'those still running at the timeout are an error.'),
    Operation('read_registry', ('key',), ('sid', 'names'), False,
              'Values of a key in HKLM (no sid) or in a user\'s hive (sid); binary data is base64.'),
    Operation('write_registry', ('key', 'values'), ('sid',), True,
              'Create the key if needed and set values, each {type, data}.'),
    Operation('delete_registry_values', ('key', 'names'), ('sid',), True,
              'Delete the named values of a key; missing values are reported, not an error.'),
    Operation('list_firewall_rules', (), ('programs',), False,
              'Windows Defender Firewall rules of every store (local, group policy, MDM) read in one pass, '
              'each complete and with its store, optionally only those whose program (as stored, not '
              'expanded) matches one of programs (case-insensitive, wildcards allowed); and per profile '
              'whether local rules apply.'),
    Operation('set_firewall_rule', ('name', 'display_name', 'direction', 'action', 'profiles', 'program',
                                    'enabled'),
              ('description', 'protocol', 'local_ports', 'remote_ports', 'local_addresses', 'remote_addresses',
               'service', 'interface_types', 'interfaces', 'edge_traversal', 'grouping'), True,
              'Create a local rule by name, or update the existing local rule of that name in place; every '
              'optional field left out means "any".'),
    Operation('remove_firewall_rule', ('name',), (), True,
              'Delete a rule by name; a missing rule is reported, not an error.'),
    Operation('list_registry_subkeys', ('key',), ('sid', 'names'), False,
              'Every direct subkey of a key (HKLM without sid, else the user\'s hive) with its values, '
              'optionally only the named values; a missing key gives no subkeys.'),
    Operation('get_file_info', ('paths',), (), False,
              'Per path: exists, bytes, file version, SHA-256 and the Authenticode signature: status, signer (the '
              'signing certificate\'s subject O=, else CN=), subject, issuer (the issuing CA\'s CN=) and ekus (OIDs).'),
    Operation('download_file', ('url', 'destination'), ('timeout_seconds', 'sha256', 'signer'), True,
              'Download a URL to a path on the host (parents created, an existing file replaced); returns '
              'bytes and SHA-256. With sha256 or signer the download is verified as verify_file does before '
              'it takes the destination name, so a refused download leaves nothing behind.'),
    Operation('run_as_user', ('sid', 'executable', 'arguments'), ('timeout_seconds', 'success_codes', 'sha256', 'signer'),
              True,
              'Run a program as a logged-on user in their interactive session through a one-shot scheduled '
              'task whose principal is that user, wait up to the timeout, delete the task; returns the exit '
              'code. A user without an interactive session, a timeout (the task is stopped) or an exit code '
              'outside success_codes (default [0]) is an error, so later operations of the group are skipped. '
              'With sha256 or signer the executable is opened denying writes and deletes, verified as verify_file '
              'does through that handle immediately before the task starts, and held so until the task ends: '
              'nobody can replace it between the check and the run.'),
    Operation('verify_file', ('path',), ('sha256', 'signer'), False,
              'Fail unless the file exists, has this SHA-256 (when given) and, when signer ({organization, issuers, '
              'ekus}) is given, a valid Authenticode signature whose subject O= is organization (compared '
              'normalised: case, whitespace, trailing punctuation), whose issuer CN matches one of issuers '
              '(wildcards) and whose certificate has every EKU of ekus (module_utils/_signature.py); returns what '
              'get_file_info returns for it.'),
    Operation('start_as_user', ('sid', 'executable'), ('arguments',), True,
              'Start a program in a logged-on user\'s interactive session without waiting (a scheduled task '
              'run once, then deleted). A user without an interactive session is an error.'),
    Operation('list_packages', ('names',), ('include_provisioned',), False,
              'MSIX/AppX packages (all users) whose name matches one of names (wildcards allowed): name, '
              'package full name, family name, version, install location and the SIDs of users who have it, '
              'with publisher, publisher id, architecture, signature kind, status and each user\'s install '
              'state; with include_provisioned also the packages provisioned (staged for all users, registered '
              'at each user\'s next logon) whose display name matches.'),
    Operation('verify_package', ('path',), ('family_name', 'sha256'), False,
              'Read an .msix/.appx file held open denying writes: SHA-256, Authenticode signature, and the '
              'Identity of its AppxManifest.xml (name, publisher, version, architecture, publisher id, family '
              'name); fails unless it has this SHA-256 and this family name (when given) and a valid signature.'),
    Operation('provision_package', ('path', 'family_name', 'sha256'), (), True,
              'Provision an MSIX for all users (Add-AppxProvisionedPackage -Online -SkipLicense) after '
              'verifying it as verify_package does through a handle held denying writes and deletes until '
              'provisioning ends; it registers for each user at their next logon, no session needed.'),
    Operation('remove_provisioned_package', ('package_name',), (), True,
              'Deprovision a package (Remove-AppxProvisionedPackage -Online) so new logons no longer get it; '
              'users who have it registered keep it and its data. A missing package is reported, not an error.'),
    Operation('read_records', ('namespace',), (), False,
              'Every record of a namespace in the host\'s administrator-only store, as key and text: '
              'Windows, the REG_SZ values of HKLM\\SOFTWARE\\loopbreaker\\notion\\records\\<namespace>; POSIX, '
              'the files of <state_dir>/records/<namespace>, every directory on the way owned by root and '
              'writable by no one else. A missing namespace has no records; an unsafe store is an error.'),
    Operation('write_record', ('namespace', 'key', 'content'), (), True,
              'Create or replace one record of the administrator-only store (atomically on POSIX).'),
    Operation('remove_record', ('namespace', 'key'), (), True,
              'Delete one record; a missing record is reported, not an error.'),
    Operation('ensure_admin_dir', ('path',), (), True,
              'A machine-wide folder only administrators can change (installer staging): every folder on the '
              'way must be a plain directory (no junction or link) owned by Administrators, SYSTEM or '
              'TrustedInstaller that grants no one else more than read and create; the folder itself is created '
              'owned by Administrators with a protected ACL (Administrators and SYSTEM full control, Users read '
              'and execute). An existing folder with another owner, or whose ACL lets anyone else write, is '
              'refused, never taken over: whoever could write there may have left files or open handles an ACL '
              'change does not revoke; one that is only different (say, no read for Users) is corrected. '
              'Checked on every use; returns created and acl_corrected.'),
    Operation('probe_network', ('endpoints', 'proxies'), ('resolve', 'ca_bundle', 'timeout_seconds'), False,
              'Probe every endpoint ({name, host, port, kind https|engineio, path}) through every proxy setting '
              '({mode direct|manual|pac|auto_detect, server, bypass, pac_url}, the proxy chosen per URL as WinHTTP '
              'would) in parallel, each step with the timeout: DNS (resolve overrides names), TCP or proxy '
              'CONNECT, TLS against the machine store (or ca_bundle) with the issuer, HTTP, and for engineio the '
              'polling handshake then the WebSocket upgrade. Returns each step of each probe and the elapsed time; '
              'a pac setting\'s results say the PAC entry followed (pac), or why the PAC file was not used.'),
    Operation('read_file_tails', ('patterns',), ('max_bytes', 'head_bytes'), False,
              'Expand wildcard patterns; for each regular file return its size, modified time, the last max_bytes '
              '(default 65536) as text (invalid UTF-8 replaced) and the first head_bytes (default 0) as base64, '
              'never reading the whole of a large file; links are listed with an error, not followed.'),
    Operation('read_trees', ('patterns',), ('within', 'max_bytes'), False,
              'Expand wildcard patterns and return each match as bytes: a regular file, or a directory with '
              'every regular file below it (relative names with /), each base64 with its mode, and the '
              'match\'s owner (POSIX uid, gid, mode; Windows owner_sid). A match that is or holds a link or '
              'another special file, or whose files exceed max_bytes together (default 64 MiB), is listed '
              'with an error instead of files. With within, see WITHIN.'),
    Operation('write_tree', ('path', 'files'), ('within', 'attributes'), True,
              'Create a file (files: one entry named "") or a directory of files ({name, data (base64), '
              'mode}) under a temporary name beside path, then rename it to path; an existing path is an '
              'error, never overwritten. attributes are applied to everything created: POSIX {uid, gid, '
              'mode} (mode for the top item), Windows {owner_sid}. With within, see WITHIN.'),
)

OPERATIONS: dict[str, Operation] = {operation.name: operation for operation in _OPERATIONS}

# Names of records and their namespaces: safe as a registry value name and as a file name.
# A complete firewall rule as list_firewall_rules returns it and set_firewall_rule takes it: the
# required eight, then these fields with their "any" value (lists empty = any). protocol is 'any',
# 'tcp', 'udp', 'icmpv4', 'icmpv6' or a number 0-255; interface_types a subset of 'wired',
# 'wireless', 'remote_access'; edge_traversal 'block', 'allow', 'defer_to_app' or 'defer_to_user'.
FIREWALL_RULE_DEFAULTS: dict[str, t.Any] = {
    'protocol': 'any', 'local_ports': [], 'remote_ports': [], 'local_addresses': [], 'remote_addresses': [],
    'service': '', 'interface_types': [], 'interfaces': [], 'edge_traversal': 'block', 'grouping': '',
}
# Where a listed rule comes from: only 'local' rules can be changed on the host.
FIREWALL_STORES: tuple[str, ...] = ('local', 'group_policy', 'mdm')
RECORD_NAME_PATTERN = r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}'
RECORDS_KEY = 'SOFTWARE\\loopbreaker\\notion\\records'
LOCK_TIMEOUT_SECONDS = 60
LOCK_NAME = 'Global\\loopbreaker.notion'


class VocabularyError(ValueError):
    """An operation list that neither bridge implementation would accept."""


def validate_operations(operations: list[dict[str, object]]) -> None:
    """Raise VocabularyError for unknown operations or parameters, before anything is sent."""
    seen_profiles = False
    for index, operation in enumerate(operations):
        name = operation.get('op')
        spec = OPERATIONS.get(str(name))
        if spec is None:
            raise VocabularyError(f'operation {index}: unknown operation {name!r}')
        unknown = sorted(set(operation) - set(spec.parameters) - set(COMMON_PARAMETERS))
        if unknown:
            raise VocabularyError(f'operation {index} ({name}): unknown parameters {", ".join(unknown)}')
        missing = [param for param in spec.required if param not in operation]
        if missing:
            raise VocabularyError(f'operation {index} ({name}): missing parameters {", ".join(missing)}')
        if operation.get('each_profile') and not seen_profiles:
            raise VocabularyError(f'operation {index} ({name}): each_profile needs an earlier get_profiles')
        seen_profiles = seen_profiles or name == 'get_profiles'


def mutating(operations: list[dict[str, object]]) -> list[str]:
    """Names of the mutating operations in a batch, in order."""
    return [str(op['op']) for op in operations if OPERATIONS[str(op['op'])].mutates]
