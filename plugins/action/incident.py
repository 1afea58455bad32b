# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _incident
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._bridge_action import BridgeAction, BridgeClient


class ActionModule(BridgeAction):
    MODULE = 'incident'
    ARGUMENT_SPEC = _incident.ARGUMENT_SPEC
    REQUIRED_IF = _incident.REQUIRED_IF

    def run_windows(self, host: BridgeClient, params: dict[str, t.Any], *, check_mode: bool,
                    now: datetime.datetime, token: str) -> dict[str, t.Any]:
        self.reject_profiles_root(params)
        return _incident.run(host, params, check_mode=check_mode, now=now)
