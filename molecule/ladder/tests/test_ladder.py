"""Verify the ladder stopped at app_data, re-diagnosed healthy and remembered the incident (testinfra)."""
from __future__ import annotations

import json
import os

testinfra_hosts = ['local://']

EPHEMERAL = os.environ['MOLECULE_EPHEMERAL_DIRECTORY']
HOMES = os.path.join(EPHEMERAL, 'homes')


def test_the_ladder_stopped_at_app_data_and_is_healthy(host):
    report = json.loads(host.file(f'{EPHEMERAL}/workstation.json').content_string)
    # the report of the last converge (the idempotence pass): nothing left to do
    assert report['before']['verdict'] == 'healthy' and report['after']['verdict'] == 'healthy'
    assert [s['rung'] for s in report['steps']] == [None]
    assert 'already tried app_data' in report['steps'][0]['reason']


def test_the_corrupt_store_is_quarantined_and_settings_stay(host):
    notion = host.file(f'{HOMES}/alice/.config/Notion')
    assert 'notion.db' not in notion.listdir() and 'Preferences' in notion.listdir()
    assert host.file(f'{HOMES}/bob/.config/Notion/Preferences').exists


def test_the_incident_is_remembered_in_the_root_only_store(host):
    record = json.loads(host.file(f'{EPHEMERAL}/state/records/incidents/MOL-1.json').content_string)
    assert record['state'] == 'resolved'
    assert [a['rung'] for a in record['users']['alice']['attempts']] == ['app_data']
    assert record['users']['alice']['attempts'][0]['before'] == ['cache_corrupt']
