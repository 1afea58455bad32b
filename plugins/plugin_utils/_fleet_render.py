# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's documents besides report.json: a self-contained report.html and junit.xml.

Internal to the collection. Both are rendered from the JSON document alone (see _fleet_report), so
the three files always agree. The HTML loads nothing from the network: its CSS, its script (table
sorting, and counts recomputed from the embedded JSON as a cross-check) and its chart (inline SVG)
are all in the file.
"""
from __future__ import annotations

import html
import json
import typing as t
import xml.etree.ElementTree as ET

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_report import DETECTION, REMEDIATION

COLOURS = {'healthy': '#2e7d32', 'issue': '#ef6c00', 'error': '#c62828', 'not_applicable': '#9e9e9e',
           'skipped': '#9e9e9e', 'fixed': '#2e7d32', 'failed': '#c62828', 'pending': '#f9a825'}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#212121;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:16px 0 4px}
.meta{color:#555}.meta span{margin-right:18px}
.cards{display:flex;gap:16px;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px}
.card table td{padding:2px 10px 2px 0}
table.hosts{border-collapse:collapse;background:#fff;width:100%}
table.hosts th,table.hosts td{border:1px solid #ddd;padding:5px 8px;text-align:left;vertical-align:top}
table.hosts th{background:#eceff1;cursor:pointer;user-select:none}
table.hosts th[aria-sort=ascending]::after{content:" \\25B2"}table.hosts th[aria-sort=descending]::after{content:" \\25BC"}
.state{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px}
.host{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;margin:10px 0}
.rung{border-left:4px solid #cfd8dc;padding-left:10px;margin:8px 0}
ul{margin:2px 0 6px 18px;padding:0}code{background:#eceff1;padding:0 3px;border-radius:3px}
.manual{color:#6a1b9a}.failure{color:#c62828}
td.js{display:none}
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('fleet-report-data').textContent);
  var counts = {};
  data.hosts.forEach(function (h) {
    ['detection', 'remediation'].forEach(function (kind) {
      var key = kind + ':' + h[kind];
      counts[key] = (counts[key] || 0) + 1;
    });
  });
  document.querySelectorAll('[data-js-count]').forEach(function (el) {
    el.textContent = String(counts[el.getAttribute('data-js-count')] || 0);
  });
  var table = document.getElementById('hosts');
  var heads = table.querySelectorAll('th');
  function sortBy(index, direction) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].getAttribute('data-sort'), y = b.cells[index].getAttribute('data-sort');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return direction === 'descending' ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (h, i) {
      if (i === index) { h.setAttribute('aria-sort', direction); } else { h.removeAttribute('aria-sort'); }
    });
  }
  heads.forEach(function (h, i) {
    h.addEventListener('click', function () {
      sortBy(i, h.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending');
    });
  });
  var wanted = /#sort=([a-z_]+):(asc|desc)/.exec(window.location.hash);
  if (wanted) {
    heads.forEach(function (h, i) {
      if (h.getAttribute('data-key') === wanted[1]) { sortBy(i, wanted[2] === 'asc' ? 'ascending' : 'descending'); }
    });
  }
  document.body.setAttribute('data-rendered', 'yes');
})();
"""

HOST_COLUMNS = (('host', 'Host'), ('rung_reached', 'Rung reached'), ('detection', 'Detection'),
                ('remediation', 'Remediation'), ('moved', 'Items moved'), ('manual', 'Manual actions'),
                ('failures', 'Failures'))


def _e(value: t.Any) -> str:
    return html.escape('' if value is None else str(value), quote=True)


def _state(value: str) -> str:
    return f'<span class="state" style="background:{COLOURS.get(value, "#607d8b")}">{_e(value)}</span>'


def _moved(host: dict[str, t.Any]) -> int:
    return sum(len(s['moved']) for r in host['rungs'] for s in r['subjects'])


def _counts(doc: dict[str, t.Any]) -> str:
    cards = []
    for kind, states in (('detection', DETECTION), ('remediation', REMEDIATION)):
        rows = ''.join(f'<tr><td>{_state(s)}</td><td class="count" data-kind="{kind}" data-state="{s}">'
                       f'{doc["totals"][kind][s]}</td><td class="js" data-js-count="{kind}:{s}"></td></tr>' for s in states)
        cards.append(f'<div class="card"><b>Hosts by {kind}</b><table id="counts-{kind}">{rows}</table></div>')
    return '<div class="cards">' + ''.join(cards) + '</div>'


def _chart(doc: dict[str, t.Any]) -> str:
    """Stacked bars, one pair (detection, remediation) per rung; widths are counts of host-rung results."""
    rungs = doc['rungs']
    if not rungs:
        return '<p>No rung ran.</p>'
    most = max(max(sum(doc['per_rung'][r]['detection'].values()) for r in rungs), 1)
    width, label, row, gap = 520, 110, 14, 10
    height = len(rungs) * (2 * row + gap) + 30
    parts = [f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{label + width + 60}" height="{height}" role="img"'
             ' aria-label="Outcomes per rung: detection (upper bar) and remediation (lower bar) of each host">']
    y = 4
    for rung in rungs:
        parts.append(f'<text x="0" y="{y + row + 4}" font-size="12">{_e(rung)}</text>')
        for kind, states in (('detection', DETECTION), ('remediation', REMEDIATION)):
            parts.append(f'<text x="{label - 28}" y="{y + row - 4}" font-size="9" fill="#777">{kind[:3]}.</text>')
            x = float(label)
            for state in states:
                count = doc['per_rung'][rung][kind][state]
                if count:
                    w = width * count / most
                    parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 2}" fill="{COLOURS[state]}"'
                                 f' data-rung="{_e(rung)}" data-kind="{kind}" data-state="{state}" data-count="{count}">'
                                 f'<title>{_e(rung)} {kind} {state}: {count}</title></rect>')
                    x += w
            y += row
        y += gap
    legend_x = label
    for state in ('healthy', 'issue', 'error', 'not_applicable', 'fixed', 'pending', 'failed'):
        parts.append(f'<rect x="{legend_x}" y="{y + 4}" width="10" height="10" fill="{COLOURS[state]}"/>'
                     f'<text x="{legend_x + 14}" y="{y + 13}" font-size="11">{state}</text>')
        legend_x += 14 + 7 * len(state) + 14
    parts.append('</svg>')
    return ''.join(parts)


def _host_row(host: dict[str, t.Any]) -> str:
    values = {'host': host['host'], 'rung_reached': host['rung_reached'] or '-', 'detection': host['detection'],
              'remediation': host['remediation'], 'moved': _moved(host), 'manual': len(host['manual_actions']),
              'failures': len(host['failures'])}
    cells = []
    for key, _title in HOST_COLUMNS:
        value = values[key]
        shown = _state(value) if key in ('detection', 'remediation') else (
            f'<a href="#host-{_e(host["host"])}">{_e(value)}</a>' if key == 'host' else _e(value))
        cells.append(f'<td data-key="{key}" data-sort="{_e(value)}">{shown}</td>')
    return f'<tr data-host="{_e(host["host"])}">' + ''.join(cells) + '</tr>'


def _subject(subject: dict[str, t.Any]) -> str:
    lines = [f'<li><b>{_e(subject["subject"])}</b> {_state(subject["detection"])} {_state(subject["remediation"])}'
             f' <code>{_e(subject["status"])}</code>']
    details = [f'<li>{_e(c)}</li>' for c in subject['changes']]
    if subject['moved']:
        details.append(f'<li><details><summary>{len(subject["moved"])} path(s) moved, and where to</summary><ul>' + ''.join(
            f'<li><code>{_e(m["from"])}</code> &rarr; ' + (f'<code>{_e(m["to"])}</code>' if m['to'] else 'deleted') + '</li>'
            for m in subject['moved']) + '</ul></details></li>')
    if subject['restore']:
        details.append(f'<li>restore with <code>{_e(subject["restore"])}</code></li>')
    if subject['note']:
        details.append(f'<li>{_e(subject["note"])}</li>')
    details += [f'<li class="failure">{_e(e)}</li>' for e in subject['errors']]
    if details:
        lines.append('<ul>' + ''.join(details) + '</ul>')
    return ''.join(lines) + '</li>'


def _host_section(host: dict[str, t.Any]) -> str:
    parts = [f'<section class="host" id="host-{_e(host["host"])}"><h3>{_e(host["host"])} {_state(host["detection"])}'
             f' {_state(host["remediation"])}</h3><div>Rung reached: <b>{_e(host["rung_reached"] or "none")}</b></div>']
    for label, key in (('Before', 'before'), ('After', 'after')):
        state = host.get(key)
        if state:
            codes = ', '.join(state['codes']) or 'no findings'
            parts.append(f'<div class="diagnosis" data-when="{key}">{label}: <b>{_e(state["verdict"])}</b> ({_e(codes)})</div>')
    if host.get('incident'):
        parts.append(f'<div>Incident <code>{_e(host["incident"]["id"])}</code>: {_e(host["incident"]["state"])}</div>')
    for rung in host['rungs']:
        parts.append(f'<div class="rung" data-rung="{_e(rung["rung"])}"><b>{_e(rung["rung"])}</b> {_state(rung["detection"])}'
                     f' {_state(rung["remediation"])}' + (f' &mdash; {_e(rung["message"])}' if rung['message'] else ''))
        if rung['quarantine_id']:
            parts.append(f' <span>quarantine id <code>{_e(rung["quarantine_id"])}</code></span>')
        if rung['subjects']:
            parts.append('<ul>' + ''.join(_subject(s) for s in rung['subjects']) + '</ul>')
        parts.append('</div>')
    if host['manual_actions']:
        parts.append('<h4>Manual actions</h4><ul>' + ''.join(f'<li class="manual">{_e(a)}</li>' for a in host['manual_actions'])
                     + '</ul>')
    if host['failures']:
        parts.append('<h4>Failures</h4><ul>' + ''.join(
            f'<li class="failure">{_e(f["rung"] or "host")}{": " + _e(f["subject"]) if f["subject"] else ""}: {_e(f["message"])}</li>'
            for f in host['failures']) + '</ul>')
    parts.append('</section>')
    return ''.join(parts)


def to_html(doc: dict[str, t.Any]) -> str:
    run = doc['run']
    # No '<', '>' or '&' at all inside the script element, whatever a host reported.
    data = json.dumps(doc, sort_keys=True).replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')
    heads = ''.join(f'<th data-key="{key}">{_e(title)}</th>' for key, title in HOST_COLUMNS)
    meta = ''.join(f'<span>{_e(label)}: <b id="run-{key}">{_e(run[key])}</b></span>' for key, label in (
        ('id', 'Run'), ('incident_id', 'Incident'), ('started', 'Started'), ('ended', 'Ended'), ('check_mode', 'Check mode'),
        ('collection_version', 'loopbreaker.notion'), ('ansible_core_version', 'ansible-core')))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'script-src \'unsafe-inline\'; img-src data:">'
        f'<title>Notion fleet report {_e(run["id"])}</title><style>{CSS}</style></head><body>'
        f'<h1>Notion fleet report</h1><div class="meta">{meta}</div>'
        f'<h2>Outcomes (<span id="host-count">{doc["totals"]["hosts"]}</span> hosts)</h2>{_counts(doc)}'
        f'<h2>Outcomes per rung</h2>{_chart(doc)}'
        f'<h2>Hosts</h2><table class="hosts" id="hosts"><thead><tr>{heads}</tr></thead><tbody>'
        + ''.join(_host_row(h) for h in doc['hosts']) + '</tbody></table>'
        '<h2>Per host</h2>' + ''.join(_host_section(h) for h in doc['hosts'])
        + f'<script type="application/json" id="fleet-report-data">{data}</script><script>{SCRIPT}</script></body></html>\n')


def to_junit(doc: dict[str, t.Any]) -> str:
    """One test case per host and rung: failure = remediation failed, error = detection error, skipped = not applicable."""
    suites = ET.Element('testsuites', name=f"loopbreaker.notion fleet report {doc['run']['id']}")
    totals = {'tests': 0, 'failures': 0, 'errors': 0, 'skipped': 0}
    for host in doc['hosts']:
        suite = ET.SubElement(suites, 'testsuite', name=host['host'])
        counts = dict.fromkeys(totals, 0)
        cases = [(r['rung'], r['detection'], r['remediation'], r['message'] or '; '.join(f['message'] for f in r['failures']),
                  r) for r in host['rungs']]
        if host['unreachable']:
            cases.insert(0, ('connection', 'error', 'failed', host['failures'][0]['message'], None))
        for name, detection, remediation, message, rung in cases:
            case = ET.SubElement(suite, 'testcase', classname=f"loopbreaker.notion.{host['host']}", name=name)
            counts['tests'] += 1
            if remediation == 'failed':
                ET.SubElement(case, 'failure', message=message or 'remediation failed', type=detection)
                counts['failures'] += 1
            elif detection == 'error':
                ET.SubElement(case, 'error', message=message or 'detection failed', type='error')
                counts['errors'] += 1
            elif detection == 'not_applicable':
                ET.SubElement(case, 'skipped', message=message or 'not applicable')
                counts['skipped'] += 1
            out = [f'detection={detection} remediation={remediation}']
            for subject in (rung or {}).get('subjects', []):
                out.append(f"{subject['subject']}: {subject['detection']}/{subject['remediation']} {'; '.join(subject['changes'])}")
            ET.SubElement(case, 'system-out').text = '\n'.join(out)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        suites.set(key, str(value))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding='unicode') + '\n'
