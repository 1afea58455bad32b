"""report.html in a real headless Chromium: it renders, its script runs, and its numbers are report.json's.

The screenshot stays in .cache/test-artefacts/fleet-report.png. Chromium comes from Debian
(scripts/ensure-chromium, run by `make unit`); without it this test skips and says why.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import typing as t
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import Lab, assert_ok
from .test_fleet_report import run_ladder, seed

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / '.cache' / 'test-artefacts'
CHROMIUM = next((shutil.which(name) for name in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(name)), None)


class Rendered(HTMLParser):
    """What the test reads back from Chromium's DOM after the page's script ran."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.counts: dict[str, str] = {}
        self.js_counts: dict[str, str] = {}
        self.rows: list[str] = []
        self.bars: list[dict[str, str | None]] = []
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == 'body':
            self.body = a
        elif tag == 'td' and 'data-state' in a and 'count' in (a.get('class') or ''):
            self._open = ('counts', f"{a['data-kind']}:{a['data-state']}")
        elif tag == 'td' and a.get('data-js-count'):
            self._open = ('js_counts', a['data-js-count'] or '')
        elif tag == 'tr' and a.get('data-host'):
            self.rows.append(a['data-host'] or '')
        elif tag == 'rect' and a.get('data-rung'):
            self.bars.append(a)

    def handle_data(self, data: str) -> None:
        if self._open:
            getattr(self, self._open[0])[self._open[1]] = getattr(self, self._open[0]).get(self._open[1], '') + data

    def handle_endtag(self, tag: str) -> None:
        if tag == 'td':
            self._open = None


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                           '--hide-scrollbars', f'--user-data-dir={tmp_path / "chromium-profile"}',
                           # Nothing may come from the network: any fetch would fail loudly in the page.
                           '--proxy-server=127.0.0.1:9', '--host-resolver-rules=MAP * ~NOTFOUND', *args],
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason='no headless Chromium (chromium, chromium-browser or google-chrome) on PATH: '
                    'run scripts/ensure-chromium (make unit does; it needs apt-get as root)')
def test_report_html_renders_in_chromium_with_the_numbers_of_report_json(lab: Lab, tmp_path: Path) -> None:
    seed(lab)
    reports = lab.root / 'reports'
    assert_ok(run_ladder(lab, reports, rungs=('app_data', 'proxy', 'restart', 'firewall')))
    assert_renders_as_reported(reports / 'fleet', tmp_path, 'fleet-report.png')


def assert_renders_as_reported(fleet: Path, tmp_path: Path, screenshot_name: str) -> None:
    """report.html in Chromium: the script ran, its counts, rows and chart are report.json's; a screenshot is kept."""
    doc: dict[str, t.Any] = json.loads((fleet / 'report.json').read_text())
    url = (fleet / 'report.html').as_uri()

    dumped = chromium(tmp_path, '--dump-dom', url + '#sort=host:desc')
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    page = Rendered()
    page.feed(dumped.stdout)
    assert page.body.get('data-rendered') == 'yes', "the page's script did not run"

    expected = {f'{kind}:{state}': str(doc['totals'][kind][state]) for kind in ('detection', 'remediation')
                for state in doc['states'][kind]}
    assert page.counts == expected, 'counts printed in the page'
    assert page.js_counts == expected, 'counts the script recomputed from the embedded JSON'
    assert page.rows == sorted((h['host'] for h in doc['hosts']), reverse=True), 'sorted by the #sort=host:desc the URL asked for'

    bars = Counter()
    for rect in page.bars:
        bars[(rect['data-rung'], rect['data-kind'], rect['data-state'])] += int(rect['data-count'] or 0)
    assert bars == Counter({(rung, kind, state): count for rung, per in doc['per_rung'].items()
                            for kind in ('detection', 'remediation') for state, count in per[kind].items() if count})

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / screenshot_name
    screenshot.unlink(missing_ok=True)
    shot = chromium(tmp_path, '--window-size=1280,1600', f'--screenshot={screenshot}', url)
    assert shot.returncode == 0, shot.stderr[-3000:]
    assert screenshot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and screenshot.stat().st_size > 20_000
