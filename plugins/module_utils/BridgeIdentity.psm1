# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeCommon

# File identity for the Windows bridge: SHA-256, version, the Authenticode signer rule
# (plugins/module_utils/_signature.py mirrored; docs/signatures.md) and downloads.
# Part of plugins/modules/win_bridge.ps1, loaded with #AnsibleRequires -PowerShell. Ansible imports it
# as a global module: its functions see only their own module, the modules it requires and
# .NET, never the bridge script's variables or functions (tests/unit/test_bridge_modules.py).

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
    # Test-BridgePath: a file the bridge may not open is an error, not a missing file.
    if (-not (Test-BridgePath -Path $Path) -or -not [System.IO.File]::Exists($Path)) {
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

Export-ModuleMember -Function @(
    'ConvertTo-BridgeHex'
    'New-BridgeSha256'
    'Get-BridgeFileSha256'
    'Get-BridgeFileVersion'
    'Get-BridgeDistinguishedNameValue'
    'Get-BridgeSignature'
    'ConvertTo-BridgeOrganizationKey'
    'Get-BridgeSignerProblem'
    'Format-BridgeQuoted'
    'Get-BridgeFileInfo'
    'Enable-BridgeTls12'
    'Save-BridgeDownload'
)
