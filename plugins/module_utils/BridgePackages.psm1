# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeCommon
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeIdentity

# MSIX packages for the Windows bridge: list_packages, verify_package, provision_package and
# remove_provisioned_package (plugins/module_utils/_msix.py is the Python side).
# Part of plugins/modules/win_bridge.ps1, loaded with #AnsibleRequires -PowerShell. Ansible imports it
# as a global module: its functions see only their own module, the modules it requires and
# .NET, never the bridge script's variables or functions (tests/unit/test_bridge_modules.py).

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

Export-ModuleMember -Function @(
    'Get-BridgePublisherId'
    'Invoke-BridgeOp_list_packages'
    'Get-BridgeProvisionedPackages'
    'Read-BridgePackageIdentity'
    'Open-BridgeVerifiedPackage'
    'Invoke-BridgeOp_verify_package'
    'Invoke-BridgeOp_provision_package'
    'Invoke-BridgeOp_remove_provisioned_package'
)
