#!powershell

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil Ansible.Privilege
#AnsibleRequires -CSharpUtil ansible_collections.loopbreaker.notion.plugins.module_utils.SafePath

# Internal module of loopbreaker.notion: the Windows bridge. The action plugins
# send it a batch of primitive operations (plugins/module_utils/_bridge_vocabulary.py)
# and get data back; it knows nothing about Notion. Its Python twin is
# plugins/plugin_utils/_simulated_windows.py and a contract test keeps the
# tables below identical to the vocabulary. Windows PowerShell 5.1 compatible.

# Every parameter of every operation: required first, then optional, in vocabulary order.
$OperationParameters = @{
    get_profiles = @('shell_folders')
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
    get_profiles = @()
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
$AdministratorsSid = 'S-1-5-32-544'
$SystemSid = 'S-1-5-18'
$FirewallProfileBits = [ordered]@{ domain = 1; private = 2; public = 4 }
$FirewallProfileNames = @{ domain = 'Domain'; private = 'Private'; public = 'Public' }
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

# ---------------------------------------------------------------- generic helpers

function New-BridgeList {
    return , (New-Object -TypeName System.Collections.Generic.List[object])
}

function ConvertTo-BridgeBool {
    param(
        $Value
    )
    if ($null -eq $Value) { return $false }
    if ($Value -is [bool]) { return $Value }
    if ($Value -is [string]) {
        return @('true', 'yes', 'on', 'y', 't', '1') -contains $Value.Trim().ToLowerInvariant()
    }
    return [bool]$Value
}

function ConvertTo-BridgeValue {
    # Module input arrives as Hashtable/Dictionary and object[]/ArrayList; make it uniform.
    param(
        $Value
    )
    if ($null -eq $Value) { return $null }
    if ($Value -is [System.Collections.IDictionary]) {
        $copy = [ordered]@{}
        foreach ($key in $Value.Keys) {
            $copy[[string]$key] = ConvertTo-BridgeValue -Value $Value[$key]
        }
        return $copy
    }
    if ($Value -is [System.Collections.IList]) {
        $list = New-BridgeList
        foreach ($item in $Value) {
            $list.Add((ConvertTo-BridgeValue -Value $item))
        }
        return , $list
    }
    return $Value
}

function Resolve-BridgeTemplate {
    # {ProfilePath}, {Sid} and {<shell folder>} in strings, also inside lists and dicts.
    param(
        $Value,
        [System.Collections.IDictionary]$Substitutions
    )
    if ($Value -is [string]) {
        $text = $Value
        foreach ($name in $Substitutions.Keys) {
            $text = $text.Replace('{' + $name + '}', [string]$Substitutions[$name])
        }
        return $text
    }
    if ($Value -is [System.Collections.IDictionary]) {
        $copy = [ordered]@{}
        foreach ($key in $Value.Keys) {
            $copy[$key] = Resolve-BridgeTemplate -Value $Value[$key] -Substitutions $Substitutions
        }
        return $copy
    }
    if ($Value -is [System.Collections.IList]) {
        $list = New-BridgeList
        foreach ($item in $Value) {
            $list.Add((Resolve-BridgeTemplate -Value $item -Substitutions $Substitutions))
        }
        return , $list
    }
    return $Value
}

function Get-BridgeErrorMessage {
    param(
        [System.Management.Automation.ErrorRecord]$ErrorRecord
    )
    $exception = $ErrorRecord.Exception
    # .NET calls from PowerShell wrap the real error in 'Exception calling "X" with "n" argument(s)'.
    while ($exception -is [System.Management.Automation.MethodInvocationException] -and
        $null -ne $exception.InnerException) {
        $exception = $exception.InnerException
    }
    return $exception.Message
}

function Test-BridgeNameEqual {
    param(
        [string]$Left,
        [string]$Right
    )
    return [string]::Equals($Left, $Right, [System.StringComparison]::OrdinalIgnoreCase)
}

function ConvertTo-BridgeWildcardRegex {
    param(
        [string]$Pattern
    )
    $escaped = [regex]::Escape($Pattern).Replace('\*', '.*').Replace('\?', '.')
    return New-Object -TypeName System.Text.RegularExpressions.Regex -ArgumentList @(
        "^$escaped$", [System.Text.RegularExpressions.RegexOptions]::IgnoreCase)
}

function Format-BridgeTime {
    param(
        [datetime]$Time
    )
    return $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Import-BridgeModule {
    # Imported explicitly when its command is not available yet, rather than relying on autoloading.
    param(
        [string]$Name,
        [string]$Command
    )
    if (-not (Get-Command -Name $Command -ErrorAction SilentlyContinue)) {
        Import-Module -Name $Name -ErrorAction Stop
    }
}

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
    # The HKU subkey holding the user's hive: HKU\<sid> when the user is logged on,
    # else NTUSER.DAT loaded under HKU\loopbreaker_<sid> until the batch ends.
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
        $hiveFile = Join-Path -Path (Get-BridgeProfileImagePath -Sid $Sid) -ChildPath 'NTUSER.DAT'
        if (-not [System.IO.File]::Exists($hiveFile)) {
            throw "Cannot load the hive of '$Sid': '$hiveFile' does not exist."
        }
        $reg = Invoke-BridgeReg -Arguments @('load', "HKU\$mount", $hiveFile)
        if ($reg.ExitCode -ne 0) {
            throw "Cannot load the hive of '$Sid' from '$hiveFile': $($reg.Output)"
        }
    }
    $Context.Mounts[$Sid] = $mount
    $Context.HivesLoaded.Add($Sid)
    return $mount
}

function Dismount-BridgeHive {
    param(
        [hashtable]$Context
    )
    foreach ($sid in @($Context.Mounts.Keys)) {
        $mount = $Context.Mounts[$sid]
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
        if ($null -eq $failure) {
            $Context.HivesUnloaded.Add($sid)
        }
        else {
            $Context.Warnings.Add("Could not unload the hive of '$sid' from HKU\${mount}: $failure")
        }
        $Context.Mounts.Remove($sid)
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

function Test-BridgePath {
    param(
        [string]$Path
    )
    return [System.IO.File]::Exists($Path) -or [System.IO.Directory]::Exists($Path)
}

function Get-BridgeReparseAncestor {
    # The first existing directory above Path (below the drive root) that is a junction or symbolic
    # link, or $null. The bridge runs as an administrator over paths inside users' profiles: a user
    # who turns a folder of theirs into a junction must not make it read, move, create or re-ACL
    # things elsewhere (someone else's data, or a system folder).
    param(
        [string]$Path
    )
    $current = [System.IO.Path]::GetDirectoryName($Path.TrimEnd('\'))
    while ($current -and $current -ne [System.IO.Path]::GetPathRoot($current)) {
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
                $regex = ConvertTo-BridgeWildcardRegex -Pattern $segment
                # Unreadable directories (e.g. the 'Default User' junction) just match nothing.
                $children = @(Get-ChildItem -LiteralPath $parent -Force -ErrorAction SilentlyContinue)
                foreach ($child in $children) {
                    if ($regex.IsMatch($child.Name)) { $next.Add($child.FullName) }
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
        catch {
            continue
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
    if ([System.IO.Directory]::Exists($anchor)) { $matched.Add($anchor.TrimEnd('\')) }
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
                $children = @(Get-ChildItem -LiteralPath $parent -Force -ErrorAction SilentlyContinue)
                foreach ($child in $children) {
                    if ($regex.IsMatch($child.Name)) { $next.Add([System.IO.Path]::Combine($parent, $child.Name)) }
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
    if ($null -eq $Within) { return , (Resolve-BridgePattern -Pattern $Pattern) }
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

function Expand-BridgeProfileValue {
    # %USERPROFILE% and %USERNAME% are the profile's own, not the connection user's.
    param(
        [string]$Value,
        [string]$ProfilePath,
        [string]$UserName
    )
    $text = [regex]::Replace($Value, '%USERPROFILE%', $ProfilePath.Replace('$', '$$'), 'IgnoreCase')
    $text = [regex]::Replace($text, '%USERNAME%', $UserName.Replace('$', '$$'), 'IgnoreCase')
    return [Environment]::ExpandEnvironmentVariables($text)
}

function Get-BridgeProfile {
    param(
        [string]$Sid,
        [System.Collections.IDictionary]$ShellFolders,
        [hashtable]$Context
    )
    $profilePath = ''
    $listKey = $RegistryMachine.OpenSubKey("$ProfileListKey\$Sid")
    if ($null -ne $listKey) {
        try {
            $profilePath = [string]$listKey.GetValue('ProfileImagePath')
        }
        finally {
            $listKey.Close()
        }
    }
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

    $hiveError = $null
    $folderKey = $null
    try {
        $mount = Get-BridgeUserHive -Sid $Sid -Context $Context
        $folderKey = $RegistryUsers.OpenSubKey("$mount\$ShellFoldersKey")
    }
    catch {
        $hiveError = Get-BridgeErrorMessage -ErrorRecord $_
    }
    $folders = [ordered]@{}
    $sources = [ordered]@{}
    try {
        foreach ($name in $ShellFolders.Keys) {
            $raw = $null
            if ($null -ne $folderKey) {
                $raw = $folderKey.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            }
            if ($raw) {
                $folders[$name] = Expand-BridgeProfileValue -Value ([string]$raw) -ProfilePath $profilePath -UserName $userName
                $sources[$name] = 'registry'
            }
            else {
                $folders[$name] = [System.IO.Path]::Combine($profilePath, [string]$ShellFolders[$name])
                $sources[$name] = 'default'
            }
        }
    }
    finally {
        if ($null -ne $folderKey) { $folderKey.Close() }
    }
    return [ordered]@{
        sid = $Sid
        username = $userName
        account = $account
        profile_path = $profilePath
        loaded = (Test-BridgeRegistryKey -Root $RegistryUsers -Path $Sid)
        special = -not $Sid.StartsWith('S-1-5-21-')
        folders = $folders
        folder_source = $sources
        error = $hiveError
    }
}

# ------------------------------------------------------------------- firewall
# Rules are read from the stores the firewall service keeps them in, one registry value per rule
# (value name = the rule's unique Name, data = the rule grammar of [MS-GPFAS] 2.2.2.10,
# "v2.x|Action=Block|Dir=Out|App=...|"): one pass over each store, no per-rule CIM query (on a
# 1,091-rule machine one Get-NetFirewallRule name lookup took 48 s, one HNetCfg.FwPolicy2 pass
# 17 s). The COM API cannot be the source: INetFwRule.Name is the display name, not the unique
# name our rules and the record are keyed on, and it does not say which store a rule is from.
$FirewallStores = [ordered]@{
    local = 'SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules'
    group_policy = 'SOFTWARE\Policies\Microsoft\WindowsFirewall\FirewallRules'
    mdm = 'SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\Mdm\FirewallRules'
}
# Per profile, where Group Policy and the MDM Firewall CSP keep "apply local firewall rules" (AllowLocalPolicyMerge).
$FirewallMergeKeys = [ordered]@{
    domain = @('SOFTWARE\Policies\Microsoft\WindowsFirewall\DomainProfile',
        'SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\Mdm\DomainProfile')
    private = @('SOFTWARE\Policies\Microsoft\WindowsFirewall\PrivateProfile',
        'SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\Mdm\PrivateProfile')
    public = @('SOFTWARE\Policies\Microsoft\WindowsFirewall\PublicProfile',
        'SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\Mdm\PublicProfile')
}
$FirewallProtocolNames = @{ '1' = 'icmpv4'; '6' = 'tcp'; '17' = 'udp'; '58' = 'icmpv6' }
$FirewallProtocolArguments = @{ any = 'Any'; tcp = 'TCP'; udp = 'UDP'; icmpv4 = 'ICMPv4'; icmpv6 = 'ICMPv6' }
$FirewallInterfaceTypes = @{ lan = 'wired'; wireless = 'wireless'; remoteaccess = 'remote_access' }
$FirewallInterfaceTypeArguments = @{ wired = 'Wired'; wireless = 'Wireless'; remote_access = 'RemoteAccess' }
$FirewallEdgeArguments = @{ block = 'Block'; allow = 'Allow'; defer_to_app = 'DeferToApp'; defer_to_user = 'DeferToUser' }

function Import-BridgeNetSecurity {
    Import-BridgeModule -Name NetSecurity -Command New-NetFirewallRule
}

function ConvertFrom-BridgeFirewallRuleText {
    param(
        [string]$Name,
        [string]$Text,
        [string]$Store
    )
    $rule = [ordered]@{
        name = $Name; display_name = ''; direction = 'in'; action = 'allow'; profiles = (New-BridgeList)
        program = $null; enabled = $false; description = ''; protocol = 'any'; local_ports = (New-BridgeList)
        remote_ports = (New-BridgeList); local_addresses = (New-BridgeList); remote_addresses = (New-BridgeList)
        service = ''; interface_types = (New-BridgeList); interfaces = (New-BridgeList); edge_traversal = 'block'
        grouping = ''; store = $Store
    }
    foreach ($field in $Text.Split('|')) {
        $equals = $field.IndexOf('=')
        if ($equals -lt 1) { continue }
        $key = $field.Substring(0, $equals)
        $value = $field.Substring($equals + 1)
        switch -regex ($key) {
            '^Action$' { $rule.action = $value.ToLowerInvariant() }
            '^Active$' { $rule.enabled = ($value -eq 'TRUE') }
            '^Dir$' { $rule.direction = $value.ToLowerInvariant() }
            '^Protocol$' {
                $rule.protocol = $value
                if ($FirewallProtocolNames.ContainsKey($value)) { $rule.protocol = $FirewallProtocolNames[$value] }
            }
            '^Profile$' {
                $profileName = $value.ToLowerInvariant()
                if ($FirewallProfileBits.Contains($profileName) -and -not $rule.profiles.Contains($profileName)) {
                    $rule.profiles.Add($profileName)
                }
            }
            '^LPort' { $rule.local_ports.Add($value) }
            '^RPort' { $rule.remote_ports.Add($value) }
            '^LA[46]' { $rule.local_addresses.Add($value) }
            '^RA[46]' { $rule.remote_addresses.Add($value) }
            '^App$' { $rule.program = $value }
            '^Svc$' { $rule.service = $value }
            '^Name$' { $rule.display_name = $value }
            '^Desc$' { $rule.description = $value }
            '^EmbedCtxt$' { $rule.grouping = $value }
            '^IFType$' {
                $type = $value.ToLowerInvariant()
                if ($FirewallInterfaceTypes.ContainsKey($type)) { $rule.interface_types.Add($FirewallInterfaceTypes[$type]) }
            }
            '^IF$' { $rule.interfaces.Add($value) }
            '^Edge$' { if ($value -eq 'TRUE' -and $rule.edge_traversal -eq 'block') { $rule.edge_traversal = 'allow' } }
            '^Defer$' {
                if ($value -eq 'App') { $rule.edge_traversal = 'defer_to_app' }
                elseif ($value -eq 'User') { $rule.edge_traversal = 'defer_to_user' }
            }
        }
    }
    # No Profile field means every profile.
    if ($rule.profiles.Count -eq 0) { foreach ($profileName in $FirewallProfileBits.Keys) { $rule.profiles.Add($profileName) } }
    return $rule
}

function Get-BridgeFirewallStoreRules {
    param(
        [string]$Store,
        [string[]]$Names
    )
    # All rules of one store, or only the named ones; a store that does not exist has none.
    $rules = New-BridgeList
    $key = $null
    try {
        $key = $RegistryMachine.OpenSubKey($FirewallStores[$Store])
        if ($null -eq $key) { return , $rules }
        $valueNames = $Names
        if ($null -eq $valueNames) { $valueNames = $key.GetValueNames() }
        foreach ($valueName in $valueNames) {
            $text = $key.GetValue($valueName, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            if ($text -isnot [string]) { continue }
            $rules.Add((ConvertFrom-BridgeFirewallRuleText -Name $valueName -Text $text -Store $Store))
        }
    }
    catch [System.Security.SecurityException], [System.UnauthorizedAccessException] {
        throw "Access denied reading the $Store firewall store HKLM\$($FirewallStores[$Store]): $($_.Exception.Message)"
    }
    finally {
        if ($null -ne $key) { $key.Close() }
    }
    return , $rules
}

function Get-BridgeLocalRulesApply {
    $applies = [ordered]@{}
    foreach ($profileName in $FirewallMergeKeys.Keys) {
        $applies[$profileName] = $true
        foreach ($path in $FirewallMergeKeys[$profileName]) {
            $key = $null
            try {
                $key = $RegistryMachine.OpenSubKey($path)
                if ($null -eq $key) { continue }
                $value = $key.GetValue('AllowLocalPolicyMerge', $null)
                # Either policy source turning local rules off wins.
                if ($null -ne $value -and [int64]$value -eq 0) { $applies[$profileName] = $false }
            }
            finally {
                if ($null -ne $key) { $key.Close() }
            }
        }
    }
    return $applies
}

function Get-BridgeLocalFirewallRule {
    param(
        [string]$Name
    )
    # One registry value, not a CIM query over every rule of the machine.
    $found = Get-BridgeFirewallStoreRules -Store local -Names @($Name)
    if ($found.Count -eq 0) { return $null }
    return $found[0]
}

function Get-BridgeInterfaceAlias {
    param(
        [string[]]$Interfaces
    )
    # The store keeps interfaces by GUID; the cmdlets take their alias.
    $aliases = New-BridgeList
    if ($Interfaces.Count -eq 0) { return , $aliases }
    $adapters = @(Get-NetAdapter -IncludeHidden -ErrorAction Stop)
    foreach ($interface in $Interfaces) {
        $adapter = $adapters | Where-Object { (Test-BridgeNameEqual -Left ([string]$_.InterfaceGuid) -Right $interface) -or
            (Test-BridgeNameEqual -Left ([string]$_.Name) -Right $interface) } | Select-Object -First 1
        if ($null -eq $adapter) { throw "The network interface '$interface' of this rule no longer exists." }
        $aliases.Add([string]$adapter.Name)
    }
    return , $aliases
}

function Get-BridgeStringList {
    param(
        $Value
    )
    $list = New-BridgeList
    foreach ($item in @($Value)) {
        if ($null -ne $item -and [string]$item -ne '') { $list.Add([string]$item) }
    }
    return , $list
}

# ---------------------------------------------------- file identity and downloads

function ConvertTo-BridgeHex {
    param(
        [byte[]]$Bytes
    )
    return ([System.BitConverter]::ToString($Bytes)).Replace('-', '').ToLowerInvariant()
}

function New-BridgeSha256 {
    # The CNG/CAPI implementation: SHA256Managed, what SHA256::Create() gives, throws under FIPS policy.
    return New-Object -TypeName System.Security.Cryptography.SHA256CryptoServiceProvider
}

function Get-BridgeFileSha256 {
    # Shares read/write/delete, so a running program's image can be hashed.
    param(
        [string]$Path
    )
    $share = [System.IO.FileShare]'ReadWrite, Delete'
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, $share)
    try {
        $sha = New-BridgeSha256
        try {
            return ConvertTo-BridgeHex -Bytes $sha.ComputeHash($stream)
        }
        finally {
            $sha.Dispose()
        }
    }
    finally {
        $stream.Dispose()
    }
}

function Get-BridgeFileVersion {
    # ProductVersion is what installers and the Uninstall key report; FileVersion is the fallback.
    param(
        [string]$Path
    )
    $info = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($Path)
    foreach ($candidate in @($info.ProductVersion, $info.FileVersion)) {
        if ($null -eq $candidate) { continue }
        $text = ([string]$candidate).Replace([string][char]0, '').Trim()
        if ($text) { return $text }
    }
    return $null
}

function Get-BridgeDistinguishedNameValue {
    # The first value of one attribute of an X.500 subject as .NET formats it:
    # 'CN="Notion Labs, Inc", O="Notion Labs, Inc", L=San Francisco, C=US'. Read RDN by RDN,
    # so that 'O=' inside a quoted value of another attribute is not mistaken for the attribute.
    param(
        [string]$Subject,
        [string]$Attribute
    )
    $rdn = New-Object -TypeName System.Text.RegularExpressions.Regex -ArgumentList @(
        '\G\s*([^=,+]+)=("(?:[^"]|"")*"|[^,+]*)\s*(?:[,+]|$)')
    foreach ($match in $rdn.Matches($Subject)) {
        if (-not (Test-BridgeNameEqual -Left $match.Groups[1].Value.Trim() -Right $Attribute)) { continue }
        $value = $match.Groups[2].Value.Trim()
        if ($value.Length -ge 2 -and $value.StartsWith('"') -and $value.EndsWith('"')) {
            $value = $value.Substring(1, $value.Length - 2).Replace('""', '"')
        }
        if ($value) { return $value }
        return $null
    }
    return $null
}

function Get-BridgeSignature {
    # The Authenticode status and what identifies the signer: subject O= (CN= without one), the whole subject,
    # the issuing CA's CN= and the signing certificate's EKU OIDs (module_utils/_signature.py decides with them).
    param(
        [string]$Path
    )
    $signature = Get-AuthenticodeSignature -LiteralPath $Path -ErrorAction Stop
    $signer = $null
    $subject = $null
    $issuer = $null
    $ekus = New-BridgeList
    $certificate = $signature.SignerCertificate
    if ($null -ne $certificate) {
        $subject = [string]$certificate.Subject
        $signer = Get-BridgeDistinguishedNameValue -Subject $subject -Attribute 'O'
        if ($null -eq $signer) { $signer = Get-BridgeDistinguishedNameValue -Subject $subject -Attribute 'CN' }
        $issuer = Get-BridgeDistinguishedNameValue -Subject ([string]$certificate.Issuer) -Attribute 'CN'
        foreach ($extension in @($certificate.Extensions)) {
            if ($extension -is [System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension]) {
                foreach ($oid in @($extension.EnhancedKeyUsages)) { $ekus.Add([string]$oid.Value) }
            }
        }
    }
    # Status is a SignatureStatus: Valid, NotSigned, HashMismatch, NotTrusted, UnknownError, ...
    return [ordered]@{ status = [string]$signature.Status; signer = $signer; subject = $subject; issuer = $issuer; ekus = $ekus }
}

function ConvertTo-BridgeOrganizationKey {
    # module_utils/_signature.py normalise_organization: NFC, whitespace runs as one space, no trailing
    # punctuation, A-Z in lower case. 'Notion Labs, Inc' and 'Notion Labs, Inc.' give the same key.
    # Not NFKC (fullwidth or double-struck letters are another name a CA may verify for someone else)
    # and not the invariant culture's lower case (it maps U+0130, capital I with dot above, to 'i'; Python does not).
    param(
        [string]$Value
    )
    if ($null -eq $Value) { return '' }
    $text = $Value.Normalize([System.Text.NormalizationForm]::FormC)
    $text = ([regex]::Replace($text, '\s+', ' ')).Trim()
    $text = [regex]::Replace($text, '[\s.,;:]+$', '')
    $key = New-Object -TypeName System.Text.StringBuilder -ArgumentList $text.Length
    foreach ($character in $text.ToCharArray()) {
        $code = [int]$character
        if ($code -ge 65 -and $code -le 90) { $code += 32 }
        [void]$key.Append([char]$code)
    }
    return $key.ToString()
}

function Get-BridgeSignerProblem {
    # Why a signature is not the expected one ({organization, issuers, ekus}), or $null: the rule and the
    # messages of module_utils/_signature.py signature_problem, which the twin and the planners use.
    param(
        $Signature,
        $Expected,
        [string]$DisplayPath
    )
    if ($null -eq $Expected.organization -or [string]$Expected.organization -eq '' -or @($Expected.issuers).Count -eq 0) {
        throw 'signer must be {organization, issuers, ekus}: who signed, through which certificate authorities, for which uses.'
    }
    $status = 'NotSigned'
    if ($null -ne $Signature -and $Signature.status) { $status = [string]$Signature.status }
    if ($status -cne 'Valid') {
        return "'$DisplayPath' has no valid signature (status $status)."
    }
    $signer = $Signature.signer
    if ((ConvertTo-BridgeOrganizationKey -Value $signer) -cne (ConvertTo-BridgeOrganizationKey -Value ([string]$Expected.organization))) {
        return "'$DisplayPath' is signed by $(Format-BridgeQuoted -Value $signer), expected $(Format-BridgeQuoted -Value ([string]$Expected.organization))."
    }
    $issuers = @(@($Expected.issuers) | ForEach-Object { [string]$_ })
    $issuer = [string]$Signature.issuer
    $matched = $false
    foreach ($pattern in $issuers) {
        # -like: * and ? wildcards, case-insensitive, as fnmatch on lower-cased names in the twin.
        if ($issuer.Trim() -and $issuer.Trim() -like $pattern.Trim()) { $matched = $true }
    }
    if (-not $matched) {
        return "'$DisplayPath' is signed by $(Format-BridgeQuoted -Value $signer) through $(Format-BridgeQuoted -Value $Signature.issuer), which is not one of the expected issuers ($($issuers -join ', '))."
    }
    $present = @(@($Signature.ekus) | ForEach-Object { [string]$_ })
    $missing = @(@($Expected.ekus) | Where-Object { $present -notcontains [string]$_ } | ForEach-Object { [string]$_ })
    if ($missing.Count -gt 0) {
        return "'$DisplayPath' is signed by $(Format-BridgeQuoted -Value $signer) with a certificate without the EKU $($missing -join ', ')."
    }
    return $null
}

function Format-BridgeQuoted {
    # 'text', or None: the twin's messages use Python's repr for these values.
    param(
        $Value
    )
    if ($null -eq $Value) { return 'None' }
    return "'" + [string]$Value + "'"
}

function Get-BridgeFileInfo {
    param(
        [string]$Path
    )
    if (-not [System.IO.File]::Exists($Path)) {
        return [ordered]@{ path = $Path; exists = $false; bytes = $null; version = $null; sha256 = $null; signature = $null }
    }
    $file = New-Object -TypeName System.IO.FileInfo -ArgumentList $Path
    return [ordered]@{
        path = [string]$file.FullName
        exists = $true
        bytes = [int64]$file.Length
        version = Get-BridgeFileVersion -Path $file.FullName
        sha256 = Get-BridgeFileSha256 -Path $file.FullName
        signature = Get-BridgeSignature -Path $file.FullName
    }
}

function Enable-BridgeTls12 {
    # Windows PowerShell 5.1 often starts with only Ssl3 and Tls 1.0 enabled. SystemDefault (0, .NET 4.7+)
    # already lets the OS offer TLS 1.2 and later, and OR-ing a flag into it would pin the protocols.
    $current = [int][System.Net.ServicePointManager]::SecurityProtocol
    $tls12 = [int][System.Net.SecurityProtocolType]::Tls12
    if ($current -ne 0 -and ($current -band $tls12) -eq 0) {
        [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]($current -bor $tls12)
    }
}

function Save-BridgeDownload {
    # Streams the response into Path (which must not exist) and hashes it on the way.
    param(
        [System.Uri]$Uri,
        [string]$Path,
        [int]$TimeoutSeconds
    )
    Enable-BridgeTls12
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $request = [System.Net.WebRequest]::Create($Uri)
    $request.Timeout = $TimeoutSeconds * 1000
    $request.ReadWriteTimeout = $TimeoutSeconds * 1000
    $request.UserAgent = 'loopbreaker.notion win_bridge'
    if ($null -ne $request.Proxy) {
        $request.Proxy.Credentials = [System.Net.CredentialCache]::DefaultCredentials
    }
    $response = $request.GetResponse()
    try {
        $expected = [int64]$response.ContentLength
        $total = [int64]0
        $source = $response.GetResponseStream()
        $target = New-Object -TypeName System.IO.FileStream -ArgumentList @($Path, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
        $sha = New-BridgeSha256
        try {
            $buffer = New-Object -TypeName byte[] -ArgumentList 81920
            while ($true) {
                $read = $source.Read($buffer, 0, $buffer.Length)
                if ($read -le 0) { break }
                $target.Write($buffer, 0, $read)
                [void]$sha.TransformBlock($buffer, 0, $read, $null, 0)
                $total += $read
                if ($watch.Elapsed.TotalSeconds -gt $TimeoutSeconds) {
                    throw "The download did not finish within $TimeoutSeconds s."
                }
            }
            [void]$sha.TransformFinalBlock($buffer, 0, 0)
            $hash = ConvertTo-BridgeHex -Bytes $sha.Hash
            $target.Flush()
        }
        finally {
            $sha.Dispose()
            $target.Dispose()
            $source.Dispose()
        }
    }
    finally {
        $response.Close()
    }
    if ($expected -ge 0 -and $total -ne $expected) {
        throw "The download ended after $total of $expected bytes."
    }
    return @{ Bytes = $total; Sha256 = $hash }
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
    $listKey = $RegistryMachine.OpenSubKey($ProfileListKey)
    if ($null -eq $listKey) { throw "HKLM\$ProfileListKey does not exist." }
    try {
        $sids = $listKey.GetSubKeyNames()
    }
    finally {
        $listKey.Close()
    }
    $profiles = New-BridgeList
    foreach ($sid in $sids) {
        $profiles.Add((Get-BridgeProfile -Sid $sid -ShellFolders $shellFolders -Context $Context))
    }
    return [ordered]@{ profiles = $profiles }
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

function Invoke-BridgeOp_list_firewall_rules {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $patterns = $null
    if ($null -ne $Params.programs) {
        $patterns = @(@($Params.programs) | ForEach-Object { ConvertTo-BridgeWildcardRegex -Pattern ([string]$_) })
    }
    $rules = New-BridgeList
    foreach ($store in $FirewallStores.Keys) {
        foreach ($rule in (Get-BridgeFirewallStoreRules -Store $store)) {
            # Programs as stored: expanding them here would use this administrator's environment.
            if ($null -ne $patterns) {
                $text = [string]$rule.program
                $hit = $false
                foreach ($regex in $patterns) {
                    if ($regex.IsMatch($text)) { $hit = $true; break }
                }
                if (-not $hit) { continue }
            }
            $rules.Add($rule)
        }
    }
    return [ordered]@{ rules = $rules; local_rules_apply = (Get-BridgeLocalRulesApply) }
}

function Get-BridgeFirewallRuleArguments {
    param(
        [System.Collections.IDictionary]$Wanted,
        [string[]]$Fields
    )
    # NetSecurity parameters for the given fields of a wanted rule; a field at "any" is sent as Any.
    $arguments = @{}
    foreach ($field in $Fields) {
        switch ($field) {
            'display_name' { $arguments.NewDisplayName = $Wanted.display_name }
            'direction' { $arguments.Direction = 'Outbound'; if ($Wanted.direction -eq 'in') { $arguments.Direction = 'Inbound' } }
            'action' { $arguments.Action = 'Block'; if ($Wanted.action -eq 'allow') { $arguments.Action = 'Allow' } }
            'profiles' {
                $names = @($Wanted.profiles.Split(',') | ForEach-Object { $FirewallProfileNames[$_] })
                $arguments.Profile = [string[]]$names
                if ($names.Count -eq 3) { $arguments.Profile = 'Any' }
            }
            'program' { $arguments.Program = $Wanted.program; if (-not $Wanted.program) { $arguments.Program = 'Any' } }
            'enabled' { $arguments.Enabled = 'False'; if ($Wanted.enabled) { $arguments.Enabled = 'True' } }
            'description' { $arguments.Description = $Wanted.description }
            'protocol' {
                $arguments.Protocol = $Wanted.protocol
                if ($FirewallProtocolArguments.ContainsKey($Wanted.protocol)) { $arguments.Protocol = $FirewallProtocolArguments[$Wanted.protocol] }
            }
            'local_ports' { $arguments.LocalPort = [string[]]@('Any'); if ($Wanted.local_ports.Count) { $arguments.LocalPort = [string[]]$Wanted.local_ports } }
            'remote_ports' { $arguments.RemotePort = [string[]]@('Any'); if ($Wanted.remote_ports.Count) { $arguments.RemotePort = [string[]]$Wanted.remote_ports } }
            'local_addresses' {
                $arguments.LocalAddress = [string[]]@('Any')
                if ($Wanted.local_addresses.Count) { $arguments.LocalAddress = [string[]]$Wanted.local_addresses }
            }
            'remote_addresses' {
                $arguments.RemoteAddress = [string[]]@('Any')
                if ($Wanted.remote_addresses.Count) { $arguments.RemoteAddress = [string[]]$Wanted.remote_addresses }
            }
            'service' { $arguments.Service = 'Any'; if ($Wanted.service) { $arguments.Service = $Wanted.service } }
            'interface_types' {
                $arguments.InterfaceType = 'Any'
                if ($Wanted.interface_types.Count) {
                    $arguments.InterfaceType = (@($Wanted.interface_types | ForEach-Object { $FirewallInterfaceTypeArguments[$_] }) -join ',')
                }
            }
            'interfaces' { $arguments.InterfaceAlias = [string[]](Get-BridgeInterfaceAlias -Interfaces $Wanted.interfaces) }
            'edge_traversal' { $arguments.EdgeTraversalPolicy = $FirewallEdgeArguments[$Wanted.edge_traversal] }
            'grouping' { $arguments.Group = $Wanted.grouping }
        }
    }
    return $arguments
}

function Get-BridgeFirewallCreateFields {
    param(
        [System.Collections.IDictionary]$Wanted
    )
    # What a new rule needs: the core settings, and every other field that is not at its "any".
    $defaults = @{ program = ''; description = ''; protocol = 'any'; service = ''; edge_traversal = 'block'; grouping = '' }
    $fields = New-BridgeList
    foreach ($field in $Wanted.Keys) {
        if ($field -eq 'display_name') { continue }
        $value = $Wanted[$field]
        if ($defaults.ContainsKey($field)) {
            if ([string]$value -cne $defaults[$field]) { $fields.Add($field) }
        }
        elseif ($value -is [System.Collections.IEnumerable] -and $value -isnot [string]) {
            if (@($value).Count -gt 0) { $fields.Add($field) }
        }
        else {
            $fields.Add($field)
        }
    }
    return [string[]]$fields
}

function Invoke-BridgeOp_set_firewall_rule {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    Import-BridgeNetSecurity
    $name = [string]$Params.name
    $direction = [string]$Params.direction
    $action = [string]$Params.action
    if (@('in', 'out') -notcontains $direction) { throw "direction must be 'in' or 'out', not '$direction'." }
    if (@('allow', 'block') -notcontains $action) { throw "action must be 'allow' or 'block', not '$action'." }
    $profiles = @(@($Params.profiles) | ForEach-Object { ([string]$_).ToLowerInvariant() } | Sort-Object -Unique)
    if ($profiles.Count -eq 0) { throw 'profiles must name at least one of domain, private, public.' }
    foreach ($profileName in $profiles) {
        if (-not $FirewallProfileBits.Contains($profileName)) {
            throw "Unknown firewall profile '$profileName' (use domain, private, public)."
        }
    }
    $protocol = 'any'
    if ($Params.protocol) { $protocol = ([string]$Params.protocol).ToLowerInvariant() }
    if (-not $FirewallProtocolArguments.ContainsKey($protocol) -and $protocol -notmatch '^\d{1,3}$') {
        throw "protocol must be any, tcp, udp, icmpv4, icmpv6 or a number, not '$protocol'."
    }
    $edge = 'block'
    if ($Params.edge_traversal) { $edge = [string]$Params.edge_traversal }
    if (-not $FirewallEdgeArguments.ContainsKey($edge)) { throw "edge_traversal '$edge' is not one of block, allow, defer_to_app, defer_to_user." }
    $interfaceTypes = Get-BridgeStringList -Value $Params.interface_types
    foreach ($type in $interfaceTypes) {
        if (-not $FirewallInterfaceTypeArguments.ContainsKey($type)) { throw "interface type '$type' is not one of wired, wireless, remote_access." }
    }
    $wanted = [ordered]@{
        display_name = [string]$Params.display_name; direction = $direction; action = $action
        profiles = ($profiles -join ','); program = [string]$Params.program
        enabled = (ConvertTo-BridgeBool -Value $Params.enabled); description = [string]$Params.description
        protocol = $protocol; local_ports = (Get-BridgeStringList -Value $Params.local_ports)
        remote_ports = (Get-BridgeStringList -Value $Params.remote_ports)
        local_addresses = (Get-BridgeStringList -Value $Params.local_addresses)
        remote_addresses = (Get-BridgeStringList -Value $Params.remote_addresses)
        service = [string]$Params.service; interface_types = $interfaceTypes
        interfaces = (Get-BridgeStringList -Value $Params.interfaces); edge_traversal = $edge
        grouping = [string]$Params.grouping
    }
    $current = Get-BridgeLocalFirewallRule -Name $name
    if ($null -eq $current) {
        $arguments = Get-BridgeFirewallRuleArguments -Wanted $wanted -Fields (Get-BridgeFirewallCreateFields -Wanted $wanted)
        New-NetFirewallRule -Name $name -DisplayName $wanted.display_name -PolicyStore PersistentStore @arguments | Out-Null
        return [ordered]@{ created = $true; updated = $false }
    }
    # Only the fields that differ are sent: disabling a block rule must not touch what we do not model.
    $changed = New-BridgeList
    foreach ($field in $wanted.Keys) {
        $now = $current[$field]
        $want = $wanted[$field]
        if ($field -eq 'profiles') {
            $now = (@($now | Sort-Object) -join ',')  # $want is already the sorted, joined list
        }
        elseif ($field -eq 'interface_types') {
            $now = (@($now | Sort-Object) -join ',')
            $want = (@($want | Sort-Object) -join ',')
        }
        elseif ($now -is [System.Collections.IEnumerable] -and $now -isnot [string]) {
            $now = (@($now) -join '|')
            $want = (@($want) -join '|')
        }
        if ($field -eq 'program') {
            if (-not (Test-BridgeNameEqual -Left ([string]$now) -Right ([string]$want))) { $changed.Add($field) }
        }
        elseif ([string]$now -cne [string]$want) { $changed.Add($field) }
    }
    if ($changed.Count -eq 0) { return [ordered]@{ created = $false; updated = $false } }
    if ($changed.Contains('grouping') -or ($changed.Contains('interfaces') -and $wanted.interfaces.Count -eq 0)) {
        # Set-NetFirewallRule can change neither a rule's group nor clear its interfaces: put it back whole.
        $arguments = Get-BridgeFirewallRuleArguments -Wanted $wanted -Fields (Get-BridgeFirewallCreateFields -Wanted $wanted)
        Remove-NetFirewallRule -Name $name -PolicyStore PersistentStore
        New-NetFirewallRule -Name $name -DisplayName $wanted.display_name -PolicyStore PersistentStore @arguments | Out-Null
        return [ordered]@{ created = $false; updated = $true }
    }
    $arguments = Get-BridgeFirewallRuleArguments -Wanted $wanted -Fields ([string[]]$changed)
    Set-NetFirewallRule -Name $name -PolicyStore PersistentStore @arguments
    return [ordered]@{ created = $false; updated = $true }
}

function Invoke-BridgeOp_remove_firewall_rule {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    Import-BridgeNetSecurity
    $rule = Get-BridgeLocalFirewallRule -Name ([string]$Params.name)
    if ($null -eq $rule) {
        # Only the local store is changed here: a policy rule of that name is the policy owner's.
        return [ordered]@{ removed = $false; missing = $true }
    }
    Remove-NetFirewallRule -Name $rule.name -PolicyStore PersistentStore
    return [ordered]@{ removed = $true; missing = $false }
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

function Invoke-BridgeOp_list_packages {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    Import-BridgeModule -Name Appx -Command Get-AppxPackage
    $seen = New-Object -TypeName 'System.Collections.Generic.HashSet[string]' -ArgumentList ([System.StringComparer]::OrdinalIgnoreCase)
    $packages = New-BridgeList
    foreach ($name in @($Params.names)) {
        foreach ($package in @(Get-AppxPackage -AllUsers -Name ([string]$name) -ErrorAction Stop)) {
            $fullName = [string]$package.PackageFullName
            if (-not $fullName -or -not $seen.Add($fullName)) { continue }
            # user_sids: only users for whom it is installed (a provisioned package is also 'Staged' for
            # S-1-5-18); user_states: every user's state (Installed, Staged, Paused, ...), as Windows lists it.
            $sids = New-BridgeList
            $states = [ordered]@{}
            foreach ($entry in @($package.PackageUserInformation)) {
                if ($null -eq $entry -or $null -eq $entry.UserSecurityId) { continue }
                $sid = [string]$entry.UserSecurityId.Sid
                if (-not $sid) { continue }
                $states[$sid] = [string]$entry.InstallState
                if ([string]$entry.InstallState -eq 'Installed' -and -not $sids.Contains($sid)) { $sids.Add($sid) }
            }
            $location = $null
            if ($package.InstallLocation) { $location = [string]$package.InstallLocation }
            $packages.Add([ordered]@{
                    name = [string]$package.Name
                    package_full_name = $fullName
                    family_name = [string]$package.PackageFamilyName
                    version = [string]$package.Version
                    install_location = $location
                    user_sids = $sids
                    publisher = [string]$package.Publisher
                    publisher_id = [string]$package.PublisherId
                    architecture = ([string]$package.Architecture).ToLowerInvariant()
                    signature_kind = [string]$package.SignatureKind
                    status = [string]$package.Status
                    user_states = $states
                })
        }
    }
    $result = [ordered]@{ packages = $packages }
    if (ConvertTo-BridgeBool -Value $Params.include_provisioned) {
        $result.provisioned = Get-BridgeProvisionedPackages -Names @($Params.names)
    }
    return $result
}

function Get-BridgeProvisionedPackages {
    # Packages staged for all users (DISM's image view, elevated): matched by display name like list_packages.
    param(
        [object[]]$Names
    )
    Import-BridgeModule -Name Dism -Command Get-AppxProvisionedPackage
    # DISM reports the architecture as the ProcessorArchitecture number.
    $architectures = @{ '0' = 'x86'; '5' = 'arm'; '9' = 'x64'; '11' = 'neutral'; '12' = 'arm64' }
    $staged = New-BridgeList
    foreach ($package in @(Get-AppxProvisionedPackage -Online -ErrorAction Stop)) {
        $display = [string]$package.DisplayName
        $matched = $false
        foreach ($name in $Names) {
            if ($display -like [string]$name) { $matched = $true; break }
        }
        if (-not $matched) { continue }
        # InstallLocation is the manifest's path with %SYSTEMDRIVE%: the package folder is its parent.
        $location = $null
        if ($package.InstallLocation) {
            $location = [System.Environment]::ExpandEnvironmentVariables([string]$package.InstallLocation)
            if ($location -like '*\AppxManifest.xml') { $location = [System.IO.Path]::GetDirectoryName($location) }
        }
        $architecture = [string]$package.Architecture
        if ($architectures.ContainsKey($architecture)) { $architecture = $architectures[$architecture] }
        $staged.Add([ordered]@{
                display_name = $display
                package_name = [string]$package.PackageName
                family_name = $display + '_' + [string]$package.PublisherId
                version = [string]$package.Version
                publisher_id = [string]$package.PublisherId
                architecture = $architecture.ToLowerInvariant()
                install_location = $location
            })
    }
    return , $staged
}

function Get-BridgePublisherId {
    # How Windows names a publisher in a package family name: SHA-256 of the UTF-16LE publisher DN, its
    # first 64 bits and one zero bit, in Crockford's base32 (13 characters).
    param(
        [string]$Publisher
    )
    $sha = New-BridgeSha256
    try {
        $digest = $sha.ComputeHash([System.Text.Encoding]::Unicode.GetBytes($Publisher))
    }
    finally {
        $sha.Dispose()
    }
    $bits = New-Object -TypeName System.Text.StringBuilder
    for ($index = 0; $index -lt 8; $index++) {
        [void]$bits.Append([System.Convert]::ToString([int]$digest[$index], 2).PadLeft(8, '0'))
    }
    [void]$bits.Append('0')
    $text = $bits.ToString()
    $alphabet = '0123456789abcdefghjkmnpqrstvwxyz'
    $id = New-Object -TypeName System.Text.StringBuilder
    for ($index = 0; $index -lt 65; $index += 5) {
        [void]$id.Append($alphabet[[System.Convert]::ToInt32($text.Substring($index, 5), 2)])
    }
    return $id.ToString()
}

function Read-BridgePackageIdentity {
    # The Identity of AppxManifest.xml (and the first Application's Executable), read from the held
    # stream of the package, never from the path again. The manifest is untrusted input: no DTD, no
    # external entities, bounded size.
    param(
        [System.IO.Stream]$Stream,
        [string]$Path
    )
    Add-Type -AssemblyName System.IO.Compression
    $maxManifestBytes = 4MB
    $Stream.Position = 0
    $archive = New-Object -TypeName System.IO.Compression.ZipArchive -ArgumentList @($Stream, [System.IO.Compression.ZipArchiveMode]::Read, $true)
    try {
        $entry = $archive.GetEntry('AppxManifest.xml')
        if ($null -eq $entry) {
            throw "'$Path' is not an MSIX package: it has no AppxManifest.xml (bundles are not supported)."
        }
        if ($entry.Length -gt $maxManifestBytes) { throw "'$Path' has an AppxManifest.xml larger than 4 MiB." }
        $content = $entry.Open()
        try {
            $buffer = New-Object -TypeName byte[] -ArgumentList ([int]$entry.Length)
            $read = 0
            while ($read -lt $buffer.Length) {
                $count = $content.Read($buffer, $read, $buffer.Length - $read)
                if ($count -le 0) { break }
                $read += $count
            }
        }
        finally {
            $content.Dispose()
        }
    }
    finally {
        $archive.Dispose()
    }
    $settings = New-Object -TypeName System.Xml.XmlReaderSettings
    $settings.DtdProcessing = [System.Xml.DtdProcessing]::Prohibit
    $settings.XmlResolver = $null
    $memory = New-Object -TypeName System.IO.MemoryStream -ArgumentList @($buffer, 0, $read)
    $reader = [System.Xml.XmlReader]::Create($memory, $settings)
    try {
        $document = New-Object -TypeName System.Xml.XmlDocument
        $document.XmlResolver = $null
        $document.Load($reader)
    }
    catch {
        throw "'$Path' has an AppxManifest.xml that is not valid XML: $(Get-BridgeErrorMessage -ErrorRecord $_)"
    }
    finally {
        $reader.Dispose()
        $memory.Dispose()
    }
    $namespaces = New-Object -TypeName System.Xml.XmlNamespaceManager -ArgumentList $document.NameTable
    $namespaces.AddNamespace('m', 'http://schemas.microsoft.com/appx/manifest/foundation/windows10')
    $identity = $document.SelectSingleNode('/m:Package/m:Identity', $namespaces)
    if ($null -eq $identity) { throw "'$Path' has no Identity in its AppxManifest.xml." }
    $name = [string]$identity.GetAttribute('Name')
    $publisher = [string]$identity.GetAttribute('Publisher')
    $version = [string]$identity.GetAttribute('Version')
    $architecture = ([string]$identity.GetAttribute('ProcessorArchitecture')).ToLowerInvariant()
    if (-not $architecture) { $architecture = 'neutral' }
    $resourceId = [string]$identity.GetAttribute('ResourceId')
    if (-not $name -or -not $publisher -or -not $version) {
        throw "'$Path' has an incomplete Identity in its AppxManifest.xml."
    }
    $application = $document.SelectSingleNode('/m:Package/m:Applications/m:Application', $namespaces)
    $executable = $null
    if ($null -ne $application -and $application.GetAttribute('Executable')) {
        $executable = [string]$application.GetAttribute('Executable')
    }
    $publisherId = Get-BridgePublisherId -Publisher $publisher
    return [ordered]@{
        name = $name
        publisher = $publisher
        version = $version
        architecture = $architecture
        executable = $executable
        publisher_id = $publisherId
        family_name = $name + '_' + $publisherId
        package_full_name = '{0}_{1}_{2}_{3}_{4}' -f $name, $version, $architecture, $resourceId, $publisherId
    }
}

function Open-BridgeVerifiedPackage {
    # verify_package and provision_package: the package and every folder on the way held open (no write,
    # rename or delete sharing) from the check until the caller disposes of them, verified through that.
    param(
        [string]$Path,
        $ExpectedFamily,
        $ExpectedHash
    )
    if (-not [System.IO.Path]::IsPathRooted($Path)) { throw "'$Path' is not an absolute path." }
    if (-not [System.IO.File]::Exists($Path)) { throw "Cannot verify '$Path': the file does not exist." }
    $lease = [LoopbreakerSafePath]::Lease($Path, [System.IO.Path]::GetPathRoot($Path))
    $stream = $null
    try {
        # Opened without following a link (a link is refused) and held, read sharing only: DISM can read it,
        # nobody can write, rename or delete it, or put a link in its place, meanwhile.
        $stream = [LoopbreakerSafePath]::OpenHeldFile($Path, $lease)
        $sha = New-BridgeSha256
        try {
            $actual = ConvertTo-BridgeHex -Bytes $sha.ComputeHash($stream)
        }
        finally {
            $sha.Dispose()
        }
        if ($ExpectedHash) {
            $expected = ([string]$ExpectedHash).ToLowerInvariant()
            if ($actual -cne $expected) { throw "'$Path' has SHA-256 $actual, expected $expected." }
        }
        # Get-AuthenticodeSignature knows MSIX/AppX through its subject interface package; by name is safe
        # here, the file cannot change while it is held.
        $signature = Get-BridgeSignature -Path $Path
        if ($signature.status -cne 'Valid') {
            throw "'$Path' has no valid signature (status $($signature.status))."
        }
        $signerSubject = $null
        $authenticode = Get-AuthenticodeSignature -LiteralPath $Path -ErrorAction Stop
        if ($null -ne $authenticode.SignerCertificate) { $signerSubject = [string]$authenticode.SignerCertificate.Subject }
        $identity = Read-BridgePackageIdentity -Stream $stream -Path $Path
        if ($ExpectedFamily -and -not (Test-BridgeNameEqual -Left $identity.family_name -Right ([string]$ExpectedFamily))) {
            throw ("'{0}' is the package family {1} (publisher {2}), expected {3}." -f
                $Path, $identity.family_name, $identity.publisher, [string]$ExpectedFamily)
        }
        $info = [ordered]@{
            path = $Path
            bytes = [int64]$stream.Length
            sha256 = $actual
            signature = $signature
            signer_subject = $signerSubject
            identity = $identity
        }
        return @{ Lease = $lease; Stream = $stream; Info = $info }
    }
    catch {
        if ($null -ne $stream) { $stream.Dispose() }
        $lease.Dispose()
        throw
    }
}

function Invoke-BridgeOp_verify_package {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $held = Open-BridgeVerifiedPackage -Path ([string]$Params.path) -ExpectedFamily $Params.family_name -ExpectedHash $Params.sha256
    try {
        return $held.Info
    }
    finally {
        $held.Stream.Dispose()
        $held.Lease.Dispose()
    }
}

function Invoke-BridgeOp_provision_package {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    if (-not $Params.sha256) { throw 'provision_package needs the SHA-256 of the package: nothing unverified is provisioned.' }
    if (-not $Params.family_name) { throw 'provision_package needs the family name the package must have.' }
    $held = Open-BridgeVerifiedPackage -Path ([string]$Params.path) -ExpectedFamily $Params.family_name -ExpectedHash $Params.sha256
    try {
        $identity = $held.Info.identity
        $wanted = [version]$identity.version
        # One list comes back (not enumerated into the pipeline): assigned, then walked.
        $provisioned = Get-BridgeProvisionedPackages -Names @($identity.name)
        foreach ($staged in $provisioned) {
            if (-not (Test-BridgeNameEqual -Left $staged.family_name -Right $identity.family_name)) { continue }
            if (Test-BridgeNameEqual -Left $staged.package_name -Right $identity.package_full_name) {
                return [ordered]@{ package_name = $identity.package_full_name; version = $identity.version; changed = $false }
            }
            if ([version]$staged.version -gt $wanted) {
                throw ('Deployment failed with HRESULT: 0x80073D06, The package could not be installed because a ' +
                    'higher version of this package is already installed.')
            }
        }
        Import-BridgeModule -Name Dism -Command Add-AppxProvisionedPackage
        # -SkipLicense: a sideloaded (non-Store) package has no license file. Windows checks the signature
        # chain and that the manifest publisher is the signing certificate's subject, and refuses a
        # lower version than an installed one, with its own HRESULT.
        $null = Add-AppxProvisionedPackage -Online -PackagePath $held.Info.path -SkipLicense -ErrorAction Stop
        return [ordered]@{ package_name = $identity.package_full_name; version = $identity.version; changed = $true }
    }
    finally {
        $held.Stream.Dispose()
        $held.Lease.Dispose()
    }
}

function Invoke-BridgeOp_remove_provisioned_package {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $packageName = [string]$Params.package_name
    Import-BridgeModule -Name Dism -Command Get-AppxProvisionedPackage
    $found = @(Get-AppxProvisionedPackage -Online -ErrorAction Stop | Where-Object {
            Test-BridgeNameEqual -Left ([string]$_.PackageName) -Right $packageName })
    if ($found.Count -eq 0) { return [ordered]@{ removed = $false; missing = $true } }
    # Users who have it registered keep it and their data; only later logons no longer get it.
    $null = Remove-AppxProvisionedPackage -Online -PackageName $packageName -ErrorAction Stop
    return [ordered]@{ removed = $true; missing = $false }
}

# probe_network and read_file_tails: the diagnose module's primitives. Plain .NET sockets, so each
# step (name resolution, TCP or proxy CONNECT, TLS, HTTP, WebSocket) is timed and reported apart.
$BridgeWinHttpProxySource = @'
using System;
using System.Runtime.InteropServices;
public static class BridgeWinHttpProxy {
    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct AutoProxyOptions {
        public int Flags; public int AutoDetectFlags; public string AutoConfigUrl;
        public IntPtr Reserved1; public int Reserved2; public bool AutoLogonIfChallenged;
    }
    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct ProxyInfo { public int AccessType; public IntPtr Proxy; public IntPtr Bypass; }
    [DllImport("winhttp.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    static extern IntPtr WinHttpOpen(string agent, int accessType, string proxy, string bypass, int flags);
    [DllImport("winhttp.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    static extern bool WinHttpGetProxyForUrl(IntPtr session, string url, ref AutoProxyOptions options, out ProxyInfo info);
    [DllImport("winhttp.dll")] static extern bool WinHttpCloseHandle(IntPtr handle);
    [DllImport("kernel32.dll")] static extern IntPtr GlobalFree(IntPtr mem);
    // The proxy WinHTTP's auto-proxy picks for url (PAC URL, or WPAD when pacUrl is empty); "" = direct.
    public static string ForUrl(string url, string pacUrl) {
        IntPtr session = WinHttpOpen("loopbreaker.notion", 1, null, null, 0);
        if (session == IntPtr.Zero) throw new System.ComponentModel.Win32Exception();
        try {
            AutoProxyOptions options = new AutoProxyOptions();
            if (String.IsNullOrEmpty(pacUrl)) { options.Flags = 1; options.AutoDetectFlags = 3; }
            else { options.Flags = 2; options.AutoConfigUrl = pacUrl; }
            options.AutoLogonIfChallenged = true;
            ProxyInfo info;
            if (!WinHttpGetProxyForUrl(session, url, ref options, out info)) throw new System.ComponentModel.Win32Exception();
            string proxy = info.Proxy == IntPtr.Zero ? "" : Marshal.PtrToStringUni(info.Proxy);
            if (info.Proxy != IntPtr.Zero) GlobalFree(info.Proxy);
            if (info.Bypass != IntPtr.Zero) GlobalFree(info.Bypass);
            return proxy;
        } finally { WinHttpCloseHandle(session); }
    }
}
'@

function Get-BridgeProxyForUrl {
    # The proxy (host:port) a setting gives for an https URL, $null for direct; manual settings follow
    # WinINET's bypass rules, PAC and auto-detect are evaluated by WinHTTP's auto-proxy.
    param([hashtable]$Setting, [string]$Url, [string]$HostName)
    $mode = [string]$Setting.mode
    if ($mode -eq 'pac' -or $mode -eq 'auto_detect') {
        if (-not ('BridgeWinHttpProxy' -as [type])) { Add-Type -TypeDefinition $BridgeWinHttpProxySource }
        $chosen = [BridgeWinHttpProxy]::ForUrl($Url, [string]$Setting.pac_url)
        $first = @($chosen -split '[;\s]+' | Where-Object { $_ })
        if ($first.Count -eq 0) { return $null }
        return ($first[0] -replace '^[a-z]+=', '')
    }
    if ($mode -ne 'manual' -or -not $Setting.server) { return $null }
    foreach ($pattern in @(([string]$Setting.bypass) -split '[;,\s]+' | Where-Object { $_ })) {
        if ($pattern -eq '<local>') {
            if (-not $HostName.Contains('.')) { return $null }
            continue
        }
        if ($HostName -like $pattern) { return $null }
    }
    $server = [string]$Setting.server
    if ($server.Contains('=')) {
        $byScheme = @{}
        foreach ($part in $server.Split(';')) {
            $pair = $part.Split('=', 2)
            if ($pair.Count -eq 2) { $byScheme[$pair[0].Trim().ToLowerInvariant()] = $pair[1].Trim() }
        }
        $server = if ($byScheme.https) { $byScheme.https } else { [string]$byScheme.http }
    }
    return ($server -replace '^[a-z]+://', '').TrimEnd('/')
}

function Read-BridgeHttpResponse {
    param($Stream, [int]$TimeoutMs)
    $Stream.ReadTimeout = $TimeoutMs
    $buffer = New-Object -TypeName byte[] -ArgumentList 4096
    $data = New-Object -TypeName System.IO.MemoryStream
    $text = ''
    while (-not $text.Contains("`r`n`r`n") -and $data.Length -lt 65536) {
        $read = $Stream.Read($buffer, 0, $buffer.Length)
        if ($read -le 0) { break }
        $data.Write($buffer, 0, $read)
        $text = [System.Text.Encoding]::GetEncoding(28591).GetString($data.ToArray())
    }
    $head, $body = $text -split "`r`n`r`n", 2
    $lines = @($head -split "`r`n")
    $parts = @($lines[0] -split ' ', 3)
    if ($parts.Count -lt 2 -or -not $parts[0].StartsWith('HTTP/')) { throw "not an HTTP response: $($lines[0])" }
    $headers = @{}
    foreach ($line in $lines[1..($lines.Count - 1)]) {
        $pair = $line -split ':', 2
        if ($pair.Count -eq 2) { $headers[$pair[0].Trim().ToLowerInvariant()] = $pair[1].Trim() }
    }
    return @{ status = [int]$parts[1]; headers = $headers; body = [string]$body }
}

function Send-BridgeHttpRequest {
    param($Stream, [string]$HostName, [string]$Path, [hashtable]$Extra)
    $lines = @("GET $Path HTTP/1.1", "Host: $HostName", 'User-Agent: loopbreaker.notion-diagnose', 'Accept: */*')
    foreach ($name in @($Extra.Keys)) { $lines += "${name}: $($Extra[$name])" }
    $bytes = [System.Text.Encoding]::ASCII.GetBytes(($lines -join "`r`n") + "`r`n`r`n")
    $Stream.Write($bytes, 0, $bytes.Length)
}

function Open-BridgeTlsStream {
    # A TLS stream to HostName:Port, direct or through a CONNECT proxy; fills Steps; throws "<step>|<message>".
    param([string]$HostName, [int]$Port, $Proxy, [hashtable]$Resolve, [hashtable]$Steps, [int]$TimeoutMs,
          [bool]$Verify, $Trusted)
    $client = New-Object -TypeName System.Net.Sockets.TcpClient
    if ($Proxy) {
        $Steps.dns = [ordered]@{ ok = $true; by = 'proxy' }
        $proxyHost, $proxyPort = $Proxy -split ':', 2
        $task = $client.ConnectAsync($proxyHost, [int]$proxyPort)
        if (-not $task.Wait($TimeoutMs) -or -not $client.Connected) { throw "proxy|proxy $Proxy unreachable" }
        $raw = $client.GetStream()
        $connect = [System.Text.Encoding]::ASCII.GetBytes("CONNECT ${HostName}:$Port HTTP/1.1`r`nHost: ${HostName}:$Port`r`n`r`n")
        $raw.Write($connect, 0, $connect.Length)
        $answer = Read-BridgeHttpResponse -Stream $raw -TimeoutMs $TimeoutMs
        if ($answer.status -ne 200) { throw "connect|proxy $Proxy refused CONNECT ${HostName}:$Port with HTTP $($answer.status)" }
        $Steps.tcp = [ordered]@{ ok = $true; via = $Proxy }
    }
    else {
        try {
            $addresses = if ($Resolve.ContainsKey($HostName)) { @($Resolve[$HostName]) } else {
                @([System.Net.Dns]::GetHostAddresses($HostName) | ForEach-Object { $_.IPAddressToString }) }
        }
        catch { throw "dns|$HostName does not resolve: $($_.Exception.Message)" }
        $Steps.dns = [ordered]@{ ok = $true; addresses = $addresses }
        $task = $client.ConnectAsync([string]$addresses[0], $Port)
        if (-not $task.Wait($TimeoutMs) -or -not $client.Connected) { throw "tcp|TCP ${HostName}:$Port failed" }
        $Steps.tcp = [ordered]@{ ok = $true; address = [string]$addresses[0] }
        $raw = $client.GetStream()
    }
    $seen = @{ issuer = ''; errors = 'None' }
    $callback = [System.Net.Security.RemoteCertificateValidationCallback] {
        param($sender, $certificate, $chain, $errors)
        $seen.issuer = [string]$certificate.Issuer
        if ($Trusted -and $chain.ChainElements.Count -gt 0) {
            # ca_bundle: a chain ending in that CA counts as verified.
            $root = $chain.ChainElements[$chain.ChainElements.Count - 1].Certificate
            if ($Trusted.Thumbprint -eq $root.Thumbprint) { $errors = $errors -band -bnot 4 }
        }
        $seen.errors = [string]$errors
        return (-not $Verify) -or ($errors -eq 0)
    }
    $tls = New-Object -TypeName System.Net.Security.SslStream -ArgumentList $raw, $false, $callback
    try { $tls.AuthenticateAsClient($HostName) }
    catch { throw "tls|TLS to ${HostName}: $($seen.errors) (issuer $($seen.issuer))|$($seen.issuer)" }
    $Steps.tls = [ordered]@{ ok = $true; verified = $Verify; issuer = $seen.issuer; version = [string]$tls.SslProtocol }
    return $tls
}

function Invoke-BridgeOp_probe_network {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $timeoutMs = 1000 * $(if ($Params.timeout_seconds) { [int]$Params.timeout_seconds } else { 5 })
    $resolve = @{}
    if ($Params.resolve) { foreach ($name in @($Params.resolve.Keys)) { $resolve[[string]$name] = [string]$Params.resolve[$name] } }
    $trusted = $null
    if ($Params.ca_bundle) { $trusted = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList ([string]$Params.ca_bundle) }
    $started = [System.Diagnostics.Stopwatch]::StartNew()
    $results = New-BridgeList
    $proxies = @($Params.proxies)
    if ($proxies.Count -eq 0) { $proxies = @(@{ mode = 'direct' }) }
    for ($index = 0; $index -lt $proxies.Count; $index++) {
        foreach ($endpoint in @($Params.endpoints)) {
            $hostName = [string]$endpoint.host
            $port = if ($endpoint.port) { [int]$endpoint.port } else { 443 }
            $kind = if ($endpoint.kind) { [string]$endpoint.kind } else { 'https' }
            $path = if ($endpoint.path) { [string]$endpoint.path } elseif ($kind -eq 'engineio') { '/primus-v8/?EIO=4&transport=polling' } else { '/' }
            $steps = [ordered]@{}
            $watch = [System.Diagnostics.Stopwatch]::StartNew()
            $result = [ordered]@{ proxy_index = $index; name = $(if ($endpoint.name) { [string]$endpoint.name } else { $hostName })
                host = $hostName; port = $port; kind = $kind; proxy = $null; ok = $false; failed_step = $null; error = $null; steps = $steps }
            try {
                $proxy = Get-BridgeProxyForUrl -Setting ([hashtable]$proxies[$index]) -Url "https://$hostName/" -HostName $hostName
                $result.proxy = $proxy
                $tls = Open-BridgeTlsStream -HostName $hostName -Port $port -Proxy $proxy -Resolve $resolve -Steps $steps -TimeoutMs $timeoutMs -Verify $true -Trusted $trusted
                Send-BridgeHttpRequest -Stream $tls -HostName $hostName -Path $path -Extra @{}
                $answer = Read-BridgeHttpResponse -Stream $tls -TimeoutMs $timeoutMs
                $tls.Dispose()
                if ($answer.status -ge 500 -or $answer.status -eq 403 -or $answer.status -eq 407) { throw "http|$hostName$path answered HTTP $($answer.status)" }
                $steps.http = [ordered]@{ ok = $true; status = $answer.status }
                if ($kind -eq 'engineio') {
                    if (-not $answer.body.StartsWith('0{')) { throw "polling|$hostName$path is not an Engine.IO v4 handshake" }
                    $open = ConvertFrom-Json -InputObject $answer.body.Substring(1)
                    $steps.polling = [ordered]@{ ok = $true; sid = [string]$open.sid; upgrades = @($open.upgrades) }
                    $inner = [ordered]@{}
                    $ws = Open-BridgeTlsStream -HostName $hostName -Port $port -Proxy $proxy -Resolve $resolve -Steps $inner -TimeoutMs $timeoutMs -Verify $true -Trusted $trusted
                    $key = [Convert]::ToBase64String([guid]::NewGuid().ToByteArray())
                    Send-BridgeHttpRequest -Stream $ws -HostName $hostName -Path (($path -replace 'transport=polling', 'transport=websocket') + "&sid=$($open.sid)") -Extra @{
                        Upgrade = 'websocket'; Connection = 'Upgrade'; 'Sec-WebSocket-Key' = $key; 'Sec-WebSocket-Version' = '13' }
                    $upgrade = Read-BridgeHttpResponse -Stream $ws -TimeoutMs $timeoutMs
                    $ws.Dispose()
                    if ($upgrade.status -ne 101) { throw "websocket|WebSocket upgrade to $hostName refused: HTTP $($upgrade.status)" }
                    $steps.websocket = [ordered]@{ ok = $true; status = 101 }
                }
                $result.ok = $true
            }
            catch {
                $step, $message, $issuer = ([string]$_.Exception.Message) -split '\|', 3
                if (-not $message) { $step, $message = 'io', $step }
                $steps[$step] = [ordered]@{ ok = $false; error = $message }
                if ($issuer) { $steps[$step].issuer = $issuer; $steps[$step].verified = $false }
                $result.failed_step = $step
                $result.error = $message
            }
            $result.elapsed_ms = [int]$watch.ElapsedMilliseconds
            $results.Add($result)
        }
    }
    return [ordered]@{ results = $results; elapsed_ms = [int]$started.ElapsedMilliseconds }
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
        foreach ($item in @(Get-Item -Path ([string]$pattern) -Force -ErrorAction SilentlyContinue)) {
            if ($item.PSIsContainer) { continue }
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

function Assert-BridgeWithin {
    # WITHIN of the vocabulary, for the operations that take it here: the path must lie below the anchor.
    param(
        [string]$Path,
        $Within
    )
    if ($null -eq $Within) { return }
    $anchor = ([string]$Within).TrimEnd('\') + '\'
    $full = [System.IO.Path]::GetFullPath($Path)
    if (-not $full.StartsWith($anchor, [System.StringComparison]::OrdinalIgnoreCase)) {
        throw "Refusing '$Path': it is not inside '$Within'."
    }
}

function Read-BridgeBytes {
    # A regular file's bytes with shared access (a running browser's open file can be read).
    param(
        [string]$Path,
        [int64]$Budget
    )
    $attributes = [System.IO.File]::GetAttributes($Path)
    if ($attributes -band [System.IO.FileAttributes]::ReparsePoint) {
        throw "it holds '$Path', a junction or symbolic link; not followed"
    }
    $share = [System.IO.FileShare]'ReadWrite, Delete'
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, $share)
    try {
        if ($stream.Length -gt $Budget) { throw "it is larger than the $Budget bytes left to read" }
        $buffer = New-Object -TypeName byte[] -ArgumentList ([int]$stream.Length)
        $offset = 0
        while ($offset -lt $buffer.Length) {
            $read = $stream.Read($buffer, $offset, $buffer.Length - $offset)
            if ($read -le 0) { break }
            $offset += $read
        }
        return , $buffer
    }
    finally {
        $stream.Dispose()
    }
}

function Invoke-BridgeOp_read_trees {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $maxBytes = [int64](64 * 1048576)
    if ($null -ne $Params.max_bytes) { $maxBytes = [int64]$Params.max_bytes }
    $trees = New-BridgeList
    foreach ($pattern in @($Params.patterns)) {
        Assert-BridgeWithin -Path ([string]$pattern).Replace('*', 'x') -Within $Params.within
        foreach ($path in (Resolve-BridgePattern -Pattern ([string]$pattern))) {
            $item = Get-Item -LiteralPath $path -Force -ErrorAction SilentlyContinue
            if ($null -eq $item) { continue }
            $type = 'file'
            if ($item.PSIsContainer) { $type = 'directory' }
            $owner = $null
            try { $owner = [string]$item.GetAccessControl().GetOwner([System.Security.Principal.SecurityIdentifier]).Value } catch { $owner = $null }
            $tree = [ordered]@{ pattern = [string]$pattern; path = [string]$item.FullName; type = $type; owner_sid = $owner; files = $null; error = $null }
            try {
                $files = New-BridgeList
                $budget = $maxBytes
                if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
                    throw 'it is a junction or symbolic link; not followed'
                }
                if ($type -eq 'file') {
                    $bytes = Read-BridgeBytes -Path $item.FullName -Budget $budget
                    $files.Add([ordered]@{ name = ''; mode = 384; data = [System.Convert]::ToBase64String($bytes) })
                }
                else {
                    $pending = New-Object -TypeName System.Collections.Generic.Stack[string]
                    $pending.Push($item.FullName)
                    while ($pending.Count -gt 0) {
                        $directory = $pending.Pop()
                        foreach ($child in @(Get-ChildItem -LiteralPath $directory -Force -ErrorAction Stop)) {
                            if ($child.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
                                throw "it holds '$($child.FullName)', a junction or symbolic link; not followed"
                            }
                            if ($child.PSIsContainer) { $pending.Push($child.FullName); continue }
                            $bytes = Read-BridgeBytes -Path $child.FullName -Budget $budget
                            $budget -= $bytes.Length
                            $relative = $child.FullName.Substring($item.FullName.Length + 1).Replace('\', '/')
                            $files.Add([ordered]@{ name = $relative; mode = 384; data = [System.Convert]::ToBase64String($bytes) })
                        }
                    }
                }
                $tree.files = $files
            }
            catch {
                $tree.error = Get-BridgeErrorMessage -ErrorRecord $_
            }
            $trees.Add($tree)
        }
    }
    return [ordered]@{ trees = $trees }
}

function Invoke-BridgeOp_write_tree {
    param(
        [hashtable]$Params,
        [hashtable]$Context
    )
    $path = [string]$Params.path
    Assert-BridgeWithin -Path $path -Within $Params.within
    Assert-BridgeNoReparseAncestor -Path $path
    if (Test-BridgePath -Path $path) { throw "Cannot write '$path': it already exists." }
    $parent = [System.IO.Path]::GetDirectoryName($path.TrimEnd('\'))
    $temporary = [System.IO.Path]::Combine($parent, '.' + [System.IO.Path]::GetFileName($path) + '.' + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.tmp')
    $files = @($Params.files)
    $single = ($files.Count -eq 1 -and [string]$files[0].name -eq '')
    $written = [int64]0
    try {
        if ($single) {
            $bytes = [System.Convert]::FromBase64String([string]$files[0].data)
            [System.IO.File]::WriteAllBytes($temporary, $bytes)
            $written = $bytes.Length
        }
        else {
            [void][System.IO.Directory]::CreateDirectory($temporary)
            foreach ($entry in $files) {
                $name = [string]$entry.name
                $parts = @($name.Split('/'))
                if (-not $name -or ($parts | Where-Object { $_ -in @('', '.', '..') -or $_ -match '[\\:]' })) {
                    throw "Refusing the file name '$name' in a tree."
                }
                $target = [System.IO.Path]::Combine($temporary, ($parts -join '\'))
                [void][System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($target))
                $bytes = [System.Convert]::FromBase64String([string]$entry.data)
                [System.IO.File]::WriteAllBytes($target, $bytes)
                $written += $bytes.Length
            }
        }
        if ($null -ne $Params.attributes -and $Params.attributes.owner_sid) {
            $owner = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList ([string]$Params.attributes.owner_sid)
            $items = @(Get-Item -LiteralPath $temporary -Force)
            if (-not $single) { $items += @(Get-ChildItem -LiteralPath $temporary -Recurse -Force) }
            foreach ($created in $items) {
                $security = $created.GetAccessControl()
                $security.SetOwner($owner)
                $created.SetAccessControl($security)
            }
        }
        if ($single) { [System.IO.File]::Move($temporary, $path) } else { [System.IO.Directory]::Move($temporary, $path) }
    }
    catch {
        if ([System.IO.Directory]::Exists($temporary)) { Remove-BridgeTree -Path $temporary }
        elseif ([System.IO.File]::Exists($temporary)) { [System.IO.File]::Delete($temporary) }
        throw
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
    $output = @(& "Invoke-BridgeOp_$Name" -Params $Params -Context $Context)
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
                $Context.Profiles = $result['data']['profiles']
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
