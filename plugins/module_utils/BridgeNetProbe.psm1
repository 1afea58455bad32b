# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#AnsibleRequires -PowerShell ansible_collections.loopbreaker.notion.plugins.module_utils.BridgeCommon

# diagnose's network probes for the Windows bridge: plain .NET sockets, so each step (name
# resolution, TCP or proxy CONNECT, TLS, HTTP, WebSocket) is timed and reported apart, and WinHTTP's
# auto-proxy for PAC and WPAD (plugins/module_utils/_netprobe.py is the Python side).
# Part of plugins/modules/win_bridge.ps1, loaded with #AnsibleRequires -PowerShell. Ansible imports it
# as a global module: its functions see only their own module, the modules it requires and
# .NET, never the bridge script's variables or functions (tests/unit/test_bridge_modules.py).

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

function Get-BridgePacDecision {
    # WinHTTP's auto-proxy for one URL with the user's PAC file, as the probes report it: the entry
    # followed (the first of WinHTTP's list) and the rest as fallbacks; when WinHTTP cannot fetch or
    # run the PAC file, direct (as WinHTTP's clients fall back) with the error.
    param([string]$PacUrl, [string]$Url)
    $pac = [ordered]@{ url = $PacUrl; evaluated = $false }
    try {
        if (-not ('BridgeWinHttpProxy' -as [type])) { Add-Type -TypeDefinition $BridgeWinHttpProxySource }
        $chosen = [string][BridgeWinHttpProxy]::ForUrl($Url, $PacUrl)
    }
    catch {
        $reason = $_.Exception
        if ($reason.InnerException) { $reason = $reason.InnerException }  # the Win32Exception inside the method call's
        $pac.error = "WinHTTP could not use the PAC file: $($reason.Message)"
        return @{ proxy = $null; pac = $pac }
    }
    $entries = @($chosen -split '[;\s]+' | Where-Object { $_ })
    $pac.evaluated = $true
    $pac.engine = 'WinHTTP'
    $pac.returned = $chosen
    $pac.skipped = @()
    if ($entries.Count -eq 0) {
        $pac.entry = 'DIRECT'
        $pac.fallbacks = @()
        return @{ proxy = $null; pac = $pac }
    }
    $first = $entries[0] -replace '^[a-z]+=', ''
    $pac.entry = "PROXY $first"
    $pac.fallbacks = @($entries | Select-Object -Skip 1)
    return @{ proxy = $first; pac = $pac }
}

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
                $setting = [hashtable]$proxies[$index]
                if ([string]$setting.mode -eq 'pac') {
                    $decision = Get-BridgePacDecision -PacUrl ([string]$setting.pac_url) -Url "https://$hostName/"
                    $result.pac = $decision.pac
                    if ($decision.pac.error) { $result.note = "PAC not used ($($decision.pac.error)): probed direct, as WinHTTP's clients fall back" }
                    $proxy = $decision.proxy
                }
                else {
                    $proxy = Get-BridgeProxyForUrl -Setting $setting -Url "https://$hostName/" -HostName $hostName
                }
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

Export-ModuleMember -Function @(
    'Get-BridgePacDecision'
    'Get-BridgeProxyForUrl'
    'Read-BridgeHttpResponse'
    'Send-BridgeHttpRequest'
    'Open-BridgeTlsStream'
    'Invoke-BridgeOp_probe_network'
)
