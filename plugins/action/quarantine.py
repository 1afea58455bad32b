# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._bridge_action import BridgeAction, BridgeClient


class ActionModule(BridgeAction):
    MODULE = 'quarantine'
    ARGUMENT_SPEC = _quarantine_state.ARGUMENT_SPEC
    MUTUALLY_EXCLUSIVE = _quarantine_state.MUTUALLY_EXCLUSIVE
    REQUIRED_IF = _quarantine_state.REQUIRED_IF

    def run_windows(self, host: BridgeClient, params: dict[str, t.Any], *, check_mode: bool,
                    now: datetime.datetime, token: str) -> dict[str, t.Any]:
        self.reject_profiles_root(params)
        return _quarantine_state.run(host, WINDOWS, params, check_mode=check_mode, now=now, entry_token=token)
