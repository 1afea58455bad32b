# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turns loopbreaker.notion.fleet_report on for the playbooks in this folder (ladder.yml, ...).

Ansible loads callback plugins found next to a playbook without configuration. This one is the
collection's fleet_report under a local name; it writes into the play's escalation_report_dir.
It stands down when the collection's callback is enabled in the configuration as well, so a run
never writes the report twice.
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.callback.fleet_report import CallbackModule as FleetReportCallback
from ansible_collections.loopbreaker.notion.plugins.callback.fleet_report import enabled_in_config


class CallbackModule(FleetReportCallback):
    CALLBACK_NAME = 'loopbreaker_fleet_report'
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.disabled = enabled_in_config()
