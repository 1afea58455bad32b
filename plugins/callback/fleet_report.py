# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_report
type: aggregate
short_description: Write a fleet report of the Notion remediation rungs (JSON, HTML, JUnit)
description:
  - Collects the result of every public module of this collection (the rungs C(app_data), C(proxy),
    C(restart), C(firewall), C(reinstall), and any later ones) per host and per user, and writes at the
    end of the run, on the controller, C(report.json) (schema-versioned), a self-contained C(report.html)
    (nothing loaded from the network; CSS, script and chart are inline) and C(junit.xml) (one test case per host and rung).
  - Outcomes are named like Intune Remediations. Detection is C(healthy), C(issue), C(error) or
    C(not_applicable); remediation is C(skipped), C(fixed), C(failed) or C(pending) (in check mode, or
    waiting for a user to log on, or a block rule only reported).
  - Enable it with C(callbacks_enabled = loopbreaker.notion.fleet_report) in C(ansible.cfg) (or
    C(ANSIBLE_CALLBACKS_ENABLED)). C(playbooks/ladder.yml) enables it by itself, through the callback
    next to it.
  - It writes into O(report_dir), or else into C(<escalation_report_dir>/fleet) or
    C(<ladder_report_dir>/fleet) (the roles' per-host reports are in that folder itself).
  - Nothing is written when neither O(report_dir) nor one of those variables is set.
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Enabled in C(callbacks_enabled), or the run is of C(playbooks/ladder.yml).
options:
  report_dir:
    description:
      - Controller directory receiving C(report.json), C(report.html) and C(junit.xml); created (mode 0700)
        if missing. Files are replaced on every run.
      - When unset, C(fleet) below the play's C(escalation_report_dir) or C(ladder_report_dir) (extra vars or play vars).
    type: path
    env:
      - name: LOOPBREAKER_FLEET_REPORT_DIR
    ini:
      - section: callback_loopbreaker_fleet_report
        key: report_dir
"""

import datetime
import json
import os
import secrets
import typing as t
from pathlib import Path

from ansible import constants as C
from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ANSIBLE_CORE_VERSION

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_render import to_html, to_junit
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_report import FleetReport

COLLECTION = 'loopbreaker.notion.'
FQCN = 'loopbreaker.notion.fleet_report'


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace('+00:00', 'Z')


def collection_version() -> str:
    """From MANIFEST.json when installed from a tarball, galaxy.yml in a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        return json.loads((root / 'MANIFEST.json').read_text(encoding='utf-8'))['collection_info']['version']
    except (OSError, ValueError, KeyError):
        pass
    try:
        for line in (root / 'galaxy.yml').read_text(encoding='utf-8').splitlines():
            if line.startswith('version:'):
                return line.split(':', 1)[1].strip().strip('\'"')
    except OSError:
        pass
    return 'unknown'


def write_documents(directory: str, document: dict[str, t.Any]) -> list[str]:
    """report.json, report.html and junit.xml in directory, each replaced atomically, mode 0600."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    written = []
    for name, text in (('report.json', json.dumps(document, indent=1, sort_keys=True) + '\n'),
                       ('report.html', to_html(document)), ('junit.xml', to_junit(document))):
        path = os.path.join(directory, name)
        temporary = f'{path}.tmp-{os.getpid()}'
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
        os.replace(temporary, path)
        written.append(path)
    return written


class CallbackModule(CallbackBase):
    """Feeds module results into a FleetReport and writes it when the run ends."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = FQCN
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._started = _now()
        self._check_mode = bool(context.CLIARGS.get('check', False))
        self._playbooks: list[str] = []
        self._play_dir: str | None = None
        self._incident: str | None = None
        self._report: FleetReport | None = None

    def _option(self, name: str) -> t.Any:
        try:
            return self.get_option(name)
        except KeyError:  # the ladder's adjacent callback has no documentation of its own
            return None

    def _fleet(self) -> FleetReport:
        if self._report is None:
            self._report = FleetReport(
                run_id=f"{self._started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}", started=_iso(self._started),
                check_mode=self._check_mode, collection_version=collection_version(),
                ansible_core_version=ANSIBLE_CORE_VERSION, incident_id=self._incident, playbooks=self._playbooks)
        return self._report

    def v2_playbook_on_start(self, playbook: t.Any) -> None:
        self._playbooks.append(os.path.basename(getattr(playbook, '_file_name', '') or ''))

    def v2_playbook_on_play_start(self, play: t.Any) -> None:
        try:
            # pylint: disable-next=import-outside-toplevel
            from ansible.template import Templar
            variables = play.get_variable_manager().get_vars(play=play)
            templar = Templar(loader=play._loader, variables=variables)
            for name in ('escalation_report_dir', 'ladder_report_dir', 'incident_id', 'ladder_incident'):
                value = variables.get(name)
                if value and (not name.endswith('_report_dir') or self._play_dir is None):
                    rendered = str(templar.template(value))
                    if not rendered:
                        continue
                    if name in ('incident_id', 'ladder_incident'):
                        self._incident = rendered
                        self._fleet().run['incident_id'] = rendered
                    else:
                        # A folder of its own: the role's <host>.json files share escalation_report_dir.
                        self._play_dir = os.path.join(rendered, 'fleet')
        except Exception as error:  # pylint: disable=broad-exception-caught
            # A report must never break the run it reports on.
            self._display.warning(f'{FQCN}: could not read the play variables: {error}')

    def _record(self, result: t.Any, failed: bool = False) -> None:
        task = result._task
        action = getattr(task, 'resolved_action', None) or task.action
        if not action or not action.startswith(COLLECTION):
            return
        check_mode = task.check_mode if isinstance(task.check_mode, bool) else self._check_mode
        looped = result._result.get('results')
        # A task with a loop reports once per item: each item is a module result of its own.
        for values in (looped if isinstance(looped, list) else [dict(result._result, failed=failed or result._result.get('failed'))]):
            if isinstance(values, dict) and not values.get('skipped'):
                self._fleet().add_result(result._host.get_name(), action[len(COLLECTION):],
                                         dict(values.get('invocation', {}).get('module_args') or task.args or {}), values,
                                         check_mode=check_mode, task=task.get_name())

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._fleet().add_unreachable(result._host.get_name(), str(result._result.get('msg') or ''))

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        directory = self._option('report_dir') or self._play_dir
        if not directory:
            return
        try:
            paths = write_documents(directory, self._fleet().document(ended=_iso(_now())))
        except OSError as error:
            self._display.warning(f'{FQCN}: could not write the fleet report to {directory}: {error}')
            return
        self._display.display(f'fleet report: {paths[1]}')


def enabled_in_config() -> bool:
    return FQCN in (C.CALLBACKS_ENABLED or [])
