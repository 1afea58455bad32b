"""Verify the escalation role left the sandboxed homes as promised (testinfra)."""
from __future__ import annotations

import json
import os

# The scenario runs on this machine (ansible_connection: local); molecule's generated
# inventory does not say so, so point testinfra at the local backend directly.
testinfra_hosts = ['local://']

HOMES = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'homes')
REPORT = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'workstation.json')


def _entries(host, user):
    root = f'{HOMES}/{user}/.local/share/loopbreaker/quarantine'
    return list(host.file(root).listdir()) if host.file(root).exists else []


def test_site_data_is_gone_and_settings_stay(host):
    notion = host.file(f'{HOMES}/alice/.config/Notion')
    assert sorted(notion.listdir()) == ['Partitions', 'Preferences']
    assert host.file(f'{HOMES}/alice/.config/Notion/Preferences').content_string == '{}'
    assert host.file(f'{HOMES}/alice/.config/Notion/Partitions/notion').listdir() == ['Network']
    assert host.file(f'{HOMES}/alice/.config/Notion/Partitions/notion/Network').listdir() == []
    assert host.file(f'{HOMES}/bob/.config/Notion').listdir() == []


def test_everything_removed_is_in_a_private_quarantine(host):
    for user, expected in (('alice', 4), ('bob', 1)):
        entries = _entries(host, user)
        assert len(entries) == 1, 'idempotence created no second entry'
        entry = f'{HOMES}/{user}/.local/share/loopbreaker/quarantine/{entries[0]}'
        assert host.file(entry).mode == 0o700
        manifest = json.loads(host.file(f'{entry}/manifest.json').content_string)
        assert manifest['user'] == user and len(manifest['items']) == expected
        for item in manifest['items']:
            assert host.file(f"{entry}/{item['stored_as']}").exists

    entry = f'{HOMES}/alice/.local/share/loopbreaker/quarantine/{_entries(host, "alice")[0]}'
    manifest = json.loads(host.file(f'{entry}/manifest.json').content_string)
    (offline_store,) = [i for i in manifest['items'] if i['original_path'].endswith('/notion.db')]
    assert offline_store['scope'] == 'storage'
    assert host.file(f"{entry}/{offline_store['stored_as']}").content_string == 'offline edits'
    assert _entries(host, 'carol') == []


def test_report_says_what_was_done(host):
    report = json.loads(host.file(REPORT).content_string)
    app_data, proxy = report['rungs']
    assert app_data['rung'] == 'app_data'
    assert app_data['changed'] is False, 'the report is from the idempotence run'
    assert {u['user']: u['status'] for u in app_data['users']} == {'alice': 'clean', 'bob': 'clean'}
    # The default ladder also climbs the proxy rung; without a GNOME session it has nothing to change.
    assert (proxy['rung'], proxy['changed'], proxy['not_applicable']) == ('proxy', False, True)
