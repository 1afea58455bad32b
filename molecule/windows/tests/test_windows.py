"""Verify on the real Windows machine what the rungs did and what they must not leave behind (testinfra, winrm).

Skipped, with the reason, when no machine is configured (LOOPBREAKER_WINDOWS_HOST; see molecule.yml).
testinfra's winrm backend speaks NTLM over HTTPS; the certificate is validated against
LOOPBREAKER_WINDOWS_CA (pywinrm reads it through REQUESTS_CA_BUNDLE).
"""
from __future__ import annotations

import base64
import json
import os
import urllib.parse

import pytest

HOST = os.environ.get('LOOPBREAKER_WINDOWS_HOST', '')
TEST_USER = os.environ.get('LOOPBREAKER_WINDOWS_TEST_USER', '')

if HOST:
    os.environ.setdefault('REQUESTS_CA_BUNDLE', os.environ.get('LOOPBREAKER_WINDOWS_CA', ''))
    _credentials = ':'.join(urllib.parse.quote(os.environ.get(name, ''), safe='')
                            for name in ('LOOPBREAKER_WINDOWS_USER', 'LOOPBREAKER_WINDOWS_PASSWORD'))
    testinfra_hosts = [f"winrm://{_credentials}@{HOST}:{os.environ.get('LOOPBREAKER_WINDOWS_PORT') or '5986'}"]
else:
    testinfra_hosts = ['local://']

SKIPPED = 'molecule windows: no Windows host configured (set LOOPBREAKER_WINDOWS_HOST; see docs/windows-checklist.md)'
pytestmark = pytest.mark.skipif(not HOST, reason=SKIPPED)

# Reads the facts below in one PowerShell run, as JSON; the user's name arrives base64-encoded.
FACTS_SCRIPT = r'''
$ErrorActionPreference = 'Stop'
$user = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('@USER@'))
$sid = (New-Object Security.Principal.NTAccount($user)).Translate([Security.Principal.SecurityIdentifier]).Value
$profilePath = (Get-ItemProperty -LiteralPath "HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList\$sid").ProfileImagePath
$loggedOn = @(Get-CimInstance Win32_Process -Filter "Name='explorer.exe'" | Where-Object {
    (Invoke-CimMethod -InputObject $_ -MethodName GetOwnerSid).Sid -eq $sid }).Count -gt 0
$quarantine = Join-Path $profilePath 'AppData\Local\loopbreaker\quarantine'
$entries = @()
if (Test-Path -LiteralPath $quarantine) {
    $entries = @(Get-ChildItem -LiteralPath $quarantine -Directory | ForEach-Object {
        $acl = Get-Acl -LiteralPath $_.FullName
        @{ name = $_.Name
           items = @(Get-ChildItem -LiteralPath (Join-Path $_.FullName 'items') -Recurse -File -ErrorAction SilentlyContinue |
                     ForEach-Object { $_.Name })
           trustees = @($acl.Access | ForEach-Object { $_.IdentityReference.Translate([Security.Principal.SecurityIdentifier]).Value } |
                        Select-Object -Unique)
           protected = $acl.AreAccessRulesProtected } })
}
$policy = New-Object -ComObject HNetCfg.FwPolicy2
$rules = @($policy.Rules | Where-Object { $_.Name -like 'loopbreaker*' } | ForEach-Object {
    @{ name = $_.Name; program = $_.ApplicationName; enabled = [bool]$_.Enabled; action = [int]$_.Action
       protocol = [int]$_.Protocol; remote_ports = $_.RemotePorts } })
$records = @()
$recordsKey = 'HKLM:\SOFTWARE\loopbreaker\notion\records\quarantine'
if (Test-Path -LiteralPath $recordsKey) { $records = @((Get-Item -LiteralPath $recordsKey).GetValueNames()) }
ConvertTo-Json -Depth 5 -Compress @{
    sid = $sid
    logged_on = $loggedOn
    hive_loaded = Test-Path -LiteralPath "Registry::HKEY_USERS\$sid"
    cache_files = @(Get-ChildItem -LiteralPath (Join-Path $profilePath 'AppData\Roaming\Notion\Cache') -Recurse -File -ErrorAction SilentlyContinue).Count
    entries = $entries
    records = $records
    rules = $rules
    tasks = @(Get-ScheduledTask -TaskPath '\' -ErrorAction SilentlyContinue | Where-Object { $_.TaskName -like 'loopbreaker*' } |
              ForEach-Object { $_.TaskName })
}
'''

SYSTEM_SID = 'S-1-5-18'
ADMINISTRATORS_SID = 'S-1-5-32-544'
RULE_ACTION_BLOCK = 0


@pytest.fixture(scope='module')
def facts(host):
    script = FACTS_SCRIPT.replace('@USER@', base64.b64encode(TEST_USER.encode()).decode())
    encoded = base64.b64encode(script.encode('utf-16-le')).decode()
    result = host.run(f'powershell.exe -NoProfile -NonInteractive -EncodedCommand {encoded}')
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_the_cache_went_to_a_private_quarantine_entry(facts):
    assert facts['cache_files'] == 0
    moved = [entry for entry in facts['entries'] if 'data_0' in entry['items']]
    assert moved, facts['entries']
    # the entry holds session data: its user, Administrators and SYSTEM only, nothing inherited
    assert all(entry['protected'] for entry in moved)
    assert all(set(entry['trustees']) <= {facts['sid'], ADMINISTRATORS_SID, SYSTEM_SID} for entry in moved)


def test_every_entry_has_its_trusted_record_in_hklm(facts):
    assert facts['records'], 'no record under HKLM\\SOFTWARE\\loopbreaker\\notion\\records\\quarantine'


def test_the_seeded_block_rule_is_disabled_and_kept_whole(facts):
    seeded = [rule for rule in facts['rules'] if rule['name'] == 'loopbreaker-molecule-block']
    assert seeded and not seeded[0]['enabled']
    assert seeded[0]['protocol'] == 6 and seeded[0]['remote_ports'] == '443'


def test_allow_rules_name_literal_program_paths(facts):
    ours = [rule for rule in facts['rules'] if rule['name'].startswith('loopbreaker.notion-')]
    assert ours, facts['rules']
    # the firewall service expands no per-user variables: a rule with one would match nothing
    assert all('%' not in (rule['program'] or '') for rule in ours)
    assert all(rule['action'] != RULE_ACTION_BLOCK for rule in ours)


def test_no_hive_is_left_loaded_for_a_logged_off_user(facts):
    # a hive left loaded gives that user a temporary profile at the next logon
    if not facts['logged_on']:
        assert not facts['hive_loaded']


def test_no_scheduled_task_is_left_behind(facts):
    assert facts['tasks'] == []
