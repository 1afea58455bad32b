"""The page the real-browser tests open as www.notion.so and other.example, served on loopback.

The page (chromium/page.html) writes or reads each kind of site data and POSTs what it found back;
the server keeps those reports in a queue per run. HTTPS with a test certificate for Chromium, plain
HTTP for Firefox (its test lists both hosts as secure contexts instead).
"""
from __future__ import annotations

import http.server
import json
import os
import queue
import ssl
import subprocess
import threading
import typing as t
from pathlib import Path
from urllib.parse import quote

from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import IS_ROOT, next_uid

PAGE = (Path(__file__).parent / 'chromium' / 'page.html').read_bytes()
WORKER = b"self.addEventListener('fetch', () => {});"
HOSTS = ('www.notion.so', 'other.example')


class PageServer:
    """Serves PAGE and its service worker; ``reports`` receives (host, what the page found)."""

    def __init__(self, tls_directory: Path | None = None) -> None:
        self.reports: queue.Queue[tuple[str, dict[str, t.Any]]] = queue.Queue()
        reports = self.reports

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body, kind = (WORKER, 'text/javascript') if self.path.startswith('/sw.js') else (PAGE, 'text/html')
                self.send_response(200)
                self.send_header('Content-Type', kind)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers['Content-Length']))
                reports.put((self.path.split('host=', 1)[-1], json.loads(data)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: t.Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.scheme = 'http'
        if tls_directory is not None:
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                            '-keyout', str(tls_directory / 'key.pem'), '-out', str(tls_directory / 'cert.pem'),
                            '-subj', '/CN=loopbreaker-test',
                            '-addext', 'subjectAltName=' + ','.join(f'DNS:{host}' for host in HOSTS)],
                           check=True, capture_output=True, timeout=60)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls_directory / 'cert.pem'), str(tls_directory / 'key.pem'))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = 'https'
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str, mode: str, then: str | None = None) -> str:
        base = f'{self.scheme}://{host}:{self.port}/?mode={mode}'
        return base + (f'&next={quote(then, safe="")}' if then else '')

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def own_browser_home(home: Path) -> None:
    """Give a home the browser filled to a uid of its own, as that user's browser would leave it (as root).

    Also keeps the quarantine module, which stops the user's Notion processes before a restore, away
    from root's processes.
    """
    if not IS_ROOT:
        return
    uid = next_uid()
    for directory, subdirs, files in os.walk(home):
        for name in [directory] + [os.path.join(directory, n) for n in subdirs + files]:
            os.lchown(name, uid, uid)
