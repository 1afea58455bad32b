# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fix 4 on macOS (networksetup, per network service) and Linux (GNOME proxy settings).

Private to this collection. Every command line either tool is ever given is
built in COMMANDS, and every output is read by a parser next to it, so the
contract is tested as tables of input -> argv and output -> state. Planning is
pure: current state + mode -> commands to run and the record to keep.
"""
from __future__ import annotations

import ast
import typing as t

NETWORKSETUP = '/usr/sbin/networksetup'
GSETTINGS = 'gsettings'
GNOME_SCHEMA = 'org.gnome.system.proxy'

Argv = list[str]

COMMANDS: dict[str, t.Callable[..., Argv]] = {
    'list_services': lambda: [NETWORKSETUP, '-listallnetworkservices'],
    'get_web': lambda service: [NETWORKSETUP, '-getwebproxy', service],
    'get_secure_web': lambda service: [NETWORKSETUP, '-getsecurewebproxy', service],
    'get_auto_url': lambda service: [NETWORKSETUP, '-getautoproxyurl', service],
    'get_auto_discovery': lambda service: [NETWORKSETUP, '-getproxyautodiscovery', service],
    'get_bypass': lambda service: [NETWORKSETUP, '-getproxybypassdomains', service],
    'set_web_state': lambda service, on: [NETWORKSETUP, '-setwebproxystate', service, 'on' if on else 'off'],
    'set_secure_web_state': lambda service, on: [NETWORKSETUP, '-setsecurewebproxystate', service, 'on' if on else 'off'],
    'set_auto_url_state': lambda service, on: [NETWORKSETUP, '-setautoproxystate', service, 'on' if on else 'off'],
    'set_auto_discovery': lambda service, on: [NETWORKSETUP, '-setproxyautodiscovery', service, 'on' if on else 'off'],
    # networksetup takes the domains as separate arguments; "Empty" clears the list.
    'set_bypass': lambda service, domains: [NETWORKSETUP, '-setproxybypassdomains', service, *(domains or ['Empty'])],
    'gnome_schemas': lambda: [GSETTINGS, 'list-schemas'],
    'gnome_get': lambda key: [GSETTINGS, 'get', GNOME_SCHEMA, key],
    'gnome_set_mode': lambda mode: [GSETTINGS, 'set', GNOME_SCHEMA, 'mode', mode],
    'gnome_set_ignore_hosts': lambda hosts: [GSETTINGS, 'set', GNOME_SCHEMA, 'ignore-hosts', str(list(hosts))],
}


class CommandOutputError(ValueError):
    """Output a parser does not recognise: reported, nothing is changed."""


def parse_services(output: str) -> list[dict[str, t.Any]]:
    """``-listallnetworkservices``: a header line, then names; ``*`` marks a disabled service."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines or not lines[0].startswith('An asterisk'):
        raise CommandOutputError(f'unexpected networksetup -listallnetworkservices output: {output[:80]!r}')
    return [{'name': line.lstrip('*'), 'enabled': not line.startswith('*')} for line in lines[1:]]


def _fields(output: str) -> dict[str, str]:
    fields = {}
    for line in output.splitlines():
        if ':' in line:
            name, value = line.split(':', 1)
            fields[name.strip()] = value.strip()
    return fields


def parse_proxy(output: str) -> dict[str, t.Any]:
    """``-getwebproxy`` / ``-getsecurewebproxy``: Enabled, Server, Port."""
    fields = _fields(output)
    if 'Enabled' not in fields:
        raise CommandOutputError(f'unexpected networksetup proxy output: {output[:80]!r}')
    return {'enabled': fields['Enabled'] == 'Yes', 'server': fields.get('Server', ''), 'port': fields.get('Port', '')}


def parse_auto_url(output: str) -> dict[str, t.Any]:
    fields = _fields(output)
    if 'Enabled' not in fields:
        raise CommandOutputError(f'unexpected networksetup -getautoproxyurl output: {output[:80]!r}')
    url = fields.get('URL', '')
    return {'enabled': fields['Enabled'] == 'Yes', 'url': '' if url == '(null)' else url}


def parse_auto_discovery(output: str) -> bool:
    fields = _fields(output)
    if 'Auto Proxy Discovery' not in fields:
        raise CommandOutputError(f'unexpected networksetup -getproxyautodiscovery output: {output[:80]!r}')
    return fields['Auto Proxy Discovery'] == 'On'


def parse_bypass(output: str) -> list[str]:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if lines and lines[0].startswith("There aren't any bypass domains"):
        return []
    return lines


def parse_gnome_value(output: str) -> t.Any:
    """gsettings prints GVariant text; strings and string lists are Python literals too."""
    text = output.strip()
    if text.startswith('@as '):
        text = text[4:]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise CommandOutputError(f'unexpected gsettings output: {output[:80]!r}') from None


def _merged(existing: list[str], hosts: list[str]) -> list[str]:
    seen = {entry.lower() for entry in existing}
    return existing + [host for host in hosts if host.lower() not in seen]


def plan_service(service: str, state: dict[str, t.Any], mode: str, disable: list[str], hosts: list[str],
                 record: dict[str, t.Any] | None) -> list[Argv]:
    """Commands turning one macOS network service's current state into the wanted one."""
    if mode == 'restore':
        if record is None:
            return []
        wanted = record
        commands = [COMMANDS[f'set_{kind}_state'](service, wanted[kind]['enabled'])
                    for kind in ('web', 'secure_web') if state[kind]['enabled'] != wanted[kind]['enabled']]
        if state['auto_url']['enabled'] != wanted['auto_url']['enabled']:
            commands.append(COMMANDS['set_auto_url_state'](service, wanted['auto_url']['enabled']))
        if state['auto_discovery'] != wanted['auto_discovery']:
            commands.append(COMMANDS['set_auto_discovery'](service, wanted['auto_discovery']))
        if state['bypass'] != wanted['bypass']:
            commands.append(COMMANDS['set_bypass'](service, wanted['bypass']))
        return commands
    if mode == 'direct':
        commands = []
        if 'manual_proxy' in disable:
            commands += [COMMANDS[f'set_{kind}_state'](service, False) for kind in ('web', 'secure_web')
                         if state[kind]['enabled']]
        if 'pac' in disable and state['auto_url']['enabled']:
            commands.append(COMMANDS['set_auto_url_state'](service, False))
        if 'auto_detect' in disable and state['auto_discovery']:
            commands.append(COMMANDS['set_auto_discovery'](service, False))
        return commands
    if not (state['web']['enabled'] or state['secure_web']['enabled']):
        return []
    merged = _merged(state['bypass'], hosts)
    return [COMMANDS['set_bypass'](service, merged)] if merged != state['bypass'] else []


def plan_gnome(state: dict[str, t.Any], mode: str, disable: list[str], hosts: list[str],
               record: dict[str, t.Any] | None) -> list[Argv]:
    """Commands for the GNOME proxy settings of the connection user."""
    if mode == 'restore':
        if record is None:
            return []
        commands = []
        if state['mode'] != record['mode']:
            commands.append(COMMANDS['gnome_set_mode'](record['mode']))
        if state['ignore_hosts'] != record['ignore_hosts']:
            commands.append(COMMANDS['gnome_set_ignore_hosts'](record['ignore_hosts']))
        return commands
    if mode == 'direct':
        turns_off = {'manual': 'manual_proxy' in disable, 'auto': 'pac' in disable or 'auto_detect' in disable}
        return [COMMANDS['gnome_set_mode']('none')] if turns_off.get(state['mode']) else []
    if state['mode'] != 'manual':
        return []
    merged = _merged(state['ignore_hosts'], hosts)
    return [COMMANDS['gnome_set_ignore_hosts'](merged)] if merged != state['ignore_hosts'] else []


Runner = t.Callable[[Argv], tuple[int, str, str]]
MAC_RECORD = '/Library/Application Support/loopbreaker/proxy-record.json'
GNOME_RECORD = '.local/share/loopbreaker/proxy-record.json'  # relative to the connection user's home


class NativeProxyError(Exception):
    """A command failed; the message says which and what it printed."""


def run_checked(runner: Runner, argv: Argv) -> str:
    rc, out, err = runner(argv)
    if rc != 0:
        raise NativeProxyError(f"{' '.join(argv)} failed (rc={rc}): {(err or out).strip()}")
    return out


def read_service(runner: Runner, service: str) -> dict[str, t.Any]:
    return {
        'web': parse_proxy(run_checked(runner, COMMANDS['get_web'](service))),
        'secure_web': parse_proxy(run_checked(runner, COMMANDS['get_secure_web'](service))),
        'auto_url': parse_auto_url(run_checked(runner, COMMANDS['get_auto_url'](service))),
        'auto_discovery': parse_auto_discovery(run_checked(runner, COMMANDS['get_auto_discovery'](service))),
        'bypass': parse_bypass(run_checked(runner, COMMANDS['get_bypass'](service))),
    }


def read_gnome(runner: Runner) -> dict[str, t.Any] | None:
    """GNOME proxy state, or None when GNOME's proxy schema is not installed."""
    rc, out, _err = runner(COMMANDS['gnome_schemas']())
    if rc != 0 or GNOME_SCHEMA not in out.split():
        return None
    return {'mode': parse_gnome_value(run_checked(runner, COMMANDS['gnome_get']('mode'))),
            'ignore_hosts': list(parse_gnome_value(run_checked(runner, COMMANDS['gnome_get']('ignore-hosts'))))}


def plan_native(system: str, runner: Runner, params: dict[str, t.Any], hosts: list[str],
                record: dict[str, t.Any] | None, has_session_bus: bool) -> dict[str, t.Any]:
    """Read the host with ``runner`` and decide; returns state, commands and the record to keep."""
    disable = params['disable']
    if system == 'darwin':
        available = [s for s in parse_services(run_checked(runner, COMMANDS['list_services']())) if s['enabled']]
        names = [s['name'] for s in available]
        # networksetup matches service names case-insensitively ("wi-fi" is "Wi-Fi"); so do we,
        # and use the spelling networksetup lists.
        by_folded = {name.lower(): name for name in names}
        unknown = [name for name in params.get('services') or () if name.lower() not in by_folded]
        if unknown:
            raise NativeProxyError(f'unknown network service(s): {", ".join(unknown)}; enabled services: {", ".join(names)}')
        chosen = list(dict.fromkeys(by_folded[name.lower()] for name in params['services'])) if params.get('services') \
            else names
        states = {name: read_service(runner, name) for name in chosen}
        commands = {name: plan_service(name, states[name], params['mode'], disable, hosts,
                                       (record or {}).get(name)) for name in chosen}
        return {'scope': 'machine', 'targets': states, 'commands': commands}
    if not has_session_bus:
        return {'not_applicable': 'GNOME proxy settings need the user\'s D-Bus session (DBUS_SESSION_BUS_ADDRESS '
                                  'is not set); on Linux, Notion follows the desktop session\'s proxy'}
    state = read_gnome(runner)
    if state is None:
        return {'not_applicable': f'no {GNOME_SCHEMA} schema: this Linux host has no GNOME proxy settings to change'}
    commands = {'gnome': plan_gnome(state, params['mode'], disable, hosts, (record or {}).get('gnome'))}
    return {'scope': 'user', 'targets': {'gnome': state}, 'commands': commands}


def read_pac_setting(system: str, runner: Runner, has_session_bus: bool) -> tuple[dict[str, t.Any] | None, str]:
    """The system's PAC setting for diagnose, as a probe_network proxy setting, and where it came from.

    macOS: the first enabled network service (in networksetup's order) whose automatic proxy
    configuration is on with a URL. Linux: GNOME's ``mode 'auto'`` with ``autoconfig-url``, readable
    only with the user's D-Bus session (run as root, gsettings would read root's settings, not the
    user's). (None, why) when there is none or it cannot be read: diagnose then uses the environment.
    """
    try:
        if system == 'darwin':
            for service in parse_services(run_checked(runner, COMMANDS['list_services']())):
                if not service['enabled']:
                    continue
                auto = parse_auto_url(run_checked(runner, COMMANDS['get_auto_url'](service['name'])))
                if auto['enabled'] and auto['url']:
                    return {'mode': 'pac', 'pac_url': auto['url']}, f"networksetup -getautoproxyurl {service['name']}"
            return None, 'no network service has an automatic proxy configuration URL'
        if not has_session_bus:
            return None, 'GNOME proxy settings need the user\'s D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)'
        rc, out, _err = runner(COMMANDS['gnome_schemas']())
        if rc != 0 or GNOME_SCHEMA not in out.split():
            return None, f'no {GNOME_SCHEMA} schema'
        if parse_gnome_value(run_checked(runner, COMMANDS['gnome_get']('mode'))) != 'auto':
            return None, f'{GNOME_SCHEMA} mode is not auto'
        url = parse_gnome_value(run_checked(runner, COMMANDS['gnome_get']('autoconfig-url')))
        if not isinstance(url, str) or not url:
            return None, f'{GNOME_SCHEMA} mode is auto without an autoconfig-url (WPAD is not evaluated)'
        return {'mode': 'pac', 'pac_url': url}, f'gsettings {GNOME_SCHEMA} autoconfig-url'
    except (CommandOutputError, NativeProxyError, OSError) as error:
        return None, f'proxy settings not read: {error}'
