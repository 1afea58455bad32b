#!powershell

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil Ansible.Privilege
#AnsibleRequires -CSharpUtil ansible_collections.loopbreaker.notion.plugins.module_utils.SafePath
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeCommon
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeIdentity
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgePackages
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeFirewall
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeNetProbe

# Internal module of loopbreaker.notion: the Windows bridge. The action plugins
# send it a batch of primitive operations (plugins/module_utils/_bridge_vocabulary.py)
# and get data back; it knows nothing about Notion. Its Python twin is
# plugins/plugin_utils/_simulated_windows.py and a contract test keeps the
# tables below identical to the vocabulary. Windows PowerShell 5.1 compatible.

# Every parameter of every operation: required first, then optional, in vocabulary order.
$OperationParameters = @{
    get_profiles = @('shell_folders', 'users', 'exclude_users')
    stat_paths = @('patterns', 'within')
    read_files = @('patterns', 'within', 'max_bytes')
    write_file = @('path', 'content', 'within')
    ensure_private_dir = @('path', 'owner_sid', 'within')
    move_path = @('source', 'destination', 'within', 'expect_type', 'attributes')
    remove_path = @('path', 'within')
    list_processes = @('names')
    stop_processes = @('processes', 'timeout_seconds')
    read_registry = @('key', 'sid', 'names')
    write_registry = @('key', 'values', 'sid')
    delete_registry_values = @('key', 'names', 'sid')
    list_firewall_rules = @('programs')
    set_firewall_rule = @('name', 'display_name', 'direction', 'action', 'profiles', 'program', 'enabled', 'description', 'protocol', 'local_ports', 'remote_ports', 'local_addresses', 'remote_addresses', 'service', 'interface_types', 'interfaces', 'edge_traversal', 'grouping')
    remove_firewall_rule = @('name')
    list_registry_subkeys = @('key', 'sid', 'names')
    get_file_info = @('paths')
    download_file = @('url', 'destination', 'timeout_seconds', 'sha256', 'signer')
    run_as_user = @('sid', 'executable', 'arguments', 'timeout_seconds', 'success_codes', 'sha256', 'signer')
    verify_file = @('path', 'sha256', 'signer')
    start_as_user = @('sid', 'executable', 'arguments')
    list_packages = @('names', 'include_provisioned')
    verify_package = @('path', 'family_name', 'sha256')
    provision_package = @('path', 'family_name', 'sha256')
    remove_provisioned_package = @('package_name')
    read_records = @('namespace')
    write_record = @('namespace', 'key', 'content')
    remove_record = @('namespace', 'key')
    ensure_admin_dir = @('path')
    probe_network = @('endpoints', 'proxies', 'resolve', 'ca_bundle', 'timeout_seconds')
    read_file_tails = @('patterns', 'max_bytes', 'head_bytes')
    read_trees = @('patterns', 'within', 'max_bytes')
    write_tree = @('path', 'files', 'within', 'attributes')
}

# The optional tail of each list above.
$OptionalParameters = @{
    get_profiles = @('users', 'exclude_users')
    stat_paths = @('within')
    read_files = @('within', 'max_bytes')
    write_file = @('within')
    ensure_private_dir = @('within')
    move_path = @('within', 'expect_type', 'attributes')
    remove_path = @('within')
    list_processes = @()
    stop_processes = @('timeout_seconds')
    read_registry = @('sid', 'names')
    write_registry = @('sid')
    delete_registry_values = @('sid')
    list_firewall_rules = @('programs')
    set_firewall_rule = @('description', 'protocol', 'local_ports', 'remote_ports', 'local_addresses', 'remote_addresses', 'service', 'interface_types', 'interfaces', 'edge_traversal', 'grouping')
    remove_firewall_rule = @()
    list_registry_subkeys = @('sid', 'names')
    get_file_info = @()
    download_file = @('timeout_seconds', 'sha256', 'signer')
    run_as_user = @('timeout_seconds', 'success_codes', 'sha256', 'signer')
    verify_file = @('sha256', 'signer')
    start_as_user = @('arguments')
    list_packages = @('include_provisioned')
    verify_package = @('family_name', 'sha256')
    provision_package = @()
    remove_provisioned_package = @()
    read_records = @()
    write_record = @()
    remove_record = @()
    ensure_admin_dir = @()
    probe_network = @('resolve', 'ca_bundle', 'timeout_seconds')
    read_file_tails = @('max_bytes', 'head_bytes')
    read_trees = @('within', 'max_bytes')
    write_tree = @('within', 'attributes')
}

$MutatingOperations = @(
    'write_file'
    'ensure_private_dir'
    'move_path'
    'remove_path'
    'stop_processes'
    'write_registry'
    'delete_registry_values'
    'set_firewall_rule'
    'remove_firewall_rule'
    'download_file'
    'run_as_user'
    'start_as_user'
    'provision_package'
    'remove_provisioned_package'
    'write_record'
    'remove_record'
    'ensure_admin_dir'
    'write_tree'
)

$CommonParameters = @('op', 'group', 'each_profile')

$ProfileListKey = 'SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList'
$ShellFoldersKey = 'Software\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders'
$HiveMountPrefix = 'loopbreaker_'
# Real users: local and domain accounts, and Entra ID (Azure AD) accounts. Every other SID is special.
$RealUserSidPrefixes = @('S-1-5-21-', 'S-1-12-1-')
# ProfileList State bit 0x0800, "temporary profile loaded" (public listings of the State bits).
$ProfileStateTemporary = 0x0800
# ProfileImagePath of every ProfileList entry, read once (Get-BridgeProfileRoot).
$ProfileRoots = $null
$MachineEnvironmentKey = 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
# Variables every session of the machine has whoever logs on: taken from this process, they are not the admin's own.
$MachineVariableNames = @('SystemDrive', 'SystemRoot', 'windir', 'ProgramData', 'ALLUSERSPROFILE', 'PUBLIC',
    'ProgramFiles', 'ProgramFiles(x86)', 'ProgramW6432', 'CommonProgramFiles', 'CommonProgramFiles(x86)',
    'CommonProgramW6432', 'NUMBER_OF_PROCESSORS', 'PROCESSOR_ARCHITECTURE', 'OS', 'ComSpec')
$AdministratorsSid = 'S-1-5-32-544'
$SystemSid = 'S-1-5-18'
$ChangeFlags = @('moved', 'removed', 'created', 'updated', 'acl_corrected', 'created_key', 'bytes')
$ChangeLists = @('stopped', 'deleted')
$TaskNamePrefix = 'loopbreaker.notion-'
$TaskRunningResult = 267009     # SCHED_S_TASK_RUNNING (0x41301)
$TaskHasNotRunResult = 267011   # SCHED_S_TASK_HAS_NOT_RUN (0x41303)
# TaskSettings.Priority 4: NORMAL_PRIORITY_CLASS. Task Scheduler's default, 7, starts the program below normal.
$TaskPriority = 4
# Mirrors of _bridge_vocabulary.py (a contract test compares them).
$RecordsKey = 'SOFTWARE\loopbreaker\notion\records'
$RecordNamePattern = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}'
$LockName = 'Global\loopbreaker.notion'
$LockTimeoutSeconds = 60
$TrustedInstallerSid = 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464'
$UsersSid = 'S-1-5-32-545'
# ensure_admin_dir's folder: owner Administrators; Administrators and SYSTEM full control, Users read and execute.
$AdminDirSddl = 'O:BAD:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)'
# Rights that let someone else change or replace a folder (ancestors), or put anything in it (the folder itself).
$TakeControlRights = 0x500D0040  # GENERIC_ALL|GENERIC_WRITE|WRITE_OWNER|WRITE_DAC|DELETE|FILE_DELETE_CHILD
$WriteRights = 0x500D0156        # the above, FILE_WRITE_DATA, FILE_APPEND_DATA, FILE_WRITE_EA, FILE_WRITE_ATTRIBUTES

$RegistryMachine = [Microsoft.Win32.RegistryKey]::OpenBaseKey(
    [Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
$RegistryUsers = [Microsoft.Win32.RegistryKey]::OpenBaseKey(
    [Microsoft.Win32.RegistryHive]::Users, [Microsoft.Win32.RegistryView]::Registry64)

# Generic helpers, file identity and signatures, MSIX packages, the firewall and diagnose's network
# probes are module_utils of their own (BridgeCommon, BridgeIdentity, BridgePackages, BridgeFirewall,
# BridgeNetProbe .psm1), each with one job; this script keeps the registry, the file system, profiles,
# programs in users' sessions, the other operations, the lock and the batch.

# ------------------------------------------------------------ registry and hives

function Invoke-BridgeReg {
    # reg.exe enables SeBackupPrivilege/SeRestorePrivilege itself for load and unload.
    param(
        [string[]]$Arguments
    )
    $info = New-Object -TypeName System.Diagnostics.ProcessStartInfo
    $info.FileName = Join-Path -Path ([Environment]::SystemDirectory) -ChildPath 'reg.exe'
    $info.Arguments = ($Arguments | ForEach-Object { '"{0}"' -f $_ }) -join ' '
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $info.CreateNoWindow = $true
    $process = [System.Diagnostics.Process]::Start($info)
    try {
        $errorTask = $process.StandardError.ReadToEndAsync()
        $output = $process.StandardOutput.ReadToEnd()
        $process.WaitForExit()
        $text = @($output, $errorTask.Result) | Where-Object { $_ } | ForEach-Object { $_.Trim() }
        return @{ ExitCode = $process.ExitCode; Output = (@($text) -join ' ') }
    }
    finally {
        $process.Dispose()
    }
}

function Test-BridgeRegistryKey {
    param(
        [Microsoft.Win32.RegistryKey]$Root,
        [string]$Path
    )
    $key = $Root.OpenSubKey($Path)
    if ($null -eq $key) { return $false }
    $key.Close()
    return $true
}

function Assert-BridgeSid {
    param(
        [string]$Sid
    )
    if ($Sid -notmatch '^S-1-\d+(-\d+)+$') {
        throw "'$Sid' is not a SID."
    }
}

function Get-BridgeProfileImagePath {
    param(
        [string]$Sid
    )
    $key = $RegistryMachine.OpenSubKey("$ProfileListKey\$Sid")
    if ($null -eq $key) {
        throw "No profile for SID '$Sid' in ProfileList."
    }
    try {
        $path = [string]$key.GetValue('ProfileImagePath')
    }
    finally {
        $key.Close()
    }
    if (-not $path) {
        throw "The ProfileList entry of '$Sid' has no ProfileImagePath."
    }
    return $path
}

function Get-BridgeUserHive {
    # The HKU subkey holding the user's hive: HKU\<sid> when the user is logged on, else NTUSER.DAT
    # loaded under HKU\loopbreaker_<sid> until the operation that needed it ends (Invoke-BridgeDispatch).
    param(
        [string]$Sid,
        [hashtable]$Context
    )
    Assert-BridgeSid -Sid $Sid
    if ($Context.Mounts.Contains($Sid)) { return $Context.Mounts[$Sid] }
    if (Test-BridgeRegistryKey -Root $RegistryUsers -Path $Sid) { return $Sid }
    $mount = $HiveMountPrefix + $Sid
    # A mount left behind by an interrupted run is adopted, so this batch unloads it.
    if (-not (Test-BridgeRegistryKey -Root $RegistryUsers -Path $mount)) {
        $profilePath = Get-BridgeProfileImagePath -Sid $Sid
        $hiveFile = Join-Path -Path $profilePath -ChildPath 'NTUSER.DAT'
        # The file lies in a folder the user controls: a link or a second hard link would make us load (and
        # the rungs write) another user's hive as this user's. The profile folder is held meanwhile.
        $lease = [LoopbreakerSafePath]::Lease($hiveFile, $profilePath)
        try {
            $info = [LoopbreakerSafePath]::Inspect($hiveFile, $lease)
            if (-not $info.Exists) {
                throw "Cannot load the hive of '$Sid': '$hiveFile' does not exist."
            }
            $owner = $info.OwnerSid
            if (-not $owner) { $owner = $Sid }
            $problem = $null
            if ($info.IsLink) { $problem = 'is a junction or symbolic link' }
            elseif ($info.IsDirectory) { $problem = 'is a directory' }
            elseif ($info.Links -ne 1) { $problem = "has $($info.Links) hard links" }
            elseif (@($Sid, $SystemSid, $AdministratorsSid) -notcontains $owner) { $problem = "is owned by $owner, not by the user" }
            if ($problem) {
                throw "Refusing to load the hive of '$Sid': '$hiveFile' $problem."
            }
            $reg = Invoke-BridgeReg -Arguments @('load', "HKU\$mount", $hiveFile)
            if ($reg.ExitCode -ne 0) {
                throw "Cannot load the hive of '$Sid' from '$hiveFile': $($reg.Output)"
            }
        }
        finally {
            $lease.Dispose()
        }
    }
    $Context.Mounts[$Sid] = $mount
    $Context.HivesLoaded.Add($Sid)
    $Context.OperationMounts.Add($Sid)
    return $mount
}

function Dismount-BridgeUserHive {
    # Unload one hive this run loaded; returns $null, or why it could not be unloaded. A hive left
    # loaded gives the user a temporary profile at the next logon, so the caller reports it as an error.
    param(
        [string]$Sid,
        [hashtable]$Context
    )
    if (-not $Context.Mounts.Contains($Sid)) { return $null }
    $mount = $Context.Mounts[$Sid]
    $failure = $null
    for ($attempt = 1; $attempt -le 5; $attempt++) {
        # Registry handles not yet finalised keep a hive busy.
        [System.GC]::Collect()
        [System.GC]::WaitForPendingFinalizers()
        $reg = Invoke-BridgeReg -Arguments @('unload', "HKU\$mount")
        if ($reg.ExitCode -eq 0) {
            $failure = $null
            break
        }
        $failure = $reg.Output
        Start-Sleep -Milliseconds (250 * $attempt)
    }
    if ($null -ne $failure) {
        return ("Could not unload the hive of '$Sid' from HKU\${mount}: $failure. It stays loaded, and the user's " +
            'next logon gets a temporary profile: reboot, or unload it (reg unload) before the user logs on.')
    }
    $Context.HivesUnloaded.Add($Sid)
    $Context.Mounts.Remove($Sid)
    return $null
}

function Dismount-BridgeOperationHive {
    # Unload what the current operation loaded; returns the failures (a hive that failed stays in Mounts,
    # so the batch's end tries once more).
    param(
        [hashtable]$Context
    )
    $failures = New-Object -TypeName System.Collections.Generic.List[string]
    foreach ($sid in @($Context.OperationMounts)) {
        $failure = Dismount-BridgeUserHive -Sid $sid -Context $Context
        if ($null -ne $failure) { $failures.Add($failure) }
    }
    $Context.OperationMounts.Clear()
    return , $failures
}

function Dismount-BridgeHive {
    # The batch's end: whatever is still loaded (an operation's unload failed) is tried once more.
    param(
        [hashtable]$Context
    )
    foreach ($sid in @($Context.Mounts.Keys)) {
        $failure = Dismount-BridgeUserHive -Sid $sid -Context $Context
        if ($null -ne $failure) {
            $Context.Warnings.Add($failure)
            $Context.Mounts.Remove($sid)
        }
    }
}

function Open-BridgeRegistryKey {
    # No sid: HKLM. A sid: that user's hive, loaded if needed.
    param(
        [string]$Key,
        [string]$Sid,
        [hashtable]$Context,
        [switch]$Writable,
        [switch]$Create
    )
    $path = ([string]$Key).Trim('\')
    $root = $RegistryMachine
    if ($Sid) {
        $root = $RegistryUsers
        $mount = Get-BridgeUserHive -Sid $Sid -Context $Context
        if ($path) { $path = "$mount\$path" } else { $path = $mount }
    }
    if ($Create) {
        return $root.CreateSubKey($path)
    }
    return $root.OpenSubKey($path, [bool]$Writable)
}

function Find-BridgeValueName {
    # Registry value names are case-insensitive; return the stored spelling or $null.
    param(
        [string[]]$Present,
        [string]$Name
    )
    foreach ($candidate in $Present) {
        if (Test-BridgeNameEqual -Left $candidate -Right $Name) { return $candidate }
    }
    return $null
}

function ConvertFrom-BridgeRegistryValue {
    param(
        [Microsoft.Win32.RegistryKey]$Key,
        [string]$Name
    )
    $kind = $Key.GetValueKind($Name).ToString()
    $raw = $Key.GetValue($Name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
    $type = $null
    $data = $null
    switch ($kind) {
        'String' { $type = 'REG_SZ'; $data = [string]$raw }
        'ExpandString' { $type = 'REG_EXPAND_SZ'; $data = [string]$raw }
        'DWord' {
            $type = 'REG_DWORD'
            $data = [int64][System.BitConverter]::ToUInt32([System.BitConverter]::GetBytes([int32]$raw), 0)
        }
        'QWord' {
            $type = 'REG_QWORD'
            $data = [System.BitConverter]::ToUInt64([System.BitConverter]::GetBytes([int64]$raw), 0)
        }
        'MultiString' {
            $type = 'REG_MULTI_SZ'
            $data = New-BridgeList
            foreach ($line in @($raw)) {
                if ($null -ne $line) { $data.Add([string]$line) }
            }
        }
        default {
            # Binary, and the types the vocabulary does not name (REG_NONE, resource lists).
            $type = 'REG_BINARY'
            if ($kind -eq 'None') { $type = 'REG_NONE' }
            elseif ($kind -eq 'Unknown') { $type = 'REG_UNKNOWN' }
            $bytes = [byte[]]@()
            if ($raw -is [byte[]]) { $bytes = $raw }
            $data = [System.Convert]::ToBase64String($bytes)
        }
    }
    return [ordered]@{ type = $type; data = $data }
}

function Get-BridgeRegistryValueTable {
    # The named values of an open key (all of them when Names is null), in read_registry's encoding.
    param(
        [Microsoft.Win32.RegistryKey]$Key,
        $Names
    )
    $values = [ordered]@{}
    $present = [string[]]$Key.GetValueNames()
    if ($null -eq $Names) {
        $wanted = $present
    }
    else {
        $wanted = @($Names)
    }
    foreach ($name in $wanted) {
        $actual = Find-BridgeValueName -Present $present -Name ([string]$name)
        if ($null -ne $actual) {
            $values[[string]$name] = ConvertFrom-BridgeRegistryValue -Key $Key -Name $actual
        }
    }
    return $values
}

function ConvertTo-BridgeRegistryData {
    param(
        [string]$Name,
        $Spec
    )
    if ($Spec -isnot [System.Collections.IDictionary]) {
        throw "Registry value '$Name' must be a dict with type and data."
    }
    $type = [string]$Spec['type']
    $data = $Spec['data']
    switch ($type) {
        'REG_SZ' { return @{ Kind = [Microsoft.Win32.RegistryValueKind]::String; Value = [string]$data } }
        'REG_EXPAND_SZ' { return @{ Kind = [Microsoft.Win32.RegistryValueKind]::ExpandString; Value = [string]$data } }
        'REG_DWORD' {
            $number = [decimal]$data
            if ($number -lt 0) { $number += [decimal]4294967296 }
            if ($number -lt 0 -or $number -gt [decimal][uint32]::MaxValue) {
                throw "Registry value '$Name': $data does not fit in a REG_DWORD."
            }
            $value = [System.BitConverter]::ToInt32([System.BitConverter]::GetBytes([uint32]$number), 0)
            return @{ Kind = [Microsoft.Win32.RegistryValueKind]::DWord; Value = $value }
        }
        'REG_QWORD' {
            $number = [decimal]$data
            if ($number -lt 0) { $number += [decimal][uint64]::MaxValue + 1 }
            if ($number -lt 0 -or $number -gt [decimal][uint64]::MaxValue) {
                throw "Registry value '$Name': $data does not fit in a REG_QWORD."
            }
            $value = [System.BitConverter]::ToInt64([System.BitConverter]::GetBytes([uint64]$number), 0)
            return @{ Kind = [Microsoft.Win32.RegistryValueKind]::QWord; Value = $value }
        }
        'REG_BINARY' {
            $bytes = [System.Convert]::FromBase64String([string]$data)
            return @{ Kind = [Microsoft.Win32.RegistryValueKind]::Binary; Value = $bytes }
        }
        'REG_MULTI_SZ' {
            $lines = [string[]]@(@($data) | Where-Object { $null -ne $_ } | ForEach-Object { [string]$_ })
            return @{ Kind = [Microsoft.Win32.RegistryValueKind]::MultiString; Value = $lines }
        }
    }
    throw "Registry value '$Name': unsupported type '$type' (use REG_SZ, REG_EXPAND_SZ, REG_DWORD, REG_QWORD, REG_BINARY or REG_MULTI_SZ)."
}

# ------------------------------------------------------------------ file system

function Get-BridgeChildName {
    # The names in a directory. One the bridge may not list is an error, never an empty directory;
    # one that vanished meanwhile has none.
    param(
        [string]$Path
    )
    $names = New-Object -TypeName System.Collections.Generic.List[string]
    try {
        foreach ($entry in [System.IO.Directory]::EnumerateFileSystemEntries($Path)) {
            $names.Add([System.IO.Path]::GetFileName($entry))
        }
    }
    catch [System.IO.DirectoryNotFoundException] {
        $names.Clear()
    }
    catch [System.UnauthorizedAccessException] {
        throw "Access to the path '$Path' is denied."
    }
    return , $names
}

function Get-BridgeProfileRoot {
    # The profile folders of ProfileList (ProfileImagePath of every SID key), read once per run.
    if ($null -ne $script:ProfileRoots) { return , $script:ProfileRoots }
    $roots = New-Object -TypeName System.Collections.Generic.List[string]
    $listKey = $RegistryMachine.OpenSubKey($ProfileListKey)
    if ($null -ne $listKey) {
        try {
            foreach ($name in $listKey.GetSubKeyNames()) {
                if ($name -notmatch '^S-1-\d+(-\d+)+$') { continue }
                $entry = $listKey.OpenSubKey($name)
                if ($null -eq $entry) { continue }
                try {
                    $path = [string]$entry.GetValue('ProfileImagePath')
                    if ($path) { $roots.Add([System.IO.Path]::GetFullPath($path).TrimEnd('\')) }
                }
                catch {
                    continue  # a malformed path is no profile folder
                }
                finally {
                    $entry.Close()
                }
            }
        }
        finally {
            $listKey.Close()
        }
    }
    $script:ProfileRoots = $roots
    return , $roots
}

function Get-BridgeProfileAnchor {
    # The profile folder Path lies strictly inside (the longest), or $null. Below it the reparse check
    # applies; the folder itself and what is above it resolve as Windows resolves them (a relocated
    # C:\Users, an FSLogix profile folder that is a mounted VHD), as they do for within.
    param(
        [string]$Path
    )
    $best = $null
    foreach ($root in (Get-BridgeProfileRoot)) {
        if ($Path.StartsWith($root + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
            if ($null -eq $best -or $root.Length -gt $best.Length) { $best = $root }
        }
    }
    return $best
}

function Get-BridgeReparseAncestor {
    # The first existing directory above Path that is a junction or symbolic link, or $null: below the
    # profile folder holding Path, else below the drive root. The bridge runs as an administrator over
    # paths inside users' profiles: a user who turns a folder of theirs into a junction must not make
    # it read, move, create or re-ACL things elsewhere (someone else's data, or a system folder).
    param(
        [string]$Path
    )
    $anchor = Get-BridgeProfileAnchor -Path $Path
    $current = [System.IO.Path]::GetDirectoryName($Path.TrimEnd('\'))
    while ($current -and $current -ne [System.IO.Path]::GetPathRoot($current)) {
        if ($null -ne $anchor -and $current.Length -le $anchor.Length) { break }
        if ([System.IO.Directory]::Exists($current)) {
            $attributes = [System.IO.File]::GetAttributes($current)
            if ($attributes -band [System.IO.FileAttributes]::ReparsePoint) { return $current }
        }
        $current = [System.IO.Path]::GetDirectoryName($current)
    }
    return $null
}

function Assert-BridgeNoReparseAncestor {
    param(
        [string]$Path
    )
    $link = Get-BridgeReparseAncestor -Path $Path
    if ($null -ne $link) {
        throw "Refusing to follow the junction or symbolic link '$link' on the way to '$Path'."
    }
}

function Resolve-BridgePattern {
    # Absolute paths with * (and ?) in any segment; returns the existing matches.
    param(
        [string]$Pattern
    )
    $normal = $Pattern.Replace('/', '\')
    $prefix = ''
    if ($normal.StartsWith('\\')) {
        $prefix = '\\'
        $normal = $normal.Substring(2)
    }
    $segments = @($normal.Split([char[]]@('\'), [System.StringSplitOptions]::RemoveEmptyEntries))
    $first = 0
    while ($first -lt $segments.Count -and $segments[$first] -notmatch '[*?]') { $first++ }
    $start = ''
    if ($first -gt 0) {
        $start = $prefix + ($segments[0..($first - 1)] -join '\')
        if ($start.EndsWith(':')) { $start += '\' }
    }
    if (-not $start -or -not [System.IO.Path]::IsPathRooted($start) -or $start -match '^[A-Za-z]:[^\\]') {
        throw "Pattern '$Pattern' must be an absolute path."
    }
    $matched = New-Object -TypeName System.Collections.Generic.List[string]
    if (Test-BridgePath -Path $start) { $matched.Add($start) }
    for ($index = $first; $index -lt $segments.Count; $index++) {
        $segment = $segments[$index]
        $next = New-Object -TypeName System.Collections.Generic.List[string]
        foreach ($parent in $matched) {
            if (-not [System.IO.Directory]::Exists($parent)) { continue }
            if ($segment -match '[*?]') {
                # A junction or link is never walked through (what is below it would be dropped anyway), so
                # the compatibility junctions that deny listing ('Default User') are not listed at all.
                try {
                    if ([System.IO.File]::GetAttributes($parent) -band [System.IO.FileAttributes]::ReparsePoint) { continue }
                }
                catch [System.IO.FileNotFoundException], [System.IO.DirectoryNotFoundException] {
                    continue  # removed while walked
                }
                $regex = ConvertTo-BridgeWildcardRegex -Pattern $segment
                foreach ($name in (Get-BridgeChildName -Path $parent)) {
                    if ($regex.IsMatch($name)) { $next.Add([System.IO.Path]::Combine($parent, $name)) }
                }
            }
            else {
                $candidate = [System.IO.Path]::Combine($parent, $segment)
                if (Test-BridgePath -Path $candidate) { $next.Add($candidate) }
            }
        }
        $matched = $next
    }
    # A match reached through a junction or link is not reported at all, so nothing acts on it.
    $safe = New-Object -TypeName System.Collections.Generic.List[string]
    foreach ($path in $matched) {
        if ($null -eq (Get-BridgeReparseAncestor -Path $path)) { $safe.Add($path) }
    }
    return , $safe
}

function Measure-BridgeDirectory {
    # Recursive file count and size; reparse points are not followed.
    param(
        [string]$Path
    )
    $bytes = [int64]0
    $files = [int64]0
    $pending = New-Object -TypeName System.Collections.Generic.Stack[string]
    $pending.Push($Path)
    while ($pending.Count -gt 0) {
        $directory = New-Object -TypeName System.IO.DirectoryInfo -ArgumentList $pending.Pop()
        try {
            $children = $directory.GetFileSystemInfos()
        }
        catch [System.IO.DirectoryNotFoundException] {
            continue  # removed while measured
        }
        catch [System.UnauthorizedAccessException] {
            # A folder below that the bridge may not list: its size is unknown, not zero.
            throw "Access to the path '$($directory.FullName)' is denied."
        }
        foreach ($child in $children) {
            if ($child -is [System.IO.DirectoryInfo]) {
                if (($child.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -eq 0) {
                    $pending.Push($child.FullName)
                }
            }
            else {
                $files++
                $bytes += $child.Length
            }
        }
    }
    return @{ Bytes = $bytes; Files = $files }
}

function Get-BridgeWithin {
    # The within parameter, or $null when absent or empty.
    param(
        [hashtable]$Params
    )
    if ($null -eq $Params.within -or -not [string]$Params.within) { return $null }
    return [string]$Params.within
}

function Open-BridgeLease {
    # WITHIN (see _bridge_vocabulary.py): the components strictly below within, up to Path's parent,
    # opened without following reparse points and held without FILE_SHARE_DELETE until disposed.
    # Without within: the older rule, no junction or link anywhere above Path; returns $null.
    param(
        [string]$Path,
        $Within
    )
    if ($null -eq $Within) {
        # Below a profile folder the WITHIN rule applies from that folder down, through held handles.
        $anchor = Get-BridgeProfileAnchor -Path $Path
        if ($null -ne $anchor) { return [LoopbreakerSafePath]::Lease($Path, $anchor) }
        Assert-BridgeNoReparseAncestor -Path $Path
        return $null
    }
    return [LoopbreakerSafePath]::Lease($Path, [string]$Within)
}

function Close-BridgeLease {
    param(
        $Lease
    )
    if ($null -ne $Lease) { $Lease.Dispose() }
}

function Resolve-BridgeWithinPattern {
    # Pattern matches below within, walked from within itself; a junction or link is a match only as the
    # last segment and never walked through. Every match is then re-checked through handles by its user.
    param(
        [string]$Pattern,
        [string]$Within
    )
    $anchor = [LoopbreakerSafePath]::Normalize($Within)
    $normal = $Pattern.Replace('/', '\')
    if (-not $normal.StartsWith($anchor.TrimEnd('\') + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
        throw "Refusing '$Pattern': it is not inside '$Within'."
    }
    $segments = @($normal.Substring($anchor.TrimEnd('\').Length + 1).Split([char[]]@('\'), [System.StringSplitOptions]::RemoveEmptyEntries))
    $matched = New-Object -TypeName System.Collections.Generic.List[string]
    if ((Test-BridgePath -Path $anchor) -and [System.IO.Directory]::Exists($anchor)) { $matched.Add($anchor.TrimEnd('\')) }
    for ($index = 0; $index -lt $segments.Count; $index++) {
        $segment = $segments[$index]
        $next = New-Object -TypeName System.Collections.Generic.List[string]
        foreach ($parent in $matched) {
            # Only a real directory is walked into (the anchor itself may be reached through a junction).
            if ($parent -ne $anchor.TrimEnd('\')) {
                $info = [LoopbreakerSafePath]::Inspect($parent)
                if (-not $info.Exists -or $info.IsLink -or -not $info.IsDirectory) { continue }
            }
            if ($segment -match '[*?]') {
                $regex = ConvertTo-BridgeWildcardRegex -Pattern $segment
                foreach ($name in (Get-BridgeChildName -Path $parent)) {
                    if ($regex.IsMatch($name)) { $next.Add([System.IO.Path]::Combine($parent, $name)) }
                }
            }
            else {
                $candidate = [System.IO.Path]::Combine($parent, $segment)
                if ([LoopbreakerSafePath]::Inspect($candidate).Exists) { $next.Add($candidate) }
            }
        }
        $matched = $next
    }
    return , $matched
}

function Resolve-BridgeMatches {
    param(
        [string]$Pattern,
        $Within
    )
    if ($null -eq $Within) {
        # Below a profile folder: walked from that folder, as with within (see Get-BridgeProfileAnchor).
        $anchor = Get-BridgeProfileAnchor -Path $Pattern.Replace('/', '\')
        if ($null -ne $anchor) { return , (Resolve-BridgeWithinPattern -Pattern $Pattern -Within $anchor) }
        return , (Resolve-BridgePattern -Pattern $Pattern)
    }
    return , (Resolve-BridgeWithinPattern -Pattern $Pattern -Within ([string]$Within))
}

function New-BridgeSecurityDescriptor {
    param(
        [string]$Sddl
    )
    return New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl
}

function Test-BridgeTrustedSid {
    param(
        $Sid
    )
    return $null -ne $Sid -and @($AdministratorsSid, $SystemSid, $TrustedInstallerSid) -contains [string]$Sid.Value
}

function New-BridgePrivilegeEnabler {
    # Held but disabled for administrators: SeRestorePrivilege to make another account the owner, and with
    # FILE_FLAG_BACKUP_SEMANTICS (every SafePath open) SeBackup/SeRestore open what a user's own ACL denies
    # to Administrators. Dispose it when the operation ends.
    $privileges = [string[]]@('SeBackupPrivilege', 'SeRestorePrivilege', 'SeTakeOwnershipPrivilege')
    return New-Object -TypeName Ansible.Privilege.PrivilegeEnabler -ArgumentList @($false, $privileges)
}

function Assert-BridgeRecordName {
    param(
        [string]$Name
    )
    if (-not [regex]::IsMatch($Name, '\A(?:' + $RecordNamePattern + ')\z')) {
        throw "'$Name' is not a valid record name."
    }
}

function Assert-BridgeRecordStore {
    # HKLM is administrators' own; a records key whose ACL lets anyone else write is not trusted.
    param(
        [Microsoft.Win32.RegistryKey]$Key,
        [string]$Display
    )
    $security = $Key.GetAccessControl([System.Security.AccessControl.AccessControlSections]'Owner, Access')
    $owner = $security.GetOwner([System.Security.Principal.SecurityIdentifier])
    if (-not (Test-BridgeTrustedSid -Sid $owner)) {
        throw "The record store '$Display' is owned by $($owner.Value), not by Administrators or SYSTEM: refusing to trust it."
    }
    $write = [int]([System.Security.AccessControl.RegistryRights]'SetValue, CreateSubKey, Delete, ChangePermissions, TakeOwnership')
    foreach ($rule in $security.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($rule.AccessControlType -ne 'Allow' -or ($rule.PropagationFlags -band [System.Security.AccessControl.PropagationFlags]::InheritOnly)) { continue }
        if (([int]$rule.RegistryRights -band $write) -eq 0 -or (Test-BridgeTrustedSid -Sid $rule.IdentityReference)) { continue }
        throw "The record store '$Display' can be changed by $($rule.IdentityReference.Value): refusing to trust it."
    }
}

function Open-BridgeRecordKey {
    param(
        [string]$Namespace,
        [switch]$Create
    )
    Assert-BridgeRecordName -Name $Namespace
    $path = "$RecordsKey\$Namespace"
    if ($Create) {
        $key = $RegistryMachine.OpenSubKey($path, $true)
        if ($null -eq $key) {
            $security = New-Object -TypeName System.Security.AccessControl.RegistrySecurity
            $security.SetAccessRuleProtection($true, $false)
            foreach ($sid in @($AdministratorsSid, $SystemSid)) {
                $security.AddAccessRule((New-Object -TypeName System.Security.AccessControl.RegistryAccessRule -ArgumentList @(
                            (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $sid),
                            [System.Security.AccessControl.RegistryRights]::FullControl,
                            [System.Security.AccessControl.InheritanceFlags]::ContainerInherit,
                            [System.Security.AccessControl.PropagationFlags]::None,
                            [System.Security.AccessControl.AccessControlType]::Allow)))
            }
            $key = $RegistryMachine.CreateSubKey($path, [Microsoft.Win32.RegistryKeyPermissionCheck]::ReadWriteSubTree, $security)
        }
    }
    else {
        $key = $RegistryMachine.OpenSubKey($path, $false)
    }
    if ($null -ne $key) { Assert-BridgeRecordStore -Key $key -Display "HKLM\$path" }
    return $key
}

function Get-BridgeDescriptorSignature {
    # Owner, protection and the ACEs as sid|mask|flags|kind, sorted: two descriptors that grant the same.
    param(
        [System.Security.AccessControl.RawSecurityDescriptor]$Descriptor
    )
    $protected = ($Descriptor.ControlFlags -band [System.Security.AccessControl.ControlFlags]::DiscretionaryAclProtected) -ne 0
    $aces = New-Object -TypeName System.Collections.Generic.List[string]
    if ($null -ne $Descriptor.DiscretionaryAcl) {
        foreach ($ace in $Descriptor.DiscretionaryAcl) {
            if ($ace -is [System.Security.AccessControl.CommonAce]) {
                $aces.Add(('{0}|{1}|{2}|{3}' -f $ace.SecurityIdentifier.Value, $ace.AccessMask, [int]$ace.AceFlags, $ace.AceQualifier))
            }
            else {
                $aces.Add('other|' + $ace.AceType)
            }
        }
    }
    $owner = $null
    if ($null -ne $Descriptor.Owner) { $owner = $Descriptor.Owner.Value }
    return '{0};{1};{2}' -f $owner, $protected, (@($aces | Sort-Object) -join ';')
}

function Get-BridgeItemType {
    param(
        $Info
    )
    return [string]$Info.Type
}

# --------------------------------------------------------------------- profiles

function Expand-BridgeUserValue {
    # %NAME% replaced from the user's own environment (names case-insensitive), never from this
    # process's (the administrator's); an unknown variable is an error, not left or guessed.
    param(
        [string]$Value,
        [System.Collections.IDictionary]$Environment
    )
    $builder = New-Object -TypeName System.Text.StringBuilder
    $position = 0
    foreach ($match in [regex]::Matches($Value, '%([^%]+)%')) {
        [void]$builder.Append($Value.Substring($position, $match.Index - $position))
        $name = $match.Groups[1].Value
        if (-not $Environment.Contains($name)) {
            throw "%$name% is not set in the environment of this user"
        }
        [void]$builder.Append([string]$Environment[$name])
        $position = $match.Index + $match.Length
    }
    [void]$builder.Append($Value.Substring($position))
    return $builder.ToString()
}

function Add-BridgeEnvironmentKey {
    # The REG_EXPAND_SZ/REG_SZ values of a key, each expanded with what is known so far; a value that
    # names an unknown variable is left out (Windows would leave it unexpanded).
    param(
        [Microsoft.Win32.RegistryKey]$Root,
        [string]$Path,
        [System.Collections.IDictionary]$Environment
    )
    $key = $Root.OpenSubKey($Path)
    if ($null -eq $key) { return }
    try {
        foreach ($name in ($key.GetValueNames() | Sort-Object)) {
            if (-not $name) { continue }
            $raw = $key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            if ($raw -isnot [string]) { continue }
            try {
                $Environment[$name] = Expand-BridgeUserValue -Value $raw -Environment $Environment
            }
            catch {
                continue
            }
        }
    }
    finally {
        $key.Close()
    }
}

function Get-BridgeUserEnvironment {
    # What a session of this user has: the machine's variables, the profile's defaults, then the
    # hive's Environment and Volatile Environment (the latter exists only while the user is logged on).
    param(
        [string]$ProfilePath,
        [string]$UserName,
        [string]$Account,
        $Mount
    )
    $environment = [ordered]@{}
    foreach ($name in $MachineVariableNames) {
        $value = [Environment]::GetEnvironmentVariable($name, [EnvironmentVariableTarget]::Process)
        if ($value) { $environment[$name] = $value }
    }
    Add-BridgeEnvironmentKey -Root $RegistryMachine -Path $MachineEnvironmentKey -Environment $environment
    $domain = [Environment]::MachineName
    if ($Account -and $Account.Contains('\')) { $domain = $Account.Substring(0, $Account.IndexOf('\')) }
    $drive = [System.IO.Path]::GetPathRoot($ProfilePath).TrimEnd('\')
    $environment['USERPROFILE'] = $ProfilePath
    $environment['USERNAME'] = $UserName
    $environment['USERDOMAIN'] = $domain
    $environment['HOMEDRIVE'] = $drive
    $environment['HOMEPATH'] = $ProfilePath.Substring($drive.Length)
    $environment['APPDATA'] = [System.IO.Path]::Combine($ProfilePath, 'AppData\Roaming')
    $environment['LOCALAPPDATA'] = [System.IO.Path]::Combine($ProfilePath, 'AppData\Local')
    $environment['TEMP'] = [System.IO.Path]::Combine($ProfilePath, 'AppData\Local\Temp')
    $environment['TMP'] = $environment['TEMP']
    if ($null -ne $Mount) {
        Add-BridgeEnvironmentKey -Root $RegistryUsers -Path "$Mount\Environment" -Environment $environment
        Add-BridgeEnvironmentKey -Root $RegistryUsers -Path "$Mount\Volatile Environment" -Environment $environment
    }
    return $environment
}

function Test-BridgeRealUserSid {
    param(
        [string]$Sid
    )
    foreach ($prefix in $RealUserSidPrefixes) {
        if ($Sid.StartsWith($prefix, [System.StringComparison]::OrdinalIgnoreCase)) { return $true }
    }
    return $false
}

function Get-BridgeProfileProblem {
    # Why a ProfileList entry of a real user is no usable profile, or $null (see get_profiles in
    # _bridge_vocabulary.py). Windows renames a profile's key to <SID>.bak before it hands out a
    # temporary profile; State 0x0800 marks a temporary profile.
    param(
        [string]$Key,
        [string]$ProfilePath,
        [int64]$State
    )
    if ($Key -notmatch '^S-1-\d+(-\d+)+$') {
        if ($Key.EndsWith('.bak', [System.StringComparison]::OrdinalIgnoreCase)) {
            return ('a backup of the profile kept by Windows (.bak): the user was given a temporary profile; ' +
                'repair the profile (rename the keys back) and log on again')
        }
        return 'the ProfileList key is not a SID'
    }
    if (-not (Test-BridgeRealUserSid -Sid $Key)) { return $null }
    if (-not $ProfilePath) { return 'the ProfileList entry has no ProfileImagePath (an incomplete profile)' }
    if ($State -band $ProfileStateTemporary) {
        return 'a temporary profile (State has the temporary-profile flag): its data is deleted at logoff'
    }
    if ([System.IO.Path]::GetFileName($ProfilePath.TrimEnd('\')).ToUpperInvariant().StartsWith('TEMP')) {
        return "a temporary profile folder ('$ProfilePath')"
    }
    if (-not [System.IO.Directory]::Exists($ProfilePath)) { return "the profile folder '$ProfilePath' does not exist" }
    if (-not [System.IO.File]::Exists([System.IO.Path]::Combine($ProfilePath, 'NTUSER.DAT'))) {
        return "the profile has no NTUSER.DAT in '$ProfilePath'"
    }
    return $null
}

function Test-BridgeProfileNamed {
    # A user is named by the bare name or the account (DOMAIN\name, AzureAD\FirstLast), case-insensitively.
    param(
        [string]$UserName,
        $Account,
        $Names
    )
    foreach ($name in @($Names)) {
        if ($null -eq $name) { continue }
        if ([string]::Equals([string]$name, $UserName, [System.StringComparison]::OrdinalIgnoreCase)) { return $true }
        if ($Account -and [string]::Equals([string]$name, [string]$Account, [System.StringComparison]::OrdinalIgnoreCase)) {
            return $true
        }
    }
    return $false
}

function Read-BridgeProfileEntry {
    # ProfileImagePath and State of a ProfileList key; the path is '' when missing.
    param(
        [string]$Key
    )
    $entry = @{ Path = ''; State = [int64]0 }
    $listKey = $RegistryMachine.OpenSubKey("$ProfileListKey\$Key")
    if ($null -eq $listKey) { return $entry }
    try {
        $entry.Path = [string]$listKey.GetValue('ProfileImagePath')
        $state = $listKey.GetValue('State')
        if ($state -is [int] -or $state -is [long]) { $entry.State = [int64]$state }
    }
    finally {
        $listKey.Close()
    }
    return $entry
}

function Get-BridgeAccountName {
    # DOMAIN\name (AzureAD\FirstLast for Entra ID), or $null when the SID does not translate.
    param(
        [string]$Sid
    )
    try {
        $identifier = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $Sid
        return [string]$identifier.Translate([System.Security.Principal.NTAccount]).Value
    }
    catch {
        return $null
    }
}

function Read-BridgeProfileFolder {
    # A selected user's shell folders, from their hive, expanded with their environment; the hive is
    # loaded only if needed and unloaded again before this returns.
    param(
        [string]$Sid,
        [string]$ProfilePath,
        [string]$UserName,
        $Account,
        [System.Collections.IDictionary]$ShellFolders,
        [hashtable]$Context
    )
    $errors = New-Object -TypeName System.Collections.Generic.List[string]
    $raw = @{}
    $environment = $null
    $mount = $null
    $Context.OperationMounts.Clear()
    try {
        $mount = Get-BridgeUserHive -Sid $Sid -Context $Context
        $folderKey = $RegistryUsers.OpenSubKey("$mount\$ShellFoldersKey")
        if ($null -ne $folderKey) {
            try {
                foreach ($name in $ShellFolders.Keys) {
                    $raw[$name] = $folderKey.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
                }
            }
            finally {
                $folderKey.Close()
            }
        }
        $environment = Get-BridgeUserEnvironment -ProfilePath $ProfilePath -UserName $UserName -Account $Account -Mount $mount
    }
    catch {
        $errors.Add((Get-BridgeErrorMessage -ErrorRecord $_))
    }
    finally {
        foreach ($failure in (Dismount-BridgeOperationHive -Context $Context)) { $errors.Add($failure) }
    }
    $folders = [ordered]@{}
    $sources = [ordered]@{}
    foreach ($name in $ShellFolders.Keys) {
        $value = $raw[$name]
        if ($value -and $null -ne $environment -and $errors.Count -eq 0) {
            try {
                $folders[$name] = [System.IO.Path]::GetFullPath((Expand-BridgeUserValue -Value ([string]$value) -Environment $environment))
            }
            catch {
                $folders[$name] = [string]$value
                $errors.Add("shell folder '$name' ($value): $(Get-BridgeErrorMessage -ErrorRecord $_)")
            }
            $sources[$name] = 'registry'
        }
        else {
            $folders[$name] = [System.IO.Path]::Combine($ProfilePath, [string]$ShellFolders[$name])
            $sources[$name] = 'default'
        }
    }
    if ($null -eq $environment) { $environment = [ordered]@{} }
    $message = $null
    if ($errors.Count -gt 0) { $message = $errors -join '; ' }
    return @{ Folders = $folders; Sources = $sources; Environment = $environment; Error = $message }
}

function Get-BridgeProfile {
    # One usable ProfileList entry; only a selected one is read (hive, shell folders, environment).
    param(
        [string]$Sid,
        [string]$ProfilePath,
        $Account,
        [string]$UserName,
        [bool]$Special,
        [bool]$Selected,
        [System.Collections.IDictionary]$ShellFolders,
        [hashtable]$Context
    )
    if ($Selected) {
        $read = Read-BridgeProfileFolder -Sid $Sid -ProfilePath $ProfilePath -UserName $UserName -Account $Account `
            -ShellFolders $ShellFolders -Context $Context
    }
    else {
        # Not read, so no hive is loaded; the defaults only say where the profile's folders are.
        $read = @{ Folders = [ordered]@{}; Sources = [ordered]@{}; Environment = [ordered]@{}; Error = $null }
        foreach ($name in $ShellFolders.Keys) {
            $read.Folders[$name] = [System.IO.Path]::Combine($ProfilePath, [string]$ShellFolders[$name])
            $read.Sources[$name] = 'not_read'
        }
    }
    return [ordered]@{
        sid = $Sid
        username = $UserName
        account = $Account
        profile_path = $ProfilePath
        loaded = (Test-BridgeRegistryKey -Root $RegistryUsers -Path $Sid)
        special = $Special
        selected = $Selected
        folders = $read.Folders
        folder_source = $read.Sources
        environment = $read.Environment
        error = $read.Error
    }
}

# --------------------------------------------------- programs in a user's session

function Get-BridgeInteractiveSession {
    # A user has an interactive session when they own an explorer.exe outside session 0: the
    # explorer.exe-owner test, as Fleet uses, rather than WTS (WTSEnumerateSessions needs P/Invoke
    # compiled at run time; quser.exe is missing on Home editions and localises its output). A hive
    # under HKU is not enough: services, runas and WinRM logons load one without any desktop. A
    # replacement shell (kiosk, Server Core) has no explorer.exe and counts as not logged on.
    param(
        [string]$Sid
    )
    foreach ($process in @(Get-CimInstance -ClassName Win32_Process -Filter "Name = 'explorer.exe'")) {
        if ([int]$process.SessionId -eq 0) { continue }
        try {
            $answer = Invoke-CimMethod -InputObject $process -MethodName GetOwnerSid
        }
        catch {
            continue
        }
        if ($answer.ReturnValue -eq 0 -and [string]$answer.Sid -eq $Sid) { return [int]$process.SessionId }
    }
    return $null
}

function Resolve-BridgeInteractiveUser {
    # Who to run as: the SID (the task principal) and the name used in messages. Fails like the twin for
    # unknown SIDs and users without a session. The name is for people only: a renamed account, one that no
    # longer resolves and an Entra ID (AzureAD\) account all keep their SID.
    param(
        [string]$Sid
    )
    Assert-BridgeSid -Sid $Sid
    $profilePath = Get-BridgeProfileImagePath -Sid $Sid
    $account = $null
    try {
        $identifier = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $Sid
        $account = [string]$identifier.Translate([System.Security.Principal.NTAccount]).Value
    }
    catch {
        $account = $null
    }
    if ($account) {
        $userName = $account.Substring($account.LastIndexOf('\') + 1)
    }
    else {
        $userName = [System.IO.Path]::GetFileName($profilePath.TrimEnd('\'))
    }
    if ($null -eq (Get-BridgeInteractiveSession -Sid $Sid)) {
        throw "'$userName' is not logged on: there is no interactive session to run a per-user program in."
    }
    return @{ UserName = $userName; Sid = $Sid }
}

function Resolve-BridgeExecutable {
    param(
        [string]$Path
    )
    if (-not $Path -or -not [System.IO.Path]::IsPathRooted($Path) -or -not [System.IO.File]::Exists($Path)) {
        throw "The system cannot find the file specified: '$Path'."
    }
    return [System.IO.Path]::GetFullPath($Path)
}

function ConvertTo-BridgeArgument {
    # One argument, quoted so that CommandLineToArgvW (the C runtime's rules) gives it back unchanged.
    param(
        [string]$Argument
    )
    if ($Argument.Length -gt 0 -and $Argument -notmatch '[\s"]') { return $Argument }
    $escaped = [regex]::Replace($Argument, '(\\*)"', '$1$1\"')
    $escaped = [regex]::Replace($escaped, '(\\+)$', '$1$1')
    return '"' + $escaped + '"'
}

function Join-BridgeCommandLine {
    # NSIS reads /D=<dir> (installer) and _?=<dir> (uninstaller) itself: the rest of the command line,
    # unquoted even with spaces. So such an argument goes last, verbatim; the others are quoted.
    param(
        $Arguments
    )
    $parts = New-Object -TypeName System.Collections.Generic.List[string]
    $tail = $null
    foreach ($argument in @($Arguments)) {
        if ($null -eq $argument) { continue }
        $text = [string]$argument
        if ($text.StartsWith('/D=', [System.StringComparison]::Ordinal) -or
            $text.StartsWith('_?=', [System.StringComparison]::Ordinal)) {
            if ($null -ne $tail) { throw "Only one of /D= and _?= can be given: '$tail', '$text'." }
            if ($text.Contains('"')) { throw "An NSIS directory argument cannot contain quotes: '$text'." }
            $tail = $text
            continue
        }
        $parts.Add((ConvertTo-BridgeArgument -Argument $text))
    }
    if ($null -ne $tail) { $parts.Add($tail) }
    return ($parts -join ' ')
}

function ConvertTo-BridgeExitCode {
    # LastTaskResult is a UInt32; process exit codes (and HRESULTs) are reported signed, like Process.ExitCode.
    param(
        [int64]$Result
    )
    if ($Result -gt [int32]::MaxValue) {
        return [System.BitConverter]::ToInt32([System.BitConverter]::GetBytes([uint32]$Result), 0)
    }
    return [int]$Result
}

function Test-BridgeTaskLaunchFailure {
    # Results that come from Task Scheduler, not from the program: SCHED_E_* (0x80041300-0x800413FF)
    # and 0x800710E0, what an interactive-token task gets when the user has no session any more.
    param(
        [int64]$Result
    )
    # Decimal: Windows PowerShell reads 0x80000000 and above as negative Int32 literals.
    return ($Result -ge [int64]2147750656 -and $Result -le [int64]2147750911) -or $Result -eq [int64]2147946720
}

function Register-BridgeUserTask {
    # A one-shot task with no trigger, run on demand in the user's own session with their filtered
    # (non-elevated) token. Registered through the Task Scheduler COM API so that the principal is the
    # user's SID as given: New-ScheduledTaskPrincipal translates a SID to a name (on some machines a bare
    # one Register-ScheduledTask refuses), and a name fails for renamed, unresolvable and Entra ID accounts.
    # At $TaskPriority, not the default 7 (below normal). The defaults would also refuse to start it on
    # battery and stop it when unplugged.
    param(
        [string]$TaskName,
        [hashtable]$User,
        [string]$Executable,
        [string]$Arguments,
        [timespan]$TimeLimit
    )
    # The task is started, polled and deleted with the ScheduledTasks cmdlets.
    Import-BridgeModule -Name ScheduledTasks -Command Start-ScheduledTask
    $service = New-Object -ComObject Schedule.Service
    try {
        $service.Connect()
        $folder = $service.GetFolder('\')
        $definition = $service.NewTask(0)
        $definition.RegistrationInfo.Description = 'loopbreaker.notion: one-shot task, deleted when it has run.'
        $definition.Principal.UserId = $User.Sid
        $definition.Principal.LogonType = 3     # TASK_LOGON_INTERACTIVE_TOKEN: the user's own session
        $definition.Principal.RunLevel = 0      # TASK_RUNLEVEL_LUA: the filtered token
        $definition.Settings.DisallowStartIfOnBatteries = $false
        $definition.Settings.StopIfGoingOnBatteries = $false
        $definition.Settings.MultipleInstances = 2     # TASK_INSTANCES_IGNORE_NEW
        # PT0S: no limit (start_as_user, whose program outlives the task).
        $definition.Settings.ExecutionTimeLimit = [System.Xml.XmlConvert]::ToString($TimeLimit)
        $definition.Settings.Priority = $TaskPriority
        $action = $definition.Actions.Create(0)        # TASK_ACTION_EXEC
        # Quoted: an unquoted path with spaces can be split by Task Scheduler. The working directory must not be.
        $action.Path = '"' + $Executable + '"'
        $action.WorkingDirectory = [System.IO.Path]::GetDirectoryName($Executable)
        if ($Arguments) { $action.Arguments = $Arguments }
        # 6: TASK_CREATE_OR_UPDATE; no user or password here: the principal above, with its interactive token.
        [void]$folder.RegisterTaskDefinition($TaskName, $definition, 6, $null, $null, 3)
    }
    finally {
        [void][System.Runtime.InteropServices.Marshal]::ReleaseComObject($service)
    }
}

function Remove-BridgeUserTask {
    # Called from finally blocks: a task that cannot be deleted is a warning, never a second error.
    param(
        [string]$TaskName,
        [hashtable]$Context
    )
    try {
        $task = Get-ScheduledTask -TaskName $TaskName -TaskPath '\' -ErrorAction SilentlyContinue
        if ($null -ne $task) {
            Unregister-ScheduledTask -TaskName $TaskName -TaskPath '\' -Confirm:$false -ErrorAction Stop
        }
    }
    catch {
        $Context.Warnings.Add("Could not delete the scheduled task '\$TaskName': $(Get-BridgeErrorMessage -ErrorRecord $_)")
    }
}

function Wait-BridgeTask {
    # Polls State and LastTaskResult: a short program can start and finish between two polls, so a
    # task that is not Running has only run once its result is no longer 'has not yet run'.
    param(
        [string]$TaskName,
        [int]$TimeoutSeconds,
        [switch]$UntilStarted
    )
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $task = Get-ScheduledTask -TaskName $TaskName -TaskPath '\' -ErrorAction Stop
        $info = Get-ScheduledTaskInfo -TaskName $TaskName -TaskPath '\' -ErrorAction Stop
        $state = [string]$task.State
        $result = [int64]$info.LastTaskResult
        $running = $state -eq 'Running' -or $result -eq $TaskRunningResult
        $started = $running -or $result -ne $TaskHasNotRunResult
        $finished = $started -and -not $running -and $state -ne 'Queued'
        if ($finished -or ($UntilStarted -and $started) -or $watch.Elapsed.TotalSeconds -ge $TimeoutSeconds) {
            return @{ Started = $started; Finished = $finished; State = $state; Result = $result }
        }
        Start-Sleep -Milliseconds 500
    }
}

function Assert-BridgeTaskLaunched {
    param(
        [hashtable]$Outcome,
        [hashtable]$User,
        [string]$Executable,
        [int]$TimeoutSeconds
    )
    if (-not $Outcome.Started) {
        throw ("Task Scheduler did not start '{0}' as '{1}' within {2} s (task state {3})." -f
            $Executable, $User.UserName, $TimeoutSeconds, $Outcome.State)
    }
    if ($Outcome.Finished -and (Test-BridgeTaskLaunchFailure -Result $Outcome.Result)) {
        throw ("Task Scheduler could not run '{0}' as '{1}': 0x{2:X8}." -f $Executable, $User.UserName, $Outcome.Result)
    }
}

function Find-BridgeStartedProcess {
    # Best effort: the oldest process of that image, owned by the user and created since the task was
    # started, whose parent is not another such process (Electron apps start several). Task Scheduler
    # does not report the process id of an action.
    param(
        [string]$Executable,
        [string]$Sid,
        [datetime]$Since
    )
    $name = [System.IO.Path]::GetFileName($Executable)
    $candidates = New-BridgeList
    foreach ($process in @(Get-CimInstance -ClassName Win32_Process)) {
        if (-not (Test-BridgeNameEqual -Left ([string]$process.Name) -Right $name)) { continue }
        if (-not (Test-BridgeNameEqual -Left ([string]$process.ExecutablePath) -Right $Executable)) { continue }
        if ($null -eq $process.CreationDate -or $process.CreationDate -lt $Since) { continue }
        try {
            $answer = Invoke-CimMethod -InputObject $process -MethodName GetOwnerSid
        }
        catch {
            continue
        }
        if ($answer.ReturnValue -eq 0 -and [string]$answer.Sid -eq $Sid) { $candidates.Add($process) }
    }
    $ids = @($candidates | ForEach-Object { [int]$_.ProcessId })
    $roots = @($candidates | Where-Object { $ids -notcontains [int]$_.ParentProcessId } | Sort-Object -Property CreationDate)
    if ($roots.Count -gt 0) { return [int]$roots[0].ProcessId }
    return $null
}

# ------------------------------------------------------------------ operations

function Invoke-BridgeOp_get_profiles {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $shellFolders = $Params.shell_folders
    if ($shellFolders -isnot [System.Collections.IDictionary]) {
        throw 'shell_folders must be a dict of value name -> default path relative to the profile.'
    }
    $users = $null
    if ($null -ne $Params.users) { $users = @($Params.users | ForEach-Object { [string]$_ }) }
    $excluded = @()
    if ($null -ne $Params.exclude_users) { $excluded = @($Params.exclude_users | ForEach-Object { [string]$_ }) }
    $listKey = $RegistryMachine.OpenSubKey($ProfileListKey)
    if ($null -eq $listKey) { throw "HKLM\$ProfileListKey does not exist." }
    try {
        $keys = $listKey.GetSubKeyNames()
    }
    finally {
        $listKey.Close()
    }
    $profiles = New-BridgeList
    $skipped = New-BridgeList
    foreach ($key in $keys) {
        $entry = Read-BridgeProfileEntry -Key $key
        $sid = $key
        if ($key -match '^(S-1-\d+(-\d+)+)\.') { $sid = $Matches[1] }
        $account = Get-BridgeAccountName -Sid $sid
        if ($account) {
            $userName = $account.Substring($account.LastIndexOf('\') + 1)
        }
        else {
            $userName = [System.IO.Path]::GetFileName(([string]$entry.Path).TrimEnd('\'))
        }
        $problem = Get-BridgeProfileProblem -Key $key -ProfilePath $entry.Path -State $entry.State
        if ($null -ne $problem) {
            # Never a user, never an error of the host: reported, so an administrator can repair it.
            $shownPath = $null
            if ($entry.Path) { $shownPath = [string]$entry.Path }
            $skipped.Add([ordered]@{ key = $key; sid = $sid; username = $userName; profile_path = $shownPath; reason = $problem })
            continue
        }
        $special = -not (Test-BridgeRealUserSid -Sid $sid)
        $selected = (-not $special) -and ($null -eq $users -or (Test-BridgeProfileNamed -UserName $userName -Account $account -Names $users)) -and
            -not (Test-BridgeProfileNamed -UserName $userName -Account $account -Names $excluded)
        $profiles.Add((Get-BridgeProfile -Sid $sid -ProfilePath $entry.Path -Account $account -UserName $userName `
                    -Special $special -Selected $selected -ShellFolders $shellFolders -Context $Context))
    }
    return [ordered]@{ profiles = $profiles; skipped = $skipped }
}

function Invoke-BridgeOp_stat_paths {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $within = Get-BridgeWithin -Params $Params
    $entries = New-BridgeList
    foreach ($pattern in @($Params.patterns)) {
        foreach ($path in (Resolve-BridgeMatches -Pattern ([string]$pattern) -Within $within)) {
            # Caches change while Notion runs: a match that vanished since is not reported.
            $lease = $null
            try {
                if ($null -ne $within) { $lease = [LoopbreakerSafePath]::Lease($path, $within) }
                if (-not [LoopbreakerSafePath]::Inspect($path).Exists) { continue }
                $info = [LoopbreakerSafePath]::Inspect($path, $lease)
                $item = Get-Item -LiteralPath $path -Force -ErrorAction SilentlyContinue
                if ($null -eq $item) { continue }
                if ($info.IsLink) {
                    $size = @{ Bytes = [int64]0; Files = [int64]0 }  # a link is reported as itself, never followed
                }
                elseif ($info.IsDirectory) {
                    $size = Measure-BridgeDirectory -Path $item.FullName
                }
                else {
                    $size = @{ Bytes = [int64]$item.Length; Files = [int64]1 }
                }
                $entries.Add([ordered]@{
                        pattern = [string]$pattern
                        path = [string]$path
                        type = Get-BridgeItemType -Info $info
                        bytes = $size.Bytes
                        files = $size.Files
                        modified = Format-BridgeTime -Time $item.LastWriteTimeUtc
                        owner_sid = $info.OwnerSid
                        links = [int64]$info.Links
                    })
            }
            finally {
                Close-BridgeLease -Lease $lease
            }
        }
    }
    return [ordered]@{ entries = $entries }
}

function Invoke-BridgeOp_read_files {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $within = Get-BridgeWithin -Params $Params
    $maxBytes = [int64]1048576
    if ($null -ne $Params.max_bytes) { $maxBytes = [int64]$Params.max_bytes }
    $strict = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList @($false, $true)
    $files = New-BridgeList
    foreach ($pattern in @($Params.patterns)) {
        foreach ($path in (Resolve-BridgeMatches -Pattern ([string]$pattern) -Within $within)) {
            $lease = $null
            try {
                if ($null -ne $within) { $lease = [LoopbreakerSafePath]::Lease($path, $within) }
                $info = [LoopbreakerSafePath]::Inspect($path)
                if (-not $info.Exists -or ($info.IsDirectory -and -not $info.IsLink)) { continue }
                $problem = $null
                $content = $null
                $bytes = [LoopbreakerSafePath]::ReadFile($path, $maxBytes, $lease, [ref]$problem)
                if ($null -ne $bytes) {
                    try {
                        $content = $strict.GetString($bytes)
                        if ($content.Length -gt 0 -and $content[0] -eq [char]0xFEFF) { $content = $content.Substring(1) }
                    }
                    catch [System.Text.DecoderFallbackException] {
                        $problem = 'not UTF-8 text'
                    }
                }
                $files.Add([ordered]@{ path = [string]$path; content = $content; error = $problem })
            }
            finally {
                Close-BridgeLease -Lease $lease
            }
        }
    }
    return [ordered]@{ files = $files }
}

function Invoke-BridgeOp_write_file {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $path = [LoopbreakerSafePath]::Normalize([string]$Params.path)
    $content = [string]$Params.content
    $encoding = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
    $bytes = $encoding.GetBytes($content)
    $parent = [System.IO.Path]::GetDirectoryName($path)
    $leaf = [System.IO.Path]::GetFileName($path)
    $temporaryLeaf = '.{0}.{1}.tmp' -f $leaf, [guid]::NewGuid().ToString('N')
    $lease = Open-BridgeLease -Path $path -Within (Get-BridgeWithin -Params $Params)
    try {
        if ($null -ne $lease) { $lease.CreateParents() }
        elseif ($parent) { [void][System.IO.Directory]::CreateDirectory($parent) }
        $existing = [LoopbreakerSafePath]::Inspect($path, $lease)
        if ($existing.Exists -and $existing.IsDirectory -and -not $existing.IsLink) {
            throw "Cannot write '$($Params.path)': it is a directory."
        }
        if ($existing.Exists -and $existing.IsLink) {
            # The link is replaced, never written through.
            [LoopbreakerSafePath]::RemoveTree($path, $lease)
        }
        if ($null -ne $lease) {
            # A new file beside the target, checked to be in the held folder, written through its handle and
            # renamed relative to that folder's handle: readers never see half a file, and nothing is looked
            # up again by name.
            $temporary = [LoopbreakerSafePath]::CreateInside($lease, $temporaryLeaf)
            try {
                $temporary.WriteAll($bytes)
                $temporary.RenameInto($lease.Parent, $leaf, $true)
            }
            catch {
                try { $temporary.Delete() } catch { $Context.Warnings.Add("Could not delete '$($temporary.Path)': $(Get-BridgeErrorMessage -ErrorRecord $_)") }
                throw
            }
            finally {
                $temporary.Dispose()
            }
            $lease.Recheck()
        }
        else {
            $temporary = [System.IO.Path]::Combine($parent, $temporaryLeaf)
            $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @($temporary, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
            try {
                $stream.Write($bytes, 0, $bytes.Length)
                $stream.Flush()
            }
            finally {
                $stream.Dispose()
            }
            try {
                if ([System.IO.File]::Exists($path)) {
                    [System.IO.File]::Replace($temporary, $path, [NullString]::Value, $true)
                }
                else {
                    [System.IO.File]::Move($temporary, $path)
                }
            }
            finally {
                if ([System.IO.File]::Exists($temporary)) { [System.IO.File]::Delete($temporary) }
            }
        }
    }
    finally {
        Close-BridgeLease -Lease $lease
    }
    return [ordered]@{ bytes = $bytes.Length }
}

function Test-BridgePrivateDescriptor {
    # Owner, protected DACL and exactly full control for the wanted SIDs, nothing inherited.
    param(
        [System.Security.AccessControl.RawSecurityDescriptor]$Descriptor,
        [System.Security.Principal.SecurityIdentifier]$Owner,
        [System.Security.Principal.SecurityIdentifier[]]$Sids
    )
    if ($null -eq $Descriptor.Owner -or $Descriptor.Owner.Value -ne $Owner.Value) { return $false }
    if (($Descriptor.ControlFlags -band [System.Security.AccessControl.ControlFlags]::DiscretionaryAclProtected) -eq 0) { return $false }
    if ($null -eq $Descriptor.DiscretionaryAcl) { return $false }
    $actual = New-Object -TypeName System.Collections.Generic.List[string]
    foreach ($ace in $Descriptor.DiscretionaryAcl) {
        if ($ace -isnot [System.Security.AccessControl.CommonAce]) { return $false }
        if ($ace.IsInherited -or $ace.AceQualifier -ne 'AccessAllowed') { return $false }
        $actual.Add(('{0}|{1}|{2}' -f $ace.SecurityIdentifier.Value, $ace.AccessMask, [int]$ace.AceFlags))
    }
    $flags = [int]([System.Security.AccessControl.AceFlags]'ObjectInherit, ContainerInherit')
    $wanted = @($Sids | ForEach-Object { '{0}|{1}|{2}' -f $_.Value, 0x1F01FF, $flags } | Sort-Object -Unique) -join ';'
    return (@($actual | Sort-Object -Unique) -join ';') -eq $wanted
}

function Invoke-BridgeOp_ensure_private_dir {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $path = [LoopbreakerSafePath]::Normalize([string]$Params.path)
    $owner = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList ([string]$Params.owner_sid)
    $sids = [System.Security.Principal.SecurityIdentifier[]]@(
        $owner,
        (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $AdministratorsSid),
        (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $SystemSid))
    $lease = $null
    $directory = $null
    $enabler = New-BridgePrivilegeEnabler
    try {
        $lease = Open-BridgeLease -Path $path -Within (Get-BridgeWithin -Params $Params)
        if ($null -ne $lease) { $lease.CreateParents() }
        $existing = [LoopbreakerSafePath]::Inspect($path, $lease)
        if ($existing.Exists -and $existing.IsLink) {
            throw "Refusing '$($Params.path)': it is a junction or symbolic link."
        }
        if ($existing.Exists -and -not $existing.IsDirectory) {
            throw "Cannot create '$($Params.path)': a file of that name exists."
        }
        $created = -not $existing.Exists
        if ($created) { [void][System.IO.Directory]::CreateDirectory($path) }
        # The ACL is read and written through a handle on this very directory, opened without following links.
        $directory = [LoopbreakerSafePath]::OpenDirectory($path, $true)
        if ($null -eq $directory -or $directory.Info.IsLink) {
            throw "Refusing '$($Params.path)': it is a junction or symbolic link."
        }
        if ($null -ne $lease) { $lease.AssertInside($directory) }
        $correct = Test-BridgePrivateDescriptor -Descriptor $directory.ReadSecurity() -Owner $owner -Sids $sids
        if (-not $correct) {
            $sddl = 'O:{0}D:P{1}' -f $owner.Value, (($sids | ForEach-Object { '(A;OICI;FA;;;{0})' -f $_.Value }) -join '')
            $directory.WriteSecurity((New-BridgeSecurityDescriptor -Sddl $sddl), $true)
        }
        if ($null -ne $lease) { $lease.Recheck() }
    }
    finally {
        if ($null -ne $directory) { $directory.Dispose() }
        Close-BridgeLease -Lease $lease
        $enabler.Dispose()
    }
    return [ordered]@{ created = $created; acl_corrected = ((-not $correct) -and (-not $created)) }
}

function Invoke-BridgeOp_move_path {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $source = [LoopbreakerSafePath]::Normalize([string]$Params.source)
    $destination = [LoopbreakerSafePath]::Normalize([string]$Params.destination)
    $within = Get-BridgeWithin -Params $Params
    $expectType = $null
    if ($null -ne $Params.expect_type) { $expectType = [string]$Params.expect_type }
    if ($null -ne $expectType -and @('file', 'directory') -notcontains $expectType) {
        throw "expect_type must be 'file' or 'directory', not '$expectType'."
    }
    $ownerSid = $null
    if ($Params.attributes -is [System.Collections.IDictionary] -and $Params.attributes['owner_sid']) {
        $ownerSid = [string]$Params.attributes['owner_sid']
        Assert-BridgeSid -Sid $ownerSid
    }
    $sourceLease = $null
    $destinationLease = $null
    $item = $null
    $enabler = New-BridgePrivilegeEnabler
    try {
        $sourceLease = Open-BridgeLease -Path $source -Within $within
        $destinationLease = Open-BridgeLease -Path $destination -Within $within
        # The item itself, not followed, held without delete sharing: what is checked is what moves.
        $item = [LoopbreakerSafePath]::OpenForMove($source, ($null -ne $ownerSid))
        if ($null -eq $item) {
            return [ordered]@{ moved = $false; missing = $true }
        }
        if ($null -ne $sourceLease) { $sourceLease.AssertInside($item) }
        if ($null -ne $expectType -and $item.Info.Type -ne $expectType) {
            throw "Refusing to move '$($Params.source)': it is a $($item.Info.Type), expected a $expectType."
        }
        if ($expectType -eq 'file' -and $item.Info.Links -ne 1) {
            throw "Refusing to move '$($Params.source)': it has $($item.Info.Links) hard links."
        }
        if ($null -ne $ownerSid) {
            # The recorded owner is set on the item, so only an item that still has that owner moves:
            # a file the user swapped in must never be given to Administrators or another user.
            $current = $item.ReadSecurity().Owner
            $currentSid = if ($null -eq $current) { 'no owner' } else { $current.Value }
            if ($currentSid -ne $ownerSid) {
                throw "Refusing to move '$($Params.source)': it belongs to $currentSid, not its recorded owner $ownerSid."
            }
        }
        if ([LoopbreakerSafePath]::Inspect($destination).Exists) {
            throw "Cannot create '$($Params.destination)' because a file or directory with the same name already exists."
        }
        if (-not (Test-BridgeNameEqual -Left ([System.IO.Path]::GetPathRoot($source)) -Right ([System.IO.Path]::GetPathRoot($destination)))) {
            throw 'Source and destination path must have identical roots. Move will not work across volumes.'
        }
        if ($null -ne $destinationLease) {
            $destinationLease.CreateParents()
        }
        else {
            $parent = [System.IO.Path]::GetDirectoryName($destination)
            if ($parent) { [void][System.IO.Directory]::CreateDirectory($parent) }
        }
        # A rename of the open object: constant time, and it fails rather than copies across volumes. With
        # within, the new name is looked up relative to the held destination folder, not by its path.
        if ($null -ne $destinationLease) {
            $item.RenameInto($destinationLease.Parent, [System.IO.Path]::GetFileName($destination), $false)
        }
        else {
            $item.Rename($destination)
        }
        if ($null -ne $ownerSid) {
            $parentHandle = [LoopbreakerSafePath]::OpenDirectory([System.IO.Path]::GetDirectoryName($destination), $false)
            try {
                $item.SetOwnerInherited($ownerSid, $parentHandle)
            }
            finally {
                $parentHandle.Dispose()
            }
        }
        foreach ($lease in @($sourceLease, $destinationLease)) {
            if ($null -ne $lease) { $lease.Recheck() }
        }
    }
    finally {
        if ($null -ne $item) { $item.Dispose() }
        Close-BridgeLease -Lease $destinationLease
        Close-BridgeLease -Lease $sourceLease
        $enabler.Dispose()
    }
    return [ordered]@{ moved = $true; missing = $false }
}

function Invoke-BridgeOp_remove_path {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $path = [LoopbreakerSafePath]::Normalize([string]$Params.path)
    $lease = $null
    $enabler = New-BridgePrivilegeEnabler
    try {
        $lease = Open-BridgeLease -Path $path -Within (Get-BridgeWithin -Params $Params)
        if (-not [LoopbreakerSafePath]::Inspect($path).Exists) {
            return [ordered]@{ removed = $false; missing = $true }
        }
        # Every entry deleted through its own handle, checked to be inside its held folder; a link is removed
        # as a link, never walked into.
        [LoopbreakerSafePath]::RemoveTree($path, $lease)
    }
    finally {
        Close-BridgeLease -Lease $lease
        $enabler.Dispose()
    }
    return [ordered]@{ removed = $true; missing = $false }
}

function Invoke-BridgeOp_list_processes {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $wanted = @(@($Params.names) | ForEach-Object { ([string]$_).ToLowerInvariant() })
    $found = New-BridgeList
    $all = @(Get-CimInstance -ClassName Win32_Process | Sort-Object -Property ProcessId)
    foreach ($process in $all) {
        if ($wanted -notcontains ([string]$process.Name).ToLowerInvariant()) { continue }
        $owner = $null
        try {
            $answer = Invoke-CimMethod -InputObject $process -MethodName GetOwnerSid
            if ($answer.ReturnValue -eq 0 -and $answer.Sid) { $owner = [string]$answer.Sid }
        }
        catch {
            # The process ended, or it is protected: no owner to report.
            $owner = $null
        }
        $path = $null
        if ($process.ExecutablePath) { $path = [string]$process.ExecutablePath }
        $found.Add([ordered]@{
                pid = [int]$process.ProcessId
                name = [string]$process.Name
                path = $path
                owner_sid = $owner
                session_id = [int]$process.SessionId
                started = ConvertTo-BridgeProcessTime -Value $process.CreationDate
            })
    }
    return [ordered]@{ processes = $found }
}

function ConvertTo-BridgeProcessTime {
    # Win32_Process.CreationDate in UTC, round-trip form: list_processes and stop_processes must spell it alike.
    param(
        $Value
    )
    if ($null -eq $Value) { return $null }
    return ([datetime]$Value).ToUniversalTime().ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
}

function Get-BridgeProcessMismatch {
    # Why the process now behind this id is not the one the probe listed, or $null when it is. Called while a
    # handle to it is held, so the id cannot pass to another process between this check and the kill.
    param(
        $Expected,
        [int]$ProcessId
    )
    $what = [ordered]@{ name = 'image name'; owner_sid = 'owner'; started = 'start time' }
    foreach ($field in @($what.Keys)) {
        if ($null -eq $Expected.$field -or [string]$Expected.$field -eq '') {
            return "the probe reported no $($what[$field]) for it, so it cannot be told apart from a later process"
        }
    }
    $current = Get-CimInstance -ClassName Win32_Process -Filter "ProcessId = $ProcessId" -ErrorAction Stop
    if ($null -eq $current) { return "pid $ProcessId is not in Win32_Process any more" }
    if (-not (Test-BridgeNameEqual -Left ([string]$current.Name) -Right ([string]$Expected.name))) {
        return "pid $ProcessId is now $(Format-BridgeQuoted -Value ([string]$current.Name)), not $(Format-BridgeQuoted -Value ([string]$Expected.name))"
    }
    $owner = $null
    try {
        $answer = Invoke-CimMethod -InputObject $current -MethodName GetOwnerSid -ErrorAction Stop
        if ($answer.ReturnValue -eq 0 -and $answer.Sid) { $owner = [string]$answer.Sid }
    }
    catch {
        $owner = $null
    }
    if ($owner -cne [string]$Expected.owner_sid) {
        return "pid $ProcessId now belongs to $owner, not $($Expected.owner_sid)"
    }
    $started = ConvertTo-BridgeProcessTime -Value $current.CreationDate
    if ($started -cne [string]$Expected.started) {
        return "pid $ProcessId was started at $started, not $($Expected.started): the listed process exited and its id was reused"
    }
    return $null
}

function Invoke-BridgeOp_stop_processes {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $timeout = 30
    if ($null -ne $Params.timeout_seconds) { $timeout = [int]$Params.timeout_seconds }
    $held = New-Object -TypeName System.Collections.Generic.List[object]
    $alreadyGone = New-BridgeList
    $notStopped = New-BridgeList
    $killErrors = New-Object -TypeName System.Collections.Generic.List[string]
    # SeDebugPrivilege: administrators may open another user's process only with it enabled.
    $enabler = New-Object -TypeName Ansible.Privilege.PrivilegeEnabler -ArgumentList @($false, [string[]]@('SeDebugPrivilege'))
    try {
        foreach ($expected in @($Params.processes)) {
            $processId = [int]$expected.pid
            $process = Get-Process -Id $processId -ErrorAction SilentlyContinue
            if ($null -eq $process) {
                $alreadyGone.Add($processId)
                continue
            }
            try {
                # The handle is opened here and cached by the Process object: while it is open Windows does not
                # give this id to another process, so what is checked below is what Kill() ends.
                [void]$process.Handle
                if ($process.HasExited) {
                    $alreadyGone.Add($processId)
                    $process.Dispose()
                    continue
                }
                $reason = Get-BridgeProcessMismatch -Expected $expected -ProcessId $processId
            }
            catch {
                $reason = "cannot be opened to check it: $(Get-BridgeErrorMessage -ErrorRecord $_)"
            }
            if ($null -ne $reason) {
                $notStopped.Add([ordered]@{ pid = $processId; name = $expected.name; reason = $reason })
                $process.Dispose()
                continue
            }
            $held.Add(@{ Id = $processId; Process = $process })
        }
        foreach ($entry in $held) {
            try {
                $entry.Process.Kill()
            }
            catch {
                # It may have exited meanwhile; the wait below decides.
                $killErrors.Add("$($entry.Id): $(Get-BridgeErrorMessage -ErrorRecord $_)")
            }
        }
        $watch = [System.Diagnostics.Stopwatch]::StartNew()
        foreach ($entry in $held) {
            $left = [int][math]::Max(0, ($timeout * 1000) - $watch.ElapsedMilliseconds)
            [void]$entry.Process.WaitForExit($left)
        }
        $running = @($held | Where-Object { -not $_.Process.HasExited } | ForEach-Object { $_.Id })
        if ($running.Count -gt 0) {
            $message = "Processes still running after $timeout s: $($running -join ', ')"
            if ($killErrors.Count -gt 0) { $message += " ($($killErrors -join '; '))" }
            throw $message
        }
        $stopped = New-BridgeList
        foreach ($entry in $held) { $stopped.Add($entry.Id) }
        return [ordered]@{ stopped = $stopped; already_gone = $alreadyGone; not_stopped = $notStopped }
    }
    finally {
        foreach ($entry in $held) { $entry.Process.Dispose() }
        $enabler.Dispose()
    }
}

function Invoke-BridgeOp_read_registry {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $key = Open-BridgeRegistryKey -Key $Params.key -Sid $Params.sid -Context $Context
    if ($null -eq $key) {
        return [ordered]@{ exists = $false; values = [ordered]@{} }
    }
    try {
        $values = Get-BridgeRegistryValueTable -Key $key -Names $Params.names
    }
    finally {
        $key.Close()
    }
    return [ordered]@{ exists = $true; values = $values }
}

function Invoke-BridgeOp_write_registry {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $values = $Params.values
    if ($values -isnot [System.Collections.IDictionary]) {
        throw 'values must be a dict of value name -> {type, data}.'
    }
    # Convert every value first, so that a bad one writes nothing.
    $pending = New-BridgeList
    foreach ($name in $values.Keys) {
        $converted = ConvertTo-BridgeRegistryData -Name $name -Spec $values[$name]
        $pending.Add(@{ Name = [string]$name; Kind = $converted.Kind; Value = $converted.Value })
    }
    $existing = Open-BridgeRegistryKey -Key $Params.key -Sid $Params.sid -Context $Context
    $createdKey = $null -eq $existing
    if (-not $createdKey) { $existing.Close() }
    $key = Open-BridgeRegistryKey -Key $Params.key -Sid $Params.sid -Context $Context -Create
    try {
        foreach ($entry in $pending) {
            $key.SetValue($entry.Name, $entry.Value, $entry.Kind)
        }
    }
    finally {
        $key.Close()
    }
    return [ordered]@{ created_key = $createdKey }
}

function Invoke-BridgeOp_delete_registry_values {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $deleted = New-BridgeList
    $missing = New-BridgeList
    $key = Open-BridgeRegistryKey -Key $Params.key -Sid $Params.sid -Context $Context -Writable
    try {
        $present = [string[]]@()
        if ($null -ne $key) { $present = [string[]]$key.GetValueNames() }
        foreach ($name in @($Params.names)) {
            $actual = Find-BridgeValueName -Present $present -Name ([string]$name)
            if ($null -eq $actual) {
                $missing.Add([string]$name)
                continue
            }
            $key.DeleteValue($actual)
            $deleted.Add([string]$name)
        }
    }
    finally {
        if ($null -ne $key) { $key.Close() }
    }
    return [ordered]@{ deleted = $deleted; missing = $missing }
}

function Invoke-BridgeOp_list_registry_subkeys {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $keys = New-BridgeList
    $parent = Open-BridgeRegistryKey -Key $Params.key -Sid $Params.sid -Context $Context
    if ($null -eq $parent) {
        return [ordered]@{ keys = $keys }
    }
    try {
        # Ordered by the lower-cased name, ordinal, as the twin sorts its keys.
        $names = [string[]]$parent.GetSubKeyNames()
        $sortKeys = [string[]]@($names | ForEach-Object { $_.ToLowerInvariant() })
        [System.Array]::Sort($sortKeys, $names, [System.StringComparer]::Ordinal)
        foreach ($name in $names) {
            try {
                $child = $parent.OpenSubKey($name)
            }
            catch {
                # One unreadable entry (a restrictive ACL) must not hide all the others.
                $Context.Warnings.Add("Skipped subkey '$name' of '$($Params.key)': $(Get-BridgeErrorMessage -ErrorRecord $_)")
                continue
            }
            if ($null -eq $child) { continue }  # deleted since it was listed
            try {
                $values = Get-BridgeRegistryValueTable -Key $child -Names $Params.names
            }
            finally {
                $child.Close()
            }
            $keys.Add([ordered]@{ name = $name; values = $values })
        }
    }
    finally {
        $parent.Close()
    }
    return [ordered]@{ keys = $keys }
}

function Invoke-BridgeOp_get_file_info {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $files = New-BridgeList
    foreach ($path in @($Params.paths)) {
        $files.Add((Get-BridgeFileInfo -Path ([string]$path)))
    }
    return [ordered]@{ files = $files }
}

function Invoke-BridgeOp_download_file {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $url = [string]$Params.url
    $timeout = 300
    if ($null -ne $Params.timeout_seconds) { $timeout = [int]$Params.timeout_seconds }
    if ($timeout -le 0) { throw 'timeout_seconds must be greater than 0.' }
    $uri = $null
    if (-not [System.Uri]::TryCreate($url, [System.UriKind]::Absolute, [ref]$uri) -or
        @('http', 'https') -notcontains $uri.Scheme) {
        throw "Only absolute http and https URLs can be downloaded, not '$url'."
    }
    $destination = [System.IO.Path]::GetFullPath([string]$Params.destination)
    if ([System.IO.Directory]::Exists($destination)) {
        throw "Cannot replace '$destination': it is a directory."
    }
    $parent = [System.IO.Path]::GetDirectoryName($destination)
    [void][System.IO.Directory]::CreateDirectory($parent)
    # A temporary name beside the destination, so that the final step is a rename on the same volume
    # and an interrupted download never leaves a truncated file under the real name.
    $temporary = [System.IO.Path]::Combine($parent, ('.{0}.{1}.part' -f [System.IO.Path]::GetFileName($destination), [guid]::NewGuid().ToString('N')))
    try {
        try {
            $download = Save-BridgeDownload -Uri $uri -Path $temporary -TimeoutSeconds $timeout
        }
        catch {
            throw ('{0} ({1})' -f (Get-BridgeErrorMessage -ErrorRecord $_), $url)
        }
        # Checked before it takes the real name: a refused download leaves nothing behind.
        if ($Params.sha256 -or $null -ne $Params.signer) {
            [void](Assert-BridgeFileVerified -Path $temporary -DisplayPath $url -ExpectedHash $Params.sha256 -ExpectedSigner $Params.signer)
        }
        if ([System.IO.File]::Exists($destination)) {
            [System.IO.File]::Replace($temporary, $destination, [NullString]::Value, $true)
        }
        else {
            [System.IO.File]::Move($temporary, $destination)
        }
    }
    finally {
        if ([System.IO.File]::Exists($temporary)) {
            try {
                [System.IO.File]::Delete($temporary)
            }
            catch {
                $Context.Warnings.Add("Could not delete the partial download '$temporary': $(Get-BridgeErrorMessage -ErrorRecord $_)")
            }
        }
    }
    return [ordered]@{ bytes = $download.Bytes; sha256 = $download.Sha256 }
}

function Invoke-BridgeOp_run_as_user {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $timeout = 600
    if ($null -ne $Params.timeout_seconds) { $timeout = [int]$Params.timeout_seconds }
    if ($timeout -le 0) { throw 'timeout_seconds must be greater than 0.' }
    $successCodes = @(0)
    if ($null -ne $Params.success_codes) { $successCodes = @(@($Params.success_codes) | ForEach-Object { [int64]$_ }) }
    $user = Resolve-BridgeInteractiveUser -Sid ([string]$Params.sid)
    $executable = Resolve-BridgeExecutable -Path ([string]$Params.executable)
    $commandLine = Join-BridgeCommandLine -Arguments $Params.arguments
    $taskName = $TaskNamePrefix + [guid]::NewGuid().ToString()
    $pinned = $null
    if ($Params.sha256 -or $null -ne $Params.signer) {
        # Verified in this step and held (no write or delete sharing, every folder on the way too) until
        # the task has ended: what was checked is what runs.
        $pinned = Open-BridgeVerifiedProgram -Executable $executable -ExpectedHash $Params.sha256 -ExpectedSigner $Params.signer
    }
    try {
        # Task Scheduler bypasses ExecutionTimeLimit for on-demand runs; the wait below is the real limit.
        Register-BridgeUserTask -TaskName $taskName -User $user -Executable $executable -Arguments $commandLine `
            -TimeLimit ([timespan]::FromSeconds($timeout + 60))
        Start-ScheduledTask -TaskName $taskName -TaskPath '\' -ErrorAction Stop
        $outcome = Wait-BridgeTask -TaskName $taskName -TimeoutSeconds $timeout
        Assert-BridgeTaskLaunched -Outcome $outcome -User $user -Executable $executable -TimeoutSeconds $timeout
        if (-not $outcome.Finished) {
            Stop-ScheduledTask -TaskName $taskName -TaskPath '\' -ErrorAction SilentlyContinue
            throw "'$executable' did not finish within $timeout s; the task was stopped."
        }
        $exitCode = ConvertTo-BridgeExitCode -Result $outcome.Result
        # Both spellings of a code above 0x7FFFFFFF are accepted: signed, and the UInt32 Task Scheduler reports.
        if ($successCodes -notcontains [int64]$exitCode -and $successCodes -notcontains $outcome.Result) {
            throw "'$executable' exited with code $exitCode."
        }
        return [ordered]@{ exit_code = $exitCode }
    }
    finally {
        Remove-BridgeUserTask -TaskName $taskName -Context $Context
        if ($null -ne $pinned) {
            $pinned.Stream.Dispose()
            $pinned.Lease.Dispose()
        }
    }
}

function Assert-BridgeFileVerified {
    # Shared by verify_file and download_file: existence, hash and Authenticode signer.
    param(
        [string]$Path,
        [string]$DisplayPath,
        $ExpectedHash,
        $ExpectedSigner
    )
    $info = Get-BridgeFileInfo -Path $Path
    if (-not $info.exists) {
        throw "Cannot verify '$DisplayPath': the file does not exist."
    }
    if ($ExpectedHash) {
        $expected = ([string]$ExpectedHash).ToLowerInvariant()
        if ($info.sha256 -cne $expected) {
            throw "'$DisplayPath' has SHA-256 $($info.sha256), expected $expected."
        }
    }
    if ($null -ne $ExpectedSigner) {
        $problem = Get-BridgeSignerProblem -Signature $info.signature -Expected $ExpectedSigner -DisplayPath $DisplayPath
        if ($null -ne $problem) { throw $problem }
    }
    return $info
}

function Invoke-BridgeOp_verify_file {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $path = [string]$Params.path
    return Assert-BridgeFileVerified -Path $path -DisplayPath $path -ExpectedHash $Params.sha256 -ExpectedSigner $Params.signer
}

function Invoke-BridgeOp_start_as_user {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $startTimeout = 30
    $user = Resolve-BridgeInteractiveUser -Sid ([string]$Params.sid)
    $executable = Resolve-BridgeExecutable -Path ([string]$Params.executable)
    $commandLine = Join-BridgeCommandLine -Arguments $Params.arguments
    $taskName = $TaskNamePrefix + [guid]::NewGuid().ToString()
    # CreationDate has a coarser clock than Get-Date: a little slack.
    $since = (Get-Date).AddSeconds(-2)
    try {
        # No time limit: the program outlives the task, which is deleted as soon as it has started.
        Register-BridgeUserTask -TaskName $taskName -User $user -Executable $executable -Arguments $commandLine `
            -TimeLimit ([timespan]::Zero)
        Start-ScheduledTask -TaskName $taskName -TaskPath '\' -ErrorAction Stop
        $outcome = Wait-BridgeTask -TaskName $taskName -TimeoutSeconds $startTimeout -UntilStarted
        Assert-BridgeTaskLaunched -Outcome $outcome -User $user -Executable $executable -TimeoutSeconds $startTimeout
        if ($outcome.Finished -and $outcome.Result -ne 0) {
            throw ("'{0}' exited at once with code {1} when started as '{2}'." -f
                $executable, (ConvertTo-BridgeExitCode -Result $outcome.Result), $user.UserName)
        }
    }
    finally {
        # Deleting the task does not end the program it started.
        Remove-BridgeUserTask -TaskName $taskName -Context $Context
    }
    # Null when the process cannot be identified, e.g. a single-instance app that handed over and exited.
    $processId = Find-BridgeStartedProcess -Executable $executable -Sid $user.Sid -Since $since
    return [ordered]@{ started = $true; pid = $processId }
}

function Invoke-BridgeOp_read_file_tails {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $maxBytes = if ($null -ne $Params.max_bytes) { [int]$Params.max_bytes } else { 65536 }
    $headBytes = if ($null -ne $Params.head_bytes) { [int]$Params.head_bytes } else { 0 }
    $files = New-BridgeList
    foreach ($pattern in @($Params.patterns)) {
        # Resolve-BridgePattern: a folder on the way the bridge may not list is an error, not "no logs".
        foreach ($path in (Resolve-BridgeMatches -Pattern ([string]$pattern) -Within $null)) {
            $item = Get-Item -LiteralPath $path -Force -ErrorAction SilentlyContinue
            if ($null -eq $item -or $item.PSIsContainer) { continue }
            if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
                $files.Add([ordered]@{ path = $item.FullName; bytes = $null; modified = $null; tail = $null; head = $null
                        error = 'it is a link or reparse point; not followed' })
                continue
            }
            try {
                # Notion keeps log.log open for writing: share read, write and delete.
                $stream = [System.IO.File]::Open($item.FullName, 'Open', 'Read', 'ReadWrite, Delete')
                try {
                    $head = New-Object -TypeName byte[] -ArgumentList ([Math]::Min($headBytes, $stream.Length))
                    [void]$stream.Read($head, 0, $head.Length)
                    $length = [int][Math]::Min($maxBytes, $stream.Length)
                    [void]$stream.Seek(-$length, 'End')
                    $tail = New-Object -TypeName byte[] -ArgumentList $length
                    [void]$stream.Read($tail, 0, $length)
                    $files.Add([ordered]@{ path = $item.FullName; bytes = $stream.Length
                            modified = $item.LastWriteTimeUtc.ToString('yyyy-MM-ddTHH:mm:ssZ')
                            tail = [System.Text.Encoding]::UTF8.GetString($tail); head = [Convert]::ToBase64String($head); error = $null })
                }
                finally { $stream.Dispose() }
            }
            catch {
                $files.Add([ordered]@{ path = $item.FullName; bytes = $null; modified = $null; tail = $null; head = $null
                        error = $_.Exception.Message })
            }
        }
    }
    return [ordered]@{ files = $files }
}

function Open-BridgeHeldLease {
    # A lease (SafePath.cs) for Path in every case: from within; else from the profile folder holding
    # Path; else from the drive root, so no junction or link anywhere above Path is followed. Unlike
    # Open-BridgeLease it never returns $null: what is read or created is always checked through handles.
    param(
        [string]$Path,
        $Within
    )
    if ($null -ne $Within) { return [LoopbreakerSafePath]::Lease($Path, [string]$Within) }
    $anchor = Get-BridgeProfileAnchor -Path $Path
    if ($null -eq $anchor) { $anchor = [System.IO.Path]::GetPathRoot($Path) }
    return [LoopbreakerSafePath]::Lease($Path, $anchor)
}

function Read-BridgeHeldFile {
    # A regular file's bytes, read with shared access (a running browser's open file can be read) through a
    # handle opened without following links and verified, through the lease, to be the entry of its name
    # inside the held folder. Throws what is wrong instead.
    param(
        [string]$Path,
        $Lease,
        [int64]$Budget,
        [int64]$MaxBytes
    )
    $problem = $null
    $bytes = [LoopbreakerSafePath]::ReadFile($Path, $Budget, $Lease, [ref]$problem)
    if ($null -eq $bytes) {
        if ([string]$problem -like 'larger than*') { throw "it is larger than $MaxBytes bytes" }
        if ([string]$problem -like '*junction*') { throw "it holds '$Path', a junction or symbolic link; not followed" }
        throw "'$Path' is $problem"
    }
    return , $bytes
}

function Read-BridgeTreeFiles {
    # Every regular file below the directory Root (read_trees). Each entry is inspected and read through a
    # lease of its own from Anchor (every folder on the way held open, none followed, each verified to be
    # the entry inside the one before), so a folder swapped for a junction meanwhile is refused, not walked.
    param(
        [string]$Root,
        [string]$Anchor,
        [int64]$MaxBytes
    )
    $files = New-BridgeList
    $budget = $MaxBytes
    $pending = New-Object -TypeName System.Collections.Generic.Stack[string]
    $pending.Push($Root)
    while ($pending.Count -gt 0) {
        $directory = $pending.Pop()
        foreach ($name in (Get-BridgeChildName -Path $directory)) {
            $child = [System.IO.Path]::Combine($directory, $name)
            $lease = [LoopbreakerSafePath]::Lease($child, $Anchor)
            try {
                $info = [LoopbreakerSafePath]::Inspect($child, $lease)
                if (-not $info.Exists) { continue }  # removed by the browser since it was listed
                if ($info.IsLink) { throw "it holds '$child', a junction or symbolic link; not followed" }
                if ($info.IsDirectory) {
                    $pending.Push($child)
                    continue
                }
                $bytes = Read-BridgeHeldFile -Path $child -Lease $lease -Budget $budget -MaxBytes $MaxBytes
                $budget -= $bytes.Length
                $relative = $child.Substring($Root.Length + 1).Replace('\', '/')
                $files.Add([ordered]@{ name = $relative; mode = 384; data = [System.Convert]::ToBase64String($bytes) })
            }
            finally {
                $lease.Dispose()
            }
        }
    }
    return , $files
}

function Invoke-BridgeOp_read_trees {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $within = Get-BridgeWithin -Params $Params
    $maxBytes = [int64](64 * 1048576)
    if ($null -ne $Params.max_bytes) { $maxBytes = [int64]$Params.max_bytes }
    $trees = New-BridgeList
    foreach ($pattern in @($Params.patterns)) {
        foreach ($matched in (Resolve-BridgeMatches -Pattern ([string]$pattern) -Within $within)) {
            $path = [LoopbreakerSafePath]::Normalize([string]$matched)
            $tree = [ordered]@{ pattern = [string]$pattern; path = $path; type = 'file'; owner_sid = $null; files = $null; error = $null }
            $lease = $null
            try {
                $lease = Open-BridgeHeldLease -Path $path -Within $within
                $info = [LoopbreakerSafePath]::Inspect($path, $lease)
                if (-not $info.Exists) { continue }  # removed by the browser since it matched
                $tree.type = Get-BridgeItemType -Info $info
                $tree.owner_sid = $info.OwnerSid
                if ($info.IsLink) { throw 'it is a junction or symbolic link; not followed' }
                if ($info.IsDirectory) {
                    $tree.files = Read-BridgeTreeFiles -Root $path -Anchor $lease.Within -MaxBytes $maxBytes
                }
                else {
                    $bytes = Read-BridgeHeldFile -Path $path -Lease $lease -Budget $maxBytes -MaxBytes $maxBytes
                    $single = New-BridgeList
                    $single.Add([ordered]@{ name = ''; mode = 384; data = [System.Convert]::ToBase64String($bytes) })
                    $tree.files = $single
                }
            }
            catch {
                $tree.files = $null
                $tree.error = Get-BridgeErrorMessage -ErrorRecord $_
            }
            finally {
                Close-BridgeLease -Lease $lease
            }
            $trees.Add($tree)
        }
    }
    return [ordered]@{ trees = $trees }
}

function Write-BridgeHeldFile {
    # A new file Leaf in the lease's held folder: created there (never through a link), checked to be inside
    # it, then written through that handle.
    param(
        $Lease,
        [string]$Leaf,
        [byte[]]$Bytes
    )
    $file = [LoopbreakerSafePath]::CreateInside($Lease, $Leaf)
    try {
        $file.WriteAll($Bytes)
    }
    finally {
        $file.Dispose()
    }
}

function Set-BridgeInheritedOwner {
    # Item's owner set and its ACL inherited from the lease's held folder. The lease's anchor is held for
    # existence only (no READ_CONTROL), so when it is that folder its ACL is read through a handle of its own.
    param(
        $Item,
        $Lease,
        [string]$OwnerSid
    )
    $parent = $Lease.Parent
    $opened = $null
    try {
        if ($Lease.Count -eq 0) {
            $opened = [LoopbreakerSafePath]::OpenDirectory($parent.Path, $false)
            if ($null -eq $opened) { throw "Cannot read the security of '$($parent.Path)': it no longer exists." }
            $parent = $opened
        }
        $Item.SetOwnerInherited($OwnerSid, $parent)
    }
    finally {
        if ($null -ne $opened) { $opened.Dispose() }
    }
}

function Set-BridgeHeldOwner {
    # write_tree's owner for an entry it created: set through a handle opened without following links and
    # checked to be inside the lease's held folder. An entry replaced meanwhile (a link, or a hard link to
    # someone else's file) is refused: it must never be given to the user.
    param(
        [string]$Path,
        $Lease,
        [string]$OwnerSid
    )
    $item = [LoopbreakerSafePath]::OpenForMove($Path, $true)
    if ($null -eq $item) { throw "Cannot set the owner of '$Path': it no longer exists." }
    try {
        $Lease.AssertInside($item)
        if ($item.Info.IsLink -or ($item.Info.Type -eq 'file' -and $item.Info.Links -ne 1)) {
            throw "Refusing '$Path': it was replaced while it was written."
        }
        Set-BridgeInheritedOwner -Item $item -Lease $Lease -OwnerSid $OwnerSid
    }
    finally {
        $item.Dispose()
    }
}

function Invoke-BridgeOp_write_tree {
    # A store written beside its place under a temporary name and renamed into the free path. Every entry is
    # created relative to a held folder (SafePath leases), never by a name that could lead through a link.
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $path = [LoopbreakerSafePath]::Normalize([string]$Params.path)
    $leaf = [System.IO.Path]::GetFileName($path)
    $files = @($Params.files)
    $single = ($files.Count -eq 1 -and [string]$files[0].name -eq '')
    $relatives = New-Object -TypeName System.Collections.Generic.List[string]
    if (-not $single) {
        foreach ($entry in $files) {
            $name = [string]$entry.name
            $parts = @($name.Split('/'))
            if (-not $name -or ($parts | Where-Object { $_ -in @('', '.', '..') -or $_ -match '[\\:*?"<>|]' })) {
                throw "Refusing the file name '$name' in a tree."
            }
            $relatives.Add(($parts -join '\'))
        }
    }
    $ownerSid = $null
    if ($Params.attributes -is [System.Collections.IDictionary] -and $Params.attributes['owner_sid']) {
        $ownerSid = [string]$Params.attributes['owner_sid']
        Assert-BridgeSid -Sid $ownerSid
    }
    $within = Get-BridgeWithin -Params $Params
    $temporaryLeaf = '.{0}.{1}.tmp' -f $leaf, [guid]::NewGuid().ToString('N').Substring(0, 8)
    $temporary = $null
    $written = [int64]0
    $lease = $null
    $enabler = New-BridgePrivilegeEnabler
    try {
        $lease = Open-BridgeHeldLease -Path $path -Within $within
        $lease.CreateParents()
        if ([LoopbreakerSafePath]::Inspect($path, $lease).Exists) { throw "Cannot write '$($Params.path)': it already exists." }
        $temporary = [System.IO.Path]::Combine($lease.Parent.Path, $temporaryLeaf)
        if ($single) {
            $bytes = [System.Convert]::FromBase64String([string]$files[0].data)
            Write-BridgeHeldFile -Lease $lease -Leaf $temporaryLeaf -Bytes $bytes
            $written = $bytes.Length
        }
        else {
            # Each file through a lease of its own from the same anchor: the temporary folder and the folders
            # below it are created one at a time, each opened and checked as soon as it exists.
            $folders = New-Object -TypeName System.Collections.Generic.List[string]
            $folders.Add($temporary)
            for ($index = 0; $index -lt $files.Count; $index++) {
                $target = [System.IO.Path]::Combine($temporary, $relatives[$index])
                $above = [System.IO.Path]::GetDirectoryName($target)
                while ($above.Length -gt $temporary.Length -and -not $folders.Contains($above)) {
                    $folders.Add($above)
                    $above = [System.IO.Path]::GetDirectoryName($above)
                }
                $fileLease = [LoopbreakerSafePath]::Lease($target, $lease.Within)
                try {
                    $fileLease.CreateParents()
                    $bytes = [System.Convert]::FromBase64String([string]$files[$index].data)
                    Write-BridgeHeldFile -Lease $fileLease -Leaf ([System.IO.Path]::GetFileName($target)) -Bytes $bytes
                    $written += $bytes.Length
                    if ($null -ne $ownerSid) { Set-BridgeHeldOwner -Path $target -Lease $fileLease -OwnerSid $ownerSid }
                }
                finally {
                    $fileLease.Dispose()
                }
            }
            if ($files.Count -eq 0) {
                $emptyLease = [LoopbreakerSafePath]::Lease([System.IO.Path]::Combine($temporary, 'none'), $lease.Within)
                try { $emptyLease.CreateParents() } finally { $emptyLease.Dispose() }
            }
            if ($null -ne $ownerSid) {
                foreach ($folder in $folders) {
                    if ($folder -eq $temporary) { continue }  # the tree itself is given its owner below
                    $folderLease = [LoopbreakerSafePath]::Lease($folder, $lease.Within)
                    try {
                        Set-BridgeHeldOwner -Path $folder -Lease $folderLease -OwnerSid $ownerSid
                    }
                    finally {
                        $folderLease.Dispose()
                    }
                }
            }
        }
        # The temporary entry itself, not followed, checked to be inside the held folder, given its owner and
        # renamed relative to that folder's handle into the free name: readers never see half a store.
        $item = [LoopbreakerSafePath]::OpenForMove($temporary, ($null -ne $ownerSid))
        if ($null -eq $item) { throw "Cannot write '$($Params.path)': '$temporary' no longer exists." }
        try {
            $lease.AssertInside($item)
            $expected = 'directory'
            if ($single) { $expected = 'file' }
            if ($item.Info.IsLink -or $item.Info.Type -ne $expected -or ($single -and $item.Info.Links -ne 1)) {
                throw "Refusing '$temporary': it was replaced while it was written."
            }
            if ($null -ne $ownerSid) { Set-BridgeInheritedOwner -Item $item -Lease $lease -OwnerSid $ownerSid }
            $item.RenameInto($lease.Parent, $leaf, $false)
        }
        finally {
            $item.Dispose()
        }
        $temporary = $null
        $lease.Recheck()
    }
    catch {
        if ($null -ne $temporary -and $null -ne $lease) {
            try {
                [LoopbreakerSafePath]::RemoveTree($temporary, $lease)
            }
            catch {
                $Context.Warnings.Add("Could not delete '$temporary': $(Get-BridgeErrorMessage -ErrorRecord $_)")
            }
        }
        throw
    }
    finally {
        Close-BridgeLease -Lease $lease
        $enabler.Dispose()
    }
    return [ordered]@{ created = $true; bytes = $written }
}

function Invoke-BridgeOp_read_records {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $namespace = [string]$Params.namespace
    $records = New-BridgeList
    $key = Open-BridgeRecordKey -Namespace $namespace
    if ($null -ne $key) {
        try {
            $names = [string[]]@($key.GetValueNames() | Where-Object { $_ -and $key.GetValueKind($_) -eq 'String' })
            [System.Array]::Sort($names, [System.StringComparer]::Ordinal)
            foreach ($name in $names) {
                $records.Add([ordered]@{ key = $name; content = [string]$key.GetValue($name) })
            }
        }
        finally {
            $key.Close()
        }
    }
    return [ordered]@{ records = $records; store = "HKLM\$RecordsKey\$namespace" }
}

function Invoke-BridgeOp_write_record {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $name = [string]$Params.key
    Assert-BridgeRecordName -Name $name
    $content = [string]$Params.content
    $key = Open-BridgeRecordKey -Namespace ([string]$Params.namespace) -Create
    try {
        $key.SetValue($name, $content, [Microsoft.Win32.RegistryValueKind]::String)
    }
    finally {
        $key.Close()
    }
    return [ordered]@{ updated = $true; bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetByteCount($content) }
}

function Invoke-BridgeOp_remove_record {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $name = [string]$Params.key
    Assert-BridgeRecordName -Name $name
    $key = Open-BridgeRecordKey -Namespace ([string]$Params.namespace)
    if ($null -eq $key) { return [ordered]@{ removed = $false; missing = $true } }
    $key.Close()
    $key = $RegistryMachine.OpenSubKey("$RecordsKey\$([string]$Params.namespace)", $true)
    try {
        $actual = Find-BridgeValueName -Present ([string[]]$key.GetValueNames()) -Name $name
        if ($null -eq $actual) { return [ordered]@{ removed = $false; missing = $true } }
        $key.DeleteValue($actual)
    }
    finally {
        $key.Close()
    }
    return [ordered]@{ removed = $true; missing = $false }
}

function Assert-BridgeAdminFolder {
    # ensure_admin_dir's rule for one existing folder, through a handle that does not follow links.
    param(
        $Handle,
        [string]$Path,
        [bool]$Last
    )
    $shown = $Handle.Path
    if ($Handle.Info.IsLink) { throw "Refusing '$Path': '$shown' is a junction or symbolic link." }
    if (-not $Handle.Info.IsDirectory) { throw "Refusing '$Path': '$shown' is a file." }
    $descriptor = $Handle.ReadSecurity()
    if (-not (Test-BridgeTrustedSid -Sid $descriptor.Owner)) {
        throw ("Refusing '{0}': '{1}' is owned by {2}, not by Administrators or SYSTEM (a user created it, and may " +
            'control what is in it). Remove it and run again.') -f $Path, $shown, $descriptor.Owner.Value
    }
    $mask = $TakeControlRights
    $rights = 'take control of'
    if ($Last) {
        $mask = $WriteRights
        $rights = 'write to'
    }
    $others = @([LoopbreakerSafePath]::OthersAllowed($descriptor, $mask))
    if ($others.Count -gt 0) {
        throw "Refusing '$Path': $($others -join ', ') may $rights '$shown', which only administrators may change. Remove it and run again."
    }
    return $descriptor
}

function Invoke-BridgeOp_ensure_admin_dir {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $given = [string]$Params.path
    if (-not $given -or -not [System.IO.Path]::IsPathRooted($given) -or $given -notmatch '^[A-Za-z]:\\') {
        throw "'$given' is not an absolute local path."
    }
    $path = [LoopbreakerSafePath]::Normalize($given)
    $root = [System.IO.Path]::GetPathRoot($path)
    $parts = @($path.Substring($root.Length).Split([char[]]@('\'), [System.StringSplitOptions]::RemoveEmptyEntries))
    $wanted = New-BridgeSecurityDescriptor -Sddl $AdminDirSddl
    # Every folder on the way is held open (no delete sharing) until the operation ends.
    $held = New-Object -TypeName System.Collections.Generic.List[object]
    $created = $false
    $corrected = $false
    $enabler = New-BridgePrivilegeEnabler
    try {
        $current = $root.TrimEnd('\')
        for ($index = 0; $index -lt $parts.Count; $index++) {
            $current = $current + '\' + $parts[$index]
            $last = $index -eq $parts.Count - 1
            $handle = [LoopbreakerSafePath]::OpenDirectory($current, $last)
            if ($null -eq $handle) {
                if ($last) {
                    # Created with its security descriptor: there is no moment a user could open it.
                    [LoopbreakerSafePath]::CreateDirectoryWithSecurity($current, $wanted)
                    $created = $true
                }
                else {
                    [void][System.IO.Directory]::CreateDirectory($current)
                }
                $handle = [LoopbreakerSafePath]::OpenDirectory($current, $last)
                if ($null -eq $handle) { throw "Cannot create '$current'." }
            }
            $held.Add($handle)
            $descriptor = Assert-BridgeAdminFolder -Handle $handle -Path $given -Last $last
        }
        if ((Get-BridgeDescriptorSignature -Descriptor $descriptor) -cne (Get-BridgeDescriptorSignature -Descriptor $wanted)) {
            $held[$held.Count - 1].WriteSecurity($wanted, $true)
            $corrected = -not $created
        }
    }
    finally {
        foreach ($handle in $held) { $handle.Dispose() }
        $enabler.Dispose()
    }
    return [ordered]@{ created = $created; acl_corrected = $corrected }
}

function Open-BridgeVerifiedProgram {
    # run_as_user with sha256/signer: every folder on the way and the program itself held open so that
    # nothing on the path can be renamed, replaced or written until the task ends; verified through that.
    param(
        [string]$Executable,
        $ExpectedHash,
        $ExpectedSigner
    )
    $lease = [LoopbreakerSafePath]::Lease($Executable, [System.IO.Path]::GetPathRoot($Executable))
    $stream = $null
    try {
        # Opened without following a link (a link is refused) and held, read sharing only: the image loader can
        # open it, nobody can write, rename or delete it, or put a link in its place.
        $stream = [LoopbreakerSafePath]::OpenHeldFile($Executable, $lease)
        if ($ExpectedHash) {
            $sha = New-BridgeSha256
            try {
                $actual = ConvertTo-BridgeHex -Bytes $sha.ComputeHash($stream)
            }
            finally {
                $sha.Dispose()
            }
            $expected = ([string]$ExpectedHash).ToLowerInvariant()
            if ($actual -cne $expected) { throw "'$Executable' has SHA-256 $actual, expected $expected." }
        }
        if ($null -ne $ExpectedSigner) {
            $signature = Get-BridgeSignature -Path $Executable
            $problem = Get-BridgeSignerProblem -Signature $signature -Expected $ExpectedSigner -DisplayPath $Executable
            if ($null -ne $problem) { throw $problem }
        }
        return @{ Lease = $lease; Stream = $stream }
    }
    catch {
        if ($null -ne $stream) { $stream.Dispose() }
        $lease.Dispose()
        throw
    }
}

# ------------------------------------------------------------------ host-wide lock

function Enter-BridgeHostLock {
    # The named mutex every run that changes something holds; returns it, or the failure message.
    $administrators = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $AdministratorsSid
    $system = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $SystemSid
    $security = New-Object -TypeName System.Security.AccessControl.MutexSecurity
    $security.SetAccessRuleProtection($true, $false)
    foreach ($sid in @($administrators, $system)) {
        $security.AddAccessRule((New-Object -TypeName System.Security.AccessControl.MutexAccessRule -ArgumentList @(
                    $sid, [System.Security.AccessControl.MutexRights]::FullControl, [System.Security.AccessControl.AccessControlType]::Allow)))
    }
    $createdNew = $false
    try {
        $mutex = [System.Threading.Mutex]::new($false, $LockName, [ref]$createdNew, $security)
    }
    catch {
        return @{ Mutex = $null; Message = "Cannot open the host-wide lock ${LockName}: $(Get-BridgeErrorMessage -ErrorRecord $_). Nothing was changed." }
    }
    if (-not $createdNew) {
        # Anyone may create a Global\ mutex first; one a standard user made is theirs to hold forever.
        $owner = $mutex.GetAccessControl().GetOwner([System.Security.Principal.SecurityIdentifier])
        if (-not (Test-BridgeTrustedSid -Sid $owner)) {
            $mutex.Dispose()
            return @{ Mutex = $null; Message = "The host-wide lock $LockName was created by $($owner.Value), not by an administrator: refusing to use it. Nothing was changed." }
        }
    }
    $warning = $null
    try {
        $acquired = $mutex.WaitOne([timespan]::FromSeconds($LockTimeoutSeconds))
    }
    catch [System.Threading.AbandonedMutexException] {
        # The previous holder ended without releasing it: we own it now.
        $acquired = $true
        $warning = "The host-wide lock $LockName was abandoned by a run that ended without releasing it (another process); this run took it over."
    }
    if (-not $acquired) {
        $mutex.Dispose()
        return @{ Mutex = $null; Message = "Another run of loopbreaker.notion holds the host-wide lock $LockName (another process); gave up after $LockTimeoutSeconds s. Nothing was changed." }
    }
    return @{ Mutex = $mutex; Message = $null; Warning = $warning }
}

# ------------------------------------------------------------------------ batch

function Get-BridgeInputProblem {
    # Same checks and wording as validate_operations() in the vocabulary.
    param(
        $Operations
    )
    $seenProfiles = $false
    $index = 0
    foreach ($operation in $Operations) {
        if ($operation -isnot [System.Collections.IDictionary]) {
            return "operation ${index}: must be a dict"
        }
        $name = [string]$operation['op']
        if (-not $name -or -not $OperationParameters.ContainsKey($name) -or
            @($OperationParameters.Keys) -cnotcontains $name) {
            return "operation ${index}: unknown operation '$name'"
        }
        $allowed = @($OperationParameters[$name]) + $CommonParameters
        $keys = [string[]]@($operation.Keys | ForEach-Object { [string]$_ })
        $unknown = [string[]]@($keys | Where-Object { $allowed -cnotcontains $_ })
        if ($unknown.Count -gt 0) {
            [System.Array]::Sort($unknown, [System.StringComparer]::Ordinal)
            return "operation $index (${name}): unknown parameters $($unknown -join ', ')"
        }
        $required = @($OperationParameters[$name] | Where-Object { $OptionalParameters[$name] -cnotcontains $_ })
        $missing = @($required | Where-Object { $keys -cnotcontains $_ })
        if ($missing.Count -gt 0) {
            return "operation $index (${name}): missing parameters $($missing -join ', ')"
        }
        if ((ConvertTo-BridgeBool -Value $operation['each_profile']) -and -not $seenProfiles) {
            return "operation $index (${name}): each_profile needs an earlier get_profiles"
        }
        $seenProfiles = $seenProfiles -or $name -eq 'get_profiles'
        $index++
    }
    return $null
}

function Invoke-BridgeDispatch {
    param(
        [string]$Name,
        [hashtable]$Params,
        [hashtable]$Context
    )
    # A hive an operation loads is unloaded as soon as the operation ends; a failed unload fails the
    # operation (for an each_profile operation: that user's result), never only a warning.
    $Context.OperationMounts.Clear()
    try {
        $output = @(& "Invoke-BridgeOp_$Name" -Params $Params -Context $Context)
    }
    catch {
        $caught = $_
        $failures = Dismount-BridgeOperationHive -Context $Context
        foreach ($failure in $failures) { $Context.Warnings.Add($failure) }
        throw $caught
    }
    $failures = Dismount-BridgeOperationHive -Context $Context
    if ($failures.Count -gt 0) { throw ($failures -join ' ') }
    if ($output.Count -eq 0 -or $output[-1] -isnot [System.Collections.IDictionary]) {
        throw "internal error: operation $Name returned no result"
    }
    return $output[-1]
}

function Invoke-BridgeForProfile {
    param(
        [string]$Name,
        [hashtable]$Params,
        [System.Collections.IDictionary]$Entry,
        [hashtable]$Context
    )
    $substitutions = [ordered]@{ ProfilePath = $Entry['profile_path']; Sid = $Entry['sid'] }
    foreach ($folder in $Entry['folders'].Keys) {
        $substitutions[$folder] = $Entry['folders'][$folder]
    }
    try {
        $resolved = @{}
        foreach ($key in $Params.Keys) {
            $resolved[$key] = Resolve-BridgeTemplate -Value $Params[$key] -Substitutions $substitutions
        }
        $data = Invoke-BridgeDispatch -Name $Name -Params $resolved -Context $Context
        return [ordered]@{ status = 'ok'; data = $data; error = $null }
    }
    catch {
        return [ordered]@{ status = 'error'; data = $null; error = (Get-BridgeErrorMessage -ErrorRecord $_) }
    }
}

function Invoke-BridgeOperation {
    param(
        [System.Collections.IDictionary]$Operation,
        [hashtable]$Context
    )
    $name = [string]$Operation['op']
    $envelope = [ordered]@{ op = $name; group = $Operation['group']; status = 'ok'; data = $null; error = $null }
    $params = @{}
    foreach ($key in $Operation.Keys) {
        if ($CommonParameters -cnotcontains $key) { $params[$key] = $Operation[$key] }
    }
    try {
        if ($Context.CheckMode -and $MutatingOperations -contains $name) {
            throw 'refused in check mode'
        }
        if (ConvertTo-BridgeBool -Value $Operation['each_profile']) {
            $bySid = [ordered]@{}
            foreach ($entry in $Context.Profiles) {
                $bySid[[string]$entry['sid']] = Invoke-BridgeForProfile -Name $name -Params $params -Entry $entry -Context $Context
            }
            $envelope['data'] = [ordered]@{ by_sid = $bySid }
        }
        else {
            $envelope['data'] = Invoke-BridgeDispatch -Name $name -Params $params -Context $Context
        }
    }
    catch {
        $envelope['status'] = 'error'
        $envelope['data'] = $null
        $envelope['error'] = Get-BridgeErrorMessage -ErrorRecord $_
    }
    return $envelope
}

function Invoke-BridgeBatch {
    param(
        [System.Collections.IList]$Operations,
        [hashtable]$Context
    )
    $results = New-BridgeList
    $failedGroups = New-Object -TypeName 'System.Collections.Generic.HashSet[string]'
    try {
        foreach ($operation in $Operations) {
            $group = $operation['group']
            if ($null -ne $group -and $failedGroups.Contains([string]$group)) {
                $results.Add([ordered]@{ op = $operation['op']; group = $group; status = 'skipped'; data = $null; error = $null })
                continue
            }
            $result = Invoke-BridgeOperation -Operation $operation -Context $Context
            if ($result['op'] -eq 'get_profiles' -and $result['status'] -eq 'ok') {
                # each_profile runs for the profiles get_profiles selected (every real user when not filtered).
                $Context.Profiles = @($result['data']['profiles'] | Where-Object { $_['selected'] })
            }
            if ($result['status'] -eq 'error' -and $null -ne $group) {
                [void]$failedGroups.Add([string]$group)
            }
            $results.Add($result)
        }
    }
    finally {
        # Every hive this batch loaded is unloaded, whatever happened above.
        Dismount-BridgeHive -Context $Context
    }
    return , $results
}

function Test-BridgeChanged {
    # Same rule as _changed() in the Python twin.
    param(
        $Data
    )
    if ($null -eq $Data -or $Data -isnot [System.Collections.IDictionary]) { return $false }
    if ($Data.Contains('by_sid')) {
        foreach ($entry in $Data['by_sid'].Values) {
            if ($entry['status'] -eq 'ok' -and (Test-BridgeChanged -Data $entry['data'])) { return $true }
        }
        return $false
    }
    foreach ($flag in $ChangeFlags) {
        if ($Data.Contains($flag) -and $Data[$flag]) { return $true }
    }
    foreach ($flag in $ChangeLists) {
        if ($Data.Contains($flag) -and $null -ne $Data[$flag] -and @($Data[$flag]).Count -gt 0) { return $true }
    }
    return $false
}

# ------------------------------------------------------------------------- main

$spec = @{
    options = @{
        operations = @{ type = 'list'; elements = 'dict'; required = $true }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

$problem = Get-BridgeInputProblem -Operations $module.Params.operations
if ($null -ne $problem) {
    $module.FailJson($problem)
}
$operations = New-BridgeList
foreach ($operation in $module.Params.operations) {
    $operations.Add((ConvertTo-BridgeValue -Value $operation))
}

$context = @{
    CheckMode = $module.CheckMode
    Mounts = [ordered]@{}
    HivesLoaded = New-BridgeList
    HivesUnloaded = New-BridgeList
    OperationMounts = New-Object -TypeName System.Collections.Generic.List[string]
    Warnings = New-Object -TypeName System.Collections.Generic.List[string]
    Profiles = New-BridgeList
}

# A batch that may change something holds the host-wide lock for its whole run; one that cannot get it
# fails before any operation ran (read-only batches and check mode need no lock).
$lock = $null
if (-not $module.CheckMode -and @($operations | Where-Object { $MutatingOperations -contains [string]$_['op'] }).Count -gt 0) {
    $lock = Enter-BridgeHostLock
    if ($null -eq $lock.Mutex) {
        $module.FailJson($lock.Message)
    }
    if ($lock.Warning) { $context.Warnings.Add($lock.Warning) }
}
try {
    $results = Invoke-BridgeBatch -Operations $operations -Context $context
}
finally {
    if ($null -ne $lock -and $null -ne $lock.Mutex) {
        try {
            $lock.Mutex.ReleaseMutex()
        }
        catch {
            $context.Warnings.Add("Could not release the host-wide lock ${LockName}: $(Get-BridgeErrorMessage -ErrorRecord $_)")
        }
        $lock.Mutex.Dispose()
    }
}

$changed = $false
foreach ($result in $results) {
    if ($result['status'] -eq 'ok' -and $MutatingOperations -contains $result['op'] -and
        (Test-BridgeChanged -Data $result['data'])) {
        $changed = $true
    }
}
foreach ($warning in $context.Warnings) {
    $module.Warn($warning)
}

$module.Result.changed = $changed
$module.Result.results = $results
$module.Result.hives_loaded = $context.HivesLoaded
$module.Result.hives_unloaded = $context.HivesUnloaded
$module.ExitJson()
