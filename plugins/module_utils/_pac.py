# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PAC files for the probes: fetch one (bounded, direct), evaluate it with pypac, pick the entry.

Private to this collection. The probes of _netprobe ask ``choose_routes`` which proxy a
``{'mode': 'pac', 'pac_url': ...}`` setting gives for each endpoint URL. The PAC file is
fetched direct (never through a proxy it defines), at most ``PAC_MAX_BYTES`` within the
probe timeout, and evaluated by pypac (its dukpy/QuickJS engine and the PAC helper functions)
in a child Python process with a time and memory limit: a PAC file is somebody else's
JavaScript, and ``while (true) {}`` would otherwise hold this process (dukpy keeps the GIL).
In the child, name lookups (``dnsResolve``, ``isInNet``, ``myIpAddress``) go through the
probes' ``resolve`` map and the loopback-only rule, so the twin and the tests look up nothing.

Rules: ``posix`` reads http, https and file URLs; ``winhttp`` (the simulated Windows host)
is never more forgiving than WinHTTP's auto-proxy, which reads only http and https and wants
the ``application/x-ns-proxy-autoconfig`` type or a .dat/.js/.pac/.jvs name (KB 4025058).
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import typing as t
import urllib.parse

PAC_MAX_BYTES = 1024 * 1024
PAC_MIME = 'application/x-ns-proxy-autoconfig'
WINHTTP_PAC_SUFFIXES = ('.dat', '.js', '.pac', '.jvs')
# Entries the probes can follow: an HTTP proxy (CONNECT) or none.
USABLE = ('PROXY', 'HTTP', 'DIRECT')
ENGINE_MEMORY = 1024 * 1024 * 1024


class PacError(Exception):
    """The PAC file could not be fetched or evaluated; the message is what a person reads."""


# The child: reads {script, targets, resolve, loopback_only} as JSON on stdin, writes JSON on stdout.
# It imports nothing of this collection (an AnsiballZ payload cannot be imported by a child).
ENGINE_PROGRAM = r'''
import json, os, socket, sys
request = json.loads(sys.stdin.read())
# Only the answer reaches the parent: whatever the script prints (console.log) goes nowhere.
answer_stream = os.fdopen(os.dup(1), 'w')
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
sys.stdout = open(os.devnull, 'w')

def answer(outcome):
    answer_stream.write(json.dumps(outcome))
    answer_stream.flush()
    answer_stream.flush()
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (request['memory'], request['memory']))
    resource.setrlimit(resource.RLIMIT_CPU, (request['cpu'], request['cpu']))
except (ImportError, ValueError, OSError):
    pass
import ipaddress
names = {k.lower(): v for k, v in request['resolve'].items()}
loopback_only = request['loopback_only']
real_getaddrinfo = socket.getaddrinfo

def _literal(host):
    try:
        return str(ipaddress.ip_address(str(host).strip('[]')))
    except ValueError:
        return None

def _lookup(host):
    host = str(host or '')
    address = names.get(host.lower()) or _literal(host)
    if address is None and loopback_only and host == socket.gethostname():
        address = '127.0.0.1'
    if address is not None:
        if loopback_only and not ipaddress.ip_address(address).is_loopback:
            raise socket.gaierror(socket.EAI_NONAME, 'not a loopback address: not looked up here')
        return [address]
    if loopback_only:
        raise socket.gaierror(socket.EAI_NONAME, 'not among the names given to resolve: not looked up here')
    return sorted({info[4][0] for info in real_getaddrinfo(host, None, type=socket.SOCK_STREAM)})

def _ipv4(host):
    found = [a for a in _lookup(host) if ':' not in a]
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, 'no IPv4 address')
    return found

def gethostbyname(host):
    return _ipv4(host)[0]

def gethostbyname_ex(host):
    return host, [], _ipv4(host)

def getaddrinfo(host, port, *args, **kwargs):
    family = lambda a: socket.AF_INET6 if ':' in a else socket.AF_INET
    return [(family(a), socket.SOCK_STREAM, 6, '', (a, port or 0)) for a in _lookup(host)]

socket.gethostbyname, socket.gethostbyname_ex, socket.getaddrinfo = gethostbyname, gethostbyname_ex, getaddrinfo
try:
    from importlib import metadata
    from pypac.parser import PACFile
    engine = 'pypac %s, dukpy %s' % (metadata.version('pypac'), metadata.version('dukpy'))
except Exception as error:
    answer({'engine': None, 'error': 'no PAC engine (pip install pypac): %s' % error})
    sys.exit(0)
try:
    pac = PACFile(request['script'])
except Exception as error:
    answer({'engine': engine, 'error': ('not a usable PAC file: %s' % error)[:300]})
    sys.exit(0)
answers = []
for url, host in request['targets']:
    try:
        value = pac.find_proxy_for_url(url, host)
        text = isinstance(value, str)
        answers.append({'value': value if text else None,
                        'error': None if text else 'FindProxyForURL returned %r' % type(value).__name__})
    except Exception as error:
        answers.append({'value': None, 'error': ('FindProxyForURL failed: %s' % error)[:300]})
answer({'engine': engine, 'answers': answers})
'''


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip('[]')).is_loopback
    except ValueError:
        return False


def fetch(url: str, *, resolve: dict[str, str], cafile: str | None, timeout: float, loopback_only: bool,
          rules: str) -> str:
    """The PAC file's text, fetched direct; raises PacError."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _netprobe  # _netprobe imports us
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    allowed = ('http', 'https') if rules == 'winhttp' else ('http', 'https', 'file')
    if scheme not in allowed:
        raise PacError(f'PAC URL {url!r}: {scheme or "no"} scheme is not read'
                       + (' (WinHTTP reads PAC files over http and https only)' if rules == 'winhttp' else ''))
    if scheme == 'file':
        return _read_local(urllib.parse.unquote(parsed.path))
    host = parsed.hostname or ''
    try:
        port = parsed.port or (443 if scheme == 'https' else 80)
    except ValueError:
        raise PacError(f'PAC URL {url!r} has an invalid port') from None
    if not host:
        raise PacError(f'PAC URL {url!r} names no host')
    path = (parsed.path or '/') + (f'?{parsed.query}' if parsed.query else '')
    deadline = time.monotonic() + timeout
    route = _netprobe.Route(None, resolve, cafile, timeout, loopback_only=loopback_only)
    literal = host if _is_ip(host) else None
    if literal and route.loopback_only and not _is_loopback(literal):
        raise PacError(f'PAC URL {url!r}: {host} is not a loopback address: not fetched here')
    try:
        if scheme == 'https':
            if literal:
                route.resolve.setdefault(host.lower(), literal)
            sock: t.Any = route.open(host, port, {}, deadline)
        else:
            addresses = [literal] if literal else route.addresses(host)
            sock = socket.create_connection((addresses[0], port), timeout=timeout)
    except _netprobe.StepError as error:
        raise PacError(f'PAC file {url} not fetched: {error}') from None
    except OSError as error:
        raise PacError(f'PAC file {url} not fetched: {error}') from None
    with sock:
        try:
            # HTTP/1.0: no chunked body, the server closes after it.
            sock.sendall(f'GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: loopbreaker.notion-diagnose\r\n'
                         f'Accept: {PAC_MIME}, */*\r\nConnection: close\r\n\r\n'.encode('latin-1'))
            data = _read_bounded(sock, deadline)
        except (OSError, UnicodeError) as error:
            raise PacError(f'PAC file {url} not fetched: {error}') from None
    head, separator, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ', 2)
    if not separator or len(parts) < 2 or not parts[0].startswith('HTTP/') or parts[1] != '200':
        raise PacError(f'PAC file {url} not fetched: the server answered {lines[0][:80]!r}')
    headers = {name.strip().lower(): value.strip() for name, _c, value in (line.partition(':') for line in lines[1:])}
    if rules == 'winhttp':
        mime = headers.get('content-type', '').split(';', 1)[0].strip().lower()
        if mime != PAC_MIME and not parsed.path.lower().endswith(WINHTTP_PAC_SUFFIXES):
            raise PacError(f'PAC file {url} is served as {mime or "no type"!r}, and WinHTTP reads only '
                           f'{PAC_MIME} or a .dat/.js/.pac/.jvs name')
    return body.decode('utf-8', 'replace')


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip('[]'))
        return True
    except ValueError:
        return False


def _read_bounded(sock: t.Any, deadline: float) -> bytes:
    data = b''
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OSError('timed out reading the PAC file')
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        if len(data) > PAC_MAX_BYTES + 16384:
            raise OSError(f'PAC file larger than {PAC_MAX_BYTES} bytes')


def _read_local(path: str) -> str:
    """A local PAC file named by the admin (file URLs are POSIX only): a regular file, no link, bounded."""
    if not path.startswith('/'):
        raise PacError(f'PAC file URL must name an absolute path, got {path!r}')
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0))
    except OSError as error:
        raise PacError(f'PAC file {path} not read: {error.strerror}') from None
    try:
        status = os.fstat(fd)
        if not (status.st_mode & 0o170000) == 0o100000:
            raise PacError(f'PAC file {path} is not a regular file')
        if status.st_size > PAC_MAX_BYTES:
            raise PacError(f'PAC file {path} is larger than {PAC_MAX_BYTES} bytes')
        return os.read(fd, PAC_MAX_BYTES).decode('utf-8', 'replace')
    finally:
        os.close(fd)


def evaluate(script: str, targets: list[tuple[str, str]], *, resolve: dict[str, str], loopback_only: bool,
             timeout: float) -> tuple[str, list[dict[str, t.Any]]]:
    """The engine's name and FindProxyForURL(url, host) of each target; raises PacError."""
    request = {'script': script, 'targets': targets, 'resolve': resolve, 'loopback_only': loopback_only,
               'memory': ENGINE_MEMORY, 'cpu': max(1, int(timeout) + 1)}
    try:
        # -I: the child ignores the environment's PYTHONPATH and the current directory, which a user may own.
        done = subprocess.run([sys.executable, '-I', '-c', ENGINE_PROGRAM], input=json.dumps(request).encode(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout + 5, check=False)
    except subprocess.TimeoutExpired:
        raise PacError(f'the PAC engine was stopped: the PAC file did not finish within {timeout + 5:g} s') from None
    except OSError as error:
        raise PacError(f'no PAC engine: the Python that runs it could not start: {error}') from None
    try:
        answer = json.loads(done.stdout.decode('utf-8', 'replace').strip().splitlines()[-1])
    except (ValueError, IndexError):
        reason = 'was stopped at its CPU time or memory limit' if done.returncode < 0 else f'exited {done.returncode}'
        raise PacError(f'the PAC engine {reason} without an answer') from None
    if answer.get('error'):
        raise PacError(answer['error'])
    return str(answer['engine']), list(answer['answers'])


def parse_entries(value: str) -> list[dict[str, str | None]]:
    """``PROXY a:1; SOCKS b:2; DIRECT`` as [{keyword, proxy, text}] in order; unknown words kept."""
    entries: list[dict[str, str | None]] = []
    for element in value.split(';'):
        words = element.split()
        if not words:
            continue
        keyword = words[0].upper()
        proxy = words[1] if len(words) == 2 else None
        entries.append({'keyword': keyword, 'proxy': proxy, 'text': ' '.join(words)})
    return entries


def choose(value: str) -> dict[str, t.Any]:
    """The first entry the probes can follow; the ones before it that they cannot, and the fallbacks after."""
    entries = parse_entries(value)
    skipped = []
    for index, entry in enumerate(entries):
        proxy = entry['proxy'] or ''
        usable = entry['keyword'] == 'DIRECT' or (entry['keyword'] in USABLE and ':' in proxy)
        if usable:
            return {'entry': entry['text'], 'proxy': None if entry['keyword'] == 'DIRECT' else entry['proxy'],
                    'skipped': skipped, 'fallbacks': [e['text'] for e in entries[index + 1:]]}
        skipped.append(entry['text'])
    return {'entry': None, 'proxy': None, 'skipped': skipped, 'fallbacks': []}


def choose_routes(setting: dict[str, t.Any], urls: list[str], *, resolve: dict[str, str], cafile: str | None,
                  timeout: float, loopback_only: bool, rules: str) -> dict[str, dict[str, t.Any]]:
    """For each https URL: {proxy, usable, pac: what a person reads about the PAC decision}; never raises."""
    url = str(setting.get('pac_url') or '')
    base = {'url': url, 'evaluated': False}
    try:
        script = fetch(url, resolve=resolve, cafile=cafile, timeout=timeout, loopback_only=loopback_only, rules=rules)
        targets = [(u, urllib.parse.urlsplit(u).hostname or '') for u in urls]
        engine, answers = evaluate(script, targets, resolve=resolve, loopback_only=loopback_only, timeout=timeout)
    except PacError as error:
        engine_missing = str(error).startswith('no PAC engine')
        # The OS falls back to a direct connection when its PAC file cannot be had or run; without an
        # engine here, what the OS would do is unknown, so nothing is probed.
        return {u: {'proxy': None, 'usable': not engine_missing, 'pac': {**base, 'error': str(error)}} for u in urls}
    routes = {}
    for target, answer in zip(urls, answers):
        if answer['error']:
            routes[target] = {'proxy': None, 'usable': True,
                              'pac': {**base, 'engine': engine, 'error': answer['error']}}
            continue
        chosen = choose(answer['value'])
        pac = {**base, 'evaluated': True, 'engine': engine, 'returned': answer['value'][:500], **chosen}
        pac.pop('proxy')
        if chosen['entry'] is None:
            pac['error'] = (f'FindProxyForURL returned {answer["value"][:200]!r}: no PROXY or DIRECT entry, and the '
                            'probes speak HTTP CONNECT only (SOCKS and HTTPS proxies are not probed)')
        routes[target] = {'proxy': chosen['proxy'], 'usable': chosen['entry'] is not None, 'pac': pac}
    return routes
