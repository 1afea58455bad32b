# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated Windows host's network and evidence primitives (a mixin of SimulatedWindows).

Private to this collection. ``probe_network`` is not simulated: the twin runs the
probes for real (module_utils/_netprobe.py) from this machine, against the
loopback addresses the names are given in ``resolve`` (as a hosts file would;
any other name or address is refused, never looked up) and through the proxy
each setting gives, so the lab's real local services (a Notion stand-in, squid,
an intercepting proxy) decide the outcome. The proxy for a URL is chosen as
WinHTTP does for a manual setting (server per scheme, bypass list with
``<local>``); a PAC setting is fetched and evaluated for real with pypac (_pac,
with WinHTTP's rules: http/https only, the PAC MIME type or file suffix), where the
real bridge asks WinHTTP's auto-proxy; auto-detect (WPAD) is probed direct and says
so. ``read_file_tails`` reads the simulated file system.
"""
from __future__ import annotations

import base64
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _netprobe
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError


def twin_proxy_for(setting: dict[str, t.Any], url: str) -> str | None:
    return _netprobe.proxy_for(setting, url)


class SimulatedNetwork:
    """op_probe_network and op_read_file_tails for SimulatedWindows."""

    state: dict[str, t.Any]
    _matches: t.Callable[..., list[dict[str, t.Any]]]

    def op_probe_network(self, endpoints: list[dict[str, t.Any]], proxies: list[dict[str, t.Any]],
                         resolve: dict[str, str] | None = None, ca_bundle: str | None = None,
                         timeout_seconds: int = 5) -> dict[str, t.Any]:
        if not endpoints:
            raise BridgeOperationError('probe_network needs at least one endpoint')
        outcome = _netprobe.probe_all(endpoints, proxies or [{'mode': 'direct'}], resolve=resolve,
                                      ca_bundle=ca_bundle, timeout_seconds=timeout_seconds, proxy_for=twin_proxy_for,
                                      loopback_only=True, pac_rules='winhttp')
        for result in outcome['results']:
            setting = (proxies or [{'mode': 'direct'}])[result['proxy_index']]
            if setting.get('mode') in ('auto', 'auto_detect'):
                result['note'] = f"{setting['mode']} not evaluated by the simulated host: probed direct"
            elif result.get('pac', {}).get('error') and result['failed_step'] != 'pac':
                result['note'] = (f"PAC not used ({result['pac']['error']}): probed direct, "
                                  "as WinHTTP's clients fall back")
        return outcome

    def op_read_file_tails(self, patterns: list[str], max_bytes: int = 65536, head_bytes: int = 0) -> dict[str, t.Any]:
        files = []
        for pattern in patterns:
            for entry in self._matches(pattern, None):  # the reparse rule of the twin's other reads
                if entry['type'] != 'file':
                    continue
                data = base64.b64decode(entry['content'])
                files.append({'path': entry['path'], 'bytes': len(data), 'modified': entry['modified'],
                              'tail': data[-max_bytes:].decode('utf-8', 'replace') if max_bytes else '',
                              'head': base64.b64encode(data[:head_bytes]).decode(), 'error': None})
        return {'files': files}
