# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_data
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._bridge_action import BridgeAction, BridgeClient


class ActionModule(BridgeAction):
    MODULE = 'browser_data'
    ARGUMENT_SPEC = _browser_data.ARGUMENT_SPEC
    MUTUALLY_EXCLUSIVE = _browser_data.MUTUALLY_EXCLUSIVE

    def run_windows(self, host: BridgeClient, params: dict[str, t.Any], *, check_mode: bool,
                    now: datetime.datetime, token: str) -> dict[str, t.Any]:
        self.reject_profiles_root(params)
        return _browser_data.run(host, WINDOWS, params, check_mode=check_mode, now=now, entry_token=token)
