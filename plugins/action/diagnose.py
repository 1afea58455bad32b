# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._bridge_action import BridgeAction, BridgeClient


class ActionModule(BridgeAction):
    MODULE = 'diagnose'
    ARGUMENT_SPEC = _diagnose.ARGUMENT_SPEC
    MUTUALLY_EXCLUSIVE = _diagnose.MUTUALLY_EXCLUSIVE

    def run_windows(self, host: BridgeClient, params: dict[str, t.Any], *, check_mode: bool,
                    now: datetime.datetime, token: str) -> dict[str, t.Any]:
        self.reject_profiles_root(params)
        if params.get('proxy') or params.get('no_proxy') is not None:
            raise RequestError('proxy and no_proxy apply to macOS and Linux; on Windows each user\'s own proxy '
                               'settings (or the machine-wide policy) are probed')
        return _diagnose.run(host, params, platform='windows', now=now)
