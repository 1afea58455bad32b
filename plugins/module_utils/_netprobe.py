# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connectivity probes with the standard library only: DNS, TCP, TLS, HTTPS, Engine.IO and WebSocket.

Private to this collection. The same code runs the probes of ``probe_network``
on every Python host (the local POSIX host of the native modules, and the
simulated Windows host, which probes real services for real). It knows
transports, not Notion: the caller names the endpoints.

A probe goes through an HTTP proxy with CONNECT when given one, and reports
each step separately so that the diagnosis can tell a DNS failure from a
refused CONNECT, an intercepting proxy's certificate from a broken handshake,
and "Engine.IO polling works but the WebSocket upgrade fails".
"""
from __future__ import annotations

import base64
import concurrent.futures
import fnmatch
import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import tempfile
import time
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _pac

WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
MAX_RESPONSE = 65536


class StepError(Exception):
    """One step of a probe failed; ``step`` names it, the message is what a person reads."""

    def __init__(self, step: str, message: str, **details: t.Any) -> None:
        super().__init__(message)
        self.step = step
        self.details = details


def _issuer(der: bytes | None) -> dict[str, str]:
    """Issuer and subject of a DER certificate, through the ssl module's own decoder."""
    if not der:
        return {}
    decode = getattr(getattr(ssl, '_ssl', None), '_test_decode_cert', None)
    if decode is None:
        return {}
    handle, name = tempfile.mkstemp(suffix='.pem')
    try:
        with os.fdopen(handle, 'w') as stream:
            stream.write(ssl.DER_cert_to_PEM_cert(der))
        decoded = decode(name)
    except (OSError, ValueError, ssl.SSLError):
        return {}
    finally:
        os.unlink(name)

    def flat(rdns: t.Any) -> dict[str, str]:
        return {key: value for rdn in rdns or () for key, value in rdn}
    issuer, subject = flat(decoded.get('issuer')), flat(decoded.get('subject'))
    return {'issuer': issuer.get('organizationName') or issuer.get('commonName', ''),
            'issuer_cn': issuer.get('commonName', ''), 'subject_cn': subject.get('commonName', '')}


def _read_response(sock: t.Any, deadline: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased) and body of one HTTP/1.1 response (Content-Length or close)."""
    data = b''
    while b'\r\n\r\n' not in data:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_RESPONSE:
            break
    head, _sep, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ', 2)
    if len(parts) < 2 or not parts[0].startswith('HTTP/') or not parts[1].isdigit():
        raise ValueError(f'not an HTTP response: {lines[0][:80]!r}')
    headers = {}
    for line in lines[1:]:
        name, _colon, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get('content-length', '0') or 0) if 'content-length' in headers else None
    status = int(parts[1])
    if status != 101 and length is not None:
        while len(body) < min(length, MAX_RESPONSE) and time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def _request(sock: t.Any, method: str, host: str, path: str, extra: dict[str, str] | None = None) -> None:
    lines = [f'{method} {path} HTTP/1.1', f'Host: {host}', 'User-Agent: loopbreaker.notion-diagnose',
             'Accept: */*', *[f'{k}: {v}' for k, v in (extra or {}).items()]]
    sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1'))


LOOPBACK_ONLY_VARIABLE = 'LOOPBREAKER_LOOPBACK_ONLY'


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip('[]')).is_loopback
    except ValueError:
        return address.lower() == 'localhost'


class Route:
    """How to reach one endpoint: direct (with optional name overrides) or through an HTTP proxy."""

    def __init__(self, proxy: str | None, resolve: dict[str, str], cafile: str | None, timeout: float,
                 *, loopback_only: bool = False) -> None:
        self.proxy = proxy
        self.resolve = {k.lower(): v for k, v in resolve.items()}
        self.cafile = cafile
        self.timeout = timeout
        self.loopback_only = loopback_only or bool(os.environ.get(LOOPBACK_ONLY_VARIABLE))
        if self.loopback_only and proxy:
            proxy_host = proxy.rpartition(':')[0].strip('[]')
            if not _is_loopback(self.resolve.get(proxy_host.lower(), proxy_host)):
                raise ValueError(f'proxy {proxy} is not on a loopback address')

    def addresses(self, host: str) -> list[str]:
        if host.lower() in self.resolve:
            address = self.resolve[host.lower()]
            if self.loopback_only and not _is_loopback(address):
                raise StepError('dns', f'{host} resolves to {address}, not a loopback address: not probed here')
            return [address]
        if self.loopback_only:
            # A simulated host (and every test run) reaches nothing but this machine's loopback.
            raise StepError('dns', f'{host} is not among the names given to resolve: not probed here')
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise StepError('dns', f'{host} does not resolve: {error}') from None
        return sorted({info[4][0] for info in infos})

    def open(self, host: str, port: int, steps: dict[str, t.Any], deadline: float) -> ssl.SSLSocket:
        """A verified TLS socket to host:port; records dns, tcp (proxy) and tls steps."""
        if self.proxy:
            proxy_host, _colon, proxy_port = self.proxy.rpartition(':')
            steps['dns'] = {'ok': True, 'by': 'proxy'}
            try:
                raw = socket.create_connection((proxy_host, int(proxy_port)), timeout=self.timeout)
            except OSError as error:
                raise StepError('proxy', f'proxy {self.proxy} unreachable: {error}') from None
            try:
                raw.sendall(f'CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n'.encode())
                status, headers, _body = _read_response(raw, deadline)
            except (OSError, ValueError) as error:
                raw.close()
                raise StepError('proxy', f'proxy {self.proxy} did not answer CONNECT: {error}') from None
            if status != 200:
                raw.close()
                raise StepError('connect', f'proxy {self.proxy} refused CONNECT {host}:{port} with HTTP {status}',
                                status=status, server=headers.get('server', ''))
            steps['tcp'] = {'ok': True, 'via': self.proxy}
        else:
            addresses = self.addresses(host)
            steps['dns'] = {'ok': True, 'addresses': addresses}
            raw = None
            last: OSError | None = None
            for address in addresses:
                try:
                    raw = socket.create_connection((address, port), timeout=self.timeout)
                    break
                except OSError as error:
                    last = error
            if raw is None:
                raise StepError('tcp', f'TCP {host}:{port} failed: {last}')
            steps['tcp'] = {'ok': True, 'address': raw.getpeername()[0]}
        context = ssl.create_default_context(cafile=self.cafile) if self.cafile else ssl.create_default_context()
        try:
            wrapped = context.wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as error:
            peer = self._unverified_peer(host, port, deadline)
            raw.close()
            raise StepError('tls', f'TLS to {host}: {error.verify_message or error}', verified=False, **peer) from None
        except (ssl.SSLError, OSError) as error:
            raw.close()
            raise StepError('tls', f'TLS handshake with {host} failed: {error}') from None
        steps['tls'] = {'ok': True, 'verified': True, **_issuer(wrapped.getpeercert(binary_form=True)),
                        'version': wrapped.version()}
        return wrapped

    def _unverified_peer(self, host: str, port: int, deadline: float) -> dict[str, str]:
        """Who presented the refused certificate (an intercepting proxy's CA, typically)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with self.open_unverified(host, port, context, deadline) as sock:
                return _issuer(sock.getpeercert(binary_form=True))
        except (OSError, StepError, ValueError):
            return {}

    def open_unverified(self, host: str, port: int, context: ssl.SSLContext, deadline: float) -> ssl.SSLSocket:
        saved, self.cafile = self.cafile, None
        try:
            if self.proxy:
                proxy_host, _colon, proxy_port = self.proxy.rpartition(':')
                raw = socket.create_connection((proxy_host, int(proxy_port)), timeout=self.timeout)
                raw.sendall(f'CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n'.encode())
                status, _headers, _body = _read_response(raw, deadline)
                if status != 200:
                    raw.close()
                    raise StepError('connect', f'HTTP {status}')
            else:
                raw = socket.create_connection((self.addresses(host)[0], port), timeout=self.timeout)
            return context.wrap_socket(raw, server_hostname=host)
        finally:
            self.cafile = saved


def _websocket(route: Route, host: str, port: int, path: str, deadline: float, *,
               context: ssl.SSLContext | None = None) -> dict[str, t.Any]:
    """An Engine.IO v4 WebSocket upgrade and its probe exchange; raises StepError('websocket')."""
    steps: dict[str, t.Any] = {}
    try:
        sock = route.open_unverified(host, port, context, deadline) if context else route.open(host, port, steps, deadline)
    except StepError as error:
        raise StepError('websocket', str(error)) from None
    with sock:
        key = base64.b64encode(os.urandom(16)).decode()
        try:
            _request(sock, 'GET', host, path.replace('transport=polling', 'transport=websocket'),
                     {'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Key': key,
                      'Sec-WebSocket-Version': '13'})
            status, headers, rest = _read_response(sock, deadline)
        except (OSError, ValueError) as error:
            raise StepError('websocket', f'WebSocket upgrade to {host} got no answer: {error}') from None
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if status != 101 or headers.get('sec-websocket-accept') != expected:
            raise StepError('websocket', f'WebSocket upgrade to {host} refused: HTTP {status}', status=status)
        mask = os.urandom(4)
        payload = b'2probe'
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        data = rest
        try:
            while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            raise StepError('websocket', f'WebSocket to {host} closed during the probe: {error}') from None
        answer = data[2:2 + (data[1] & 0x7F)] if len(data) >= 2 else b''
        if answer != b'3probe':
            raise StepError('websocket', f'WebSocket to {host} opened but answered {answer[:20]!r} to the probe')
        return {'ok': True, 'status': 101}


def probe_endpoint(endpoint: dict[str, t.Any], route: Route) -> dict[str, t.Any]:
    """Every step of one endpoint through one route; never raises."""
    host, port, kind = str(endpoint['host']), int(endpoint.get('port') or 443), endpoint.get('kind', 'https')
    path = str(endpoint.get('path') or ('/primus-v8/?EIO=4&transport=polling' if kind == 'engineio' else '/'))
    started = time.monotonic()
    deadline = started + route.timeout * 3
    steps: dict[str, t.Any] = {}
    result: dict[str, t.Any] = {'name': endpoint.get('name') or host, 'host': host, 'port': port, 'kind': kind,
                                'proxy': route.proxy, 'ok': False, 'failed_step': None, 'error': None, 'steps': steps}
    try:
        with route.open(host, port, steps, deadline) as sock:
            _request(sock, 'GET', host, path)
            try:
                status, headers, body = _read_response(sock, deadline)
            except (OSError, ValueError) as error:
                raise StepError('http', f'no HTTP answer from {host}: {error}') from None
        if status >= 500 or status in (403, 407):
            raise StepError('http', f'{host}{path} answered HTTP {status}', status=status)
        steps['http'] = {'ok': True, 'status': status}
        if kind == 'engineio':
            handshake = _engineio_open(body)
            if handshake is None:
                raise StepError('polling', f'{host}{path} is not an Engine.IO v4 handshake: {body[:60]!r}')
            steps['polling'] = {'ok': True, 'sid': handshake.get('sid'), 'upgrades': handshake.get('upgrades')}
            sid_path = f'{path}&sid={handshake.get("sid", "")}'
            steps['websocket'] = _websocket(route, host, port, sid_path, deadline)
        result['ok'] = True
    except StepError as error:
        steps[error.step] = {'ok': False, 'error': str(error), **error.details}
        result.update(failed_step=error.step, error=str(error))
        if error.step == 'tls' and kind == 'engineio':
            # Through an intercepting proxy: would the real-time channel work if its CA were trusted?
            steps['behind_interception'] = _behind_interception(route, host, port, path, deadline)
    except OSError as error:
        steps['io'] = {'ok': False, 'error': str(error)}
        result.update(failed_step='io', error=f'{host}: {error}')
    result['elapsed_ms'] = int((time.monotonic() - started) * 1000)
    return result


def _refused(endpoint: dict[str, t.Any], reason: str) -> dict[str, t.Any]:
    """The result of a probe that was not sent (a proxy off loopback where only loopback may be reached)."""
    host = str(endpoint['host'])
    return {'name': endpoint.get('name') or host, 'host': host, 'port': int(endpoint.get('port') or 443),
            'kind': endpoint.get('kind', 'https'), 'proxy': None, 'ok': False, 'failed_step': 'proxy',
            'error': f'not probed here: {reason}', 'steps': {'proxy': {'ok': False, 'error': reason}}, 'elapsed_ms': 0}


def _engineio_open(body: bytes) -> dict[str, t.Any] | None:
    text = body.decode('utf-8', 'replace')
    if not text.startswith('0{'):
        return None
    try:
        packet = json.loads(text[1:])
    except ValueError:
        return None
    return packet if isinstance(packet, dict) and 'sid' in packet else None


def _behind_interception(route: Route, host: str, port: int, path: str, deadline: float) -> dict[str, t.Any]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    outcome: dict[str, t.Any] = {'polling': False, 'websocket': False}
    try:
        with route.open_unverified(host, port, context, deadline) as sock:
            _request(sock, 'GET', host, path)
            status, _headers, body = _read_response(sock, deadline)
        handshake = _engineio_open(body) if status == 200 else None
        outcome['polling'] = handshake is not None
        if handshake:
            _websocket(route, host, port, f'{path}&sid={handshake["sid"]}', deadline, context=context)
            outcome['websocket'] = True
    except StepError as error:
        outcome['error'] = str(error)
    except (OSError, ValueError) as error:
        outcome['error'] = str(error)
    return outcome


def probe_all(endpoints: list[dict[str, t.Any]], proxies: list[dict[str, t.Any]], *,
              resolve: dict[str, str] | None = None, ca_bundle: str | None = None,
              timeout_seconds: float = 5, proxy_for: t.Callable[[dict[str, t.Any], str], str | None],
              loopback_only: bool = False, pac_rules: str = 'posix') -> dict[str, t.Any]:
    """Every endpoint through every proxy setting, in parallel; results keep the input order.

    ``loopback_only`` (or LOOPBREAKER_LOOPBACK_ONLY in the environment, which the Makefile sets for
    every test and the lab) refuses to reach anything but loopback addresses, the PAC URL included.
    A ``pac`` setting is fetched and evaluated once (see _pac; ``pac_rules`` posix or winhttp) and
    each endpoint is probed through the first PROXY or DIRECT entry its URL gets; the result's
    ``pac`` says which entry that was.
    """
    started = time.monotonic()
    loopback_only = loopback_only or bool(os.environ.get(LOOPBACK_ONLY_VARIABLE))
    urls = [f'https://{endpoint["host"]}/' for endpoint in endpoints]
    jobs = []
    for index, setting in enumerate(proxies):
        pac_routes = _pac.choose_routes(setting, urls, resolve=resolve or {}, cafile=ca_bundle,
                                        timeout=float(timeout_seconds), loopback_only=loopback_only,
                                        rules=pac_rules) if setting.get('mode') == 'pac' else {}
        for endpoint, url in zip(endpoints, urls):
            pac_route = pac_routes.get(url)
            proxy = pac_route['proxy'] if pac_route else proxy_for(setting, url)
            route: Route | t.Callable[[], dict[str, t.Any]]
            if pac_route and not pac_route['usable']:
                route = functools.partial(_not_evaluated, endpoint, pac_route['pac']['error'])
            else:
                try:
                    route = Route(proxy, resolve or {}, ca_bundle, float(timeout_seconds), loopback_only=loopback_only)
                except ValueError as error:
                    route = functools.partial(_refused, endpoint, str(error))
            jobs.append((index, endpoint, route, pac_route['pac'] if pac_route else None))
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, max(1, len(jobs)))) as pool:
        futures = [pool.submit(probe_endpoint, endpoint, route) if isinstance(route, Route) else pool.submit(route)
                   for _index, endpoint, route, _pac_info in jobs]
        results = []
        for (index, _endpoint, _route, pac_info), future in zip(jobs, futures):
            result = {'proxy_index': index, **future.result()}
            if pac_info is not None:
                result['pac'] = pac_info
            results.append(result)
    return {'results': results, 'elapsed_ms': int((time.monotonic() - started) * 1000)}


def _not_evaluated(endpoint: dict[str, t.Any], reason: str) -> dict[str, t.Any]:
    """The result of a probe that was not sent: the PAC file gave no route the probes can follow."""
    result = _refused(endpoint, reason)
    result.update(failed_step='pac', error=f'not probed: {reason}', steps={'pac': {'ok': False, 'error': reason}})
    return result


def proxy_for(setting: dict[str, t.Any], url: str) -> str | None:
    """The proxy (host:port) a WinINET-style setting gives for an https URL, or None for direct.

    ``setting``: mode (direct, manual, pac, auto_detect), server ("host:port" or
    "http=h:p;https=h:p"), bypass (";"- or ","-separated host patterns with ``*``, and
    ``<local>`` for names without a dot). PAC settings are evaluated by probe_all (_pac);
    auto-detect (WPAD) is not evaluated here (the Windows bridge asks WinHTTP).
    """
    if setting.get('mode') != 'manual' or not setting.get('server'):
        return None
    host = url.split('://', 1)[-1].split('/', 1)[0].split(':', 1)[0].lower()
    for pattern in re.split(r'[;,\s]+', str(setting.get('bypass') or '')):
        pattern = pattern.strip().lower()
        if not pattern:
            continue
        if pattern == '<local>':
            if '.' not in host:
                return None
            continue
        if fnmatch.fnmatchcase(host, pattern) or (pattern.startswith('.') and host.endswith(pattern)):
            return None
    server = str(setting['server'])
    if '=' in server:
        by_scheme = dict(part.split('=', 1) for part in server.split(';') if '=' in part)
        server = by_scheme.get('https') or by_scheme.get('http') or ''
    server = server.split('://', 1)[-1].rstrip('/')
    return server or None
