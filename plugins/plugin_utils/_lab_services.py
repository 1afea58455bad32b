# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real local network services for the lab and the tests: the broken networks diagnose must see.

Private to this collection (controller side). ``LabServices`` starts, on loopback:

* a stand-in for Notion's hosts (``www.notion.so``, ``app.notion.com`` and the msgstore hosts):
  HTTPS with a certificate from the lab's own test CA, the Engine.IO v4 handshake at
  ``/primus-v8/?EIO=4&transport=polling`` and the WebSocket upgrade with its probe exchange;
* Debian's squid as a corporate proxy that tunnels ``www``/``app`` but refuses CONNECT to every
  ``msgstore`` host (the article's proxy cause);
* an intercepting ("SSL inspection") proxy that answers every CONNECT itself with a certificate
  from a foreign CA, lets Engine.IO polling through and refuses the WebSocket upgrade;
* a web server with a PAC file (``pac_url``, plain HTTP, served as
  ``application/x-ns-proxy-autoconfig`` as WinHTTP wants) that sends the msgstore hosts to squid,
  which refuses them, and everything else DIRECT: the article's proxy cause, through PAC.

Certificates are made with the ``openssl`` command. Everything lives in one directory and stops
with ``stop()``; ``services.json`` there says where each service listens.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import typing as t
from pathlib import Path

NOTION_NAMES = ('www.notion.so', 'app.notion.com', 'notion.so', 'notion.com', 'msgstore.www.notion.so',
                'msgstore-001.www.notion.so', 'msgstore.app.notion.com', 'msgstore-002.app.notion.com')
LAB_CA_NAME = 'loopbreaker lab root CA'
FOREIGN_CA_NAME = 'Contoso SSL Inspection CA'


def _openssl(*args: str) -> None:
    subprocess.run(['openssl', *args], check=True, capture_output=True)


def make_ca(directory: Path, stem: str, organisation: str) -> tuple[Path, Path]:
    key, cert = directory / f'{stem}.key', directory / f'{stem}.pem'
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-keyout', str(key), '-out', str(cert),
             '-subj', f'/O={organisation}/CN={organisation}', '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    return key, cert


def make_leaf(directory: Path, stem: str, ca: tuple[Path, Path], names: t.Iterable[str]) -> tuple[Path, Path]:
    key, csr, cert, ext = (directory / f'{stem}.{suffix}' for suffix in ('key', 'csr', 'pem', 'ext'))
    ext.write_text('subjectAltName=' + ','.join(f'DNS:{name}' for name in names) + '\n'
                   'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
    _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(key), '-out', str(csr), '-subj', f'/CN={stem}')
    _openssl('x509', '-req', '-in', str(csr), '-CA', str(ca[1]), '-CAkey', str(ca[0]), '-CAcreateserial',
             '-days', '30', '-out', str(cert), '-extfile', str(ext))
    return key, cert


def _read_request(stream: t.Any) -> tuple[str, str, dict[str, str]]:
    data = b''
    while b'\r\n\r\n' not in data and len(data) < 65536:
        chunk = stream.recv(4096)
        if not chunk:
            break
        data += chunk
    lines = data.split(b'\r\n\r\n', 1)[0].decode('latin-1').split('\r\n')
    method, _space, rest = lines[0].partition(' ')
    headers = {}
    for line in lines[1:]:
        name, _colon, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    return method, rest.rsplit(' ', 1)[0], headers


def _respond(stream: t.Any, status: str, body: bytes, content_type: str = 'text/plain; charset=UTF-8') -> None:
    stream.sendall(f'HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n'
                   'Connection: close\r\n\r\n'.encode() + body)


def pac_script(squid_proxy: str) -> str:
    """The lab's PAC file: msgstore to squid (refused there), the rest direct; uses the PAC helpers."""
    return ('function FindProxyForURL(url, host) {\n'
            '    if (isPlainHostName(host) || isInNet(dnsResolve(host), "10.0.0.0", "255.0.0.0"))\n'
            '        return "DIRECT";\n'
            '    if (shExpMatch(host, "msgstore*.notion.so") || shExpMatch(host, "msgstore*.notion.com"))\n'
            f'        return "PROXY {squid_proxy}";\n'
            '    return "DIRECT";\n'
            '}\n')


def serve_pac(stream: t.Any, script: str) -> None:
    method, path, _headers = _read_request(stream)
    if method == 'GET' and path.split('?', 1)[0] == '/proxy.pac':
        _respond(stream, '200 OK', script.encode(), 'application/x-ns-proxy-autoconfig')
    else:
        _respond(stream, '404 Not Found', b'')


def serve_notion(stream: t.Any, *, allow_websocket: bool = True) -> None:
    """One request of the Notion stand-in: a page, the Engine.IO handshake or the WebSocket."""
    import base64
    import hashlib
    method, path, headers = _read_request(stream)
    if not method:
        return
    if path.startswith('/primus-v8/') and 'transport=websocket' in path:
        if not allow_websocket or headers.get('upgrade', '').lower() != 'websocket':
            _respond(stream, '400 Bad Request', b'{"code":3,"message":"Bad request"}')
            return
        accept = base64.b64encode(hashlib.sha1((headers.get('sec-websocket-key', '')
                                                + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()
        stream.sendall(('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                        f'Sec-WebSocket-Accept: {accept}\r\n\r\n').encode())
        frame = stream.recv(4096)
        if len(frame) >= 6:
            length = frame[1] & 0x7F
            mask = frame[2:6]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(frame[6:6 + length]))
            if payload == b'2probe':
                stream.sendall(bytes([0x81, 6]) + b'3probe')
        return
    if path.startswith('/primus-v8/') and 'transport=polling' in path:
        handshake = {'sid': secrets.token_urlsafe(15), 'upgrades': ['websocket'], 'pingInterval': 25000,
                     'pingTimeout': 20000, 'maxPayload': 1000000}
        _respond(stream, '200 OK', b'0' + json.dumps(handshake).encode())
        return
    _respond(stream, '200 OK', b'<!doctype html><title>Notion (lab stand-in)</title>', 'text/html')


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class LabServices:
    """Start and stop the lab's network services in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: list[_Server] = []
        self.squid: subprocess.Popen[bytes] | None = None
        self.info: dict[str, t.Any] = {}
        self.squid_dir: Path | None = None

    def _listen(self, handler: t.Callable[[socket.socket], None]) -> int:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(10)
                try:
                    handler(self.request)
                except (OSError, ssl.SSLError, ValueError):
                    pass
        server = _Server(('127.0.0.1', 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return int(server.server_address[1])

    def start(self, *, with_squid: bool = True) -> dict[str, t.Any]:
        self.directory.mkdir(parents=True, exist_ok=True)
        lab_ca = make_ca(self.directory, 'lab-ca', LAB_CA_NAME)
        foreign_ca = make_ca(self.directory, 'foreign-ca', FOREIGN_CA_NAME)
        notion_cert = make_leaf(self.directory, 'notion-standin', lab_ca, NOTION_NAMES)
        intercept_cert = make_leaf(self.directory, 'inspection', foreign_ca, NOTION_NAMES)

        def tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert[1]), str(cert[0]))
            return context
        notion_tls, intercept_tls = tls(notion_cert), tls(intercept_cert)

        def notion(sock: socket.socket) -> None:
            with notion_tls.wrap_socket(sock, server_side=True) as stream:
                serve_notion(stream)

        def intercepting(sock: socket.socket) -> None:
            method, _target, _headers = _read_request(sock)
            if method != 'CONNECT':
                _respond(sock, '405 Method Not Allowed', b'')
                return
            sock.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
            with intercept_tls.wrap_socket(sock, server_side=True) as stream:
                serve_notion(stream, allow_websocket=False)
        port = self._listen(notion)
        self.info = {'address': '127.0.0.1', 'notion_port': port, 'ca_bundle': str(lab_ca[1]),
                     'foreign_ca': FOREIGN_CA_NAME, 'intercepting_proxy': f'127.0.0.1:{self._listen(intercepting)}',
                     'names': list(NOTION_NAMES), 'squid_proxy': None}
        self.info['pac_url'] = None
        if with_squid:
            self.info['squid_proxy'] = self._start_squid(port)
            script = pac_script(self.info['squid_proxy'])
            self.info['pac_url'] = f'http://127.0.0.1:{self._listen(lambda sock: serve_pac(sock, script))}/proxy.pac'
        (self.directory / 'services.json').write_text(json.dumps(self.info, indent=1))
        return self.info

    def _start_squid(self, notion_port: int) -> str:
        squid = shutil.which('squid') or ('/usr/sbin/squid' if os.path.exists('/usr/sbin/squid') else None)
        if squid is None:
            raise RuntimeError('squid is not installed: run `make lab-deps` (apt-get install squid) first')
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            port = probe.getsockname()[1]
        # squid drops to the proxy user when started as root, and that user must reach its logs: a
        # private directory of its own under the system's temporary directory, not inside ours
        # (pytest's and the lab's may not be traversable by others).
        run = Path(tempfile.mkdtemp(prefix='loopbreaker-squid-'))
        self.squid_dir = run
        (self.directory / 'squid-dir').write_text(str(run) + '\n')
        (run / 'hosts').write_text(''.join(f'127.0.0.1 {name}\n' for name in NOTION_NAMES))
        user = ''
        if os.geteuid() == 0:
            entry = pwd.getpwnam('proxy')
            os.chown(run, entry.pw_uid, entry.pw_gid)
            user = 'cache_effective_user proxy\n'
        (run / 'squid.conf').write_text(
            f'http_port 127.0.0.1:{port}\n{user}'
            f'pid_filename {run}/squid.pid\ncache_log {run}/cache.log\naccess_log stdio:{run}/access.log\n'
            f'coredump_dir {run}\ncache deny all\ncache_mem 8 MB\nhosts_file {run}/hosts\n'
            'shutdown_lifetime 1 seconds\n'
            f'acl lab_ports port {notion_port}\nacl CONNECT method CONNECT\n'
            'acl msgstore dstdom_regex -i ^msgstore\n'
            'http_access deny CONNECT msgstore\nhttp_access allow CONNECT lab_ports\nhttp_access deny all\n')
        self.squid = subprocess.Popen([squid, '-N', '-f', str(run / 'squid.conf')], stdout=subprocess.DEVNULL,
                                      stderr=open(run / 'stderr.log', 'wb'))  # noqa: SIM115 pylint: disable=consider-using-with
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.squid.poll() is not None:
                raise RuntimeError(f'squid exited at start: {(run / "stderr.log").read_text()[-800:]}')
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                return f'127.0.0.1:{port}'
            except OSError:
                time.sleep(0.2)
        raise RuntimeError('squid did not start listening within 30 s')

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers = []
        if self.squid is not None:
            self.squid.terminate()
            try:
                self.squid.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.squid.kill()
                self.squid.wait()
            self.squid = None
        if self.squid_dir is not None:
            shutil.rmtree(self.squid_dir, ignore_errors=True)
            self.squid_dir = None

    def __enter__(self) -> LabServices:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
