# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Generic helpers of the Windows bridge: lists, values, templates, error messages, names,
# wildcards, times, module imports and the existence test that tells "absent" from "access denied".
# Part of plugins/modules/win_bridge.ps1, loaded with #AnsibleRequires -PowerShell. Ansible imports it
# as a global module: its functions see only their own module, the modules it requires and
# .NET, never the bridge script's variables or functions (tests/unit/test_bridge_modules.py).

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

function Test-BridgePath {
    # Whether a file or directory exists. File.Exists and Directory.Exists say $false for a path the
    # bridge may not open (an ACL without Administrators, a share a WinRM network logon has no
    # credentials for): that is an error here, never "absent".
    param(
        [string]$Path
    )
    try {
        [void][System.IO.File]::GetAttributes($Path)
        return $true
    }
    catch [System.IO.FileNotFoundException], [System.IO.DirectoryNotFoundException] {
        return $false
    }
    catch [System.UnauthorizedAccessException] {
        throw "Access to the path '$Path' is denied."
    }
}

Export-ModuleMember -Function @(
    'New-BridgeList'
    'ConvertTo-BridgeBool'
    'ConvertTo-BridgeValue'
    'Resolve-BridgeTemplate'
    'Get-BridgeErrorMessage'
    'Test-BridgeNameEqual'
    'ConvertTo-BridgeWildcardRegex'
    'Format-BridgeTime'
    'Import-BridgeModule'
    'Test-BridgePath'
)
