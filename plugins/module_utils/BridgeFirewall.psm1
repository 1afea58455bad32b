# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeCommon

# Windows Defender Firewall for the Windows bridge: every rule read from the registry stores in
# one pass (local, Group Policy, MDM), and the local store changed through NetSecurity
# (plugins/module_utils/_firewall.py is the Python side).
# Part of plugins/modules/win_bridge.ps1, loaded with #AnsibleRequires -PowerShell. Ansible imports it
# as a global module: its functions see only their own module, the modules it requires and
# .NET, never the bridge script's variables or functions (tests/unit/test_bridge_modules.py).

$RegistryMachine = [Microsoft.Win32.RegistryKey]::OpenBaseKey(
    [Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)

$FirewallProfileBits = [ordered]@{ domain = 1; private = 2; public = 4 }

$FirewallProfileNames = @{ domain = 'Domain'; private = 'Private'; public = 'Public' }

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

Export-ModuleMember -Function @(
    'Import-BridgeNetSecurity'
    'ConvertFrom-BridgeFirewallRuleText'
    'Get-BridgeFirewallStoreRules'
    'Get-BridgeLocalRulesApply'
    'Get-BridgeLocalFirewallRule'
    'Get-BridgeInterfaceAlias'
    'Get-BridgeStringList'
    'Get-BridgeFirewallRuleArguments'
    'Get-BridgeFirewallCreateFields'
    'Invoke-BridgeOp_list_firewall_rules'
    'Invoke-BridgeOp_set_firewall_rule'
    'Invoke-BridgeOp_remove_firewall_rule'
)
