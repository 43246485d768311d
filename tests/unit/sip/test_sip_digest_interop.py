"""Our digest challenges answered by an independent implementation: curl (RFC 7616).

SIP digest is HTTP digest (RFC 3261 22.4 defers to it), so curl's implementation of RFC
7616 checks our SHA-256 and -sess support, which no SIP tool installed here offers
(sipsak and SIPp speak MD5 only; those are covered in test_sip_txn_interop.py).
SHA-512-256 is left out: the curl of Debian 12 (7.88) answers a SHA-512-256 challenge
with a SHA-256 digest; test_sip_digest_auth.py checks that hash against FIPS 180-4.
"""

from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ivoz.sip import digest
from ivoz.sip.auth import Credentials
from ivoz.sip.digest import DigestResult
from ivoz.sip.errors import RemoteError
from support.tools import require_tool

pytestmark = pytest.mark.slow

REALM = "ivoz.test"
SECRET = b"curl-interop-secret"


class DigestServer(ThreadingHTTPServer):
    algorithm = "MD5"
    results: list[DigestResult]


class Handler(BaseHTTPRequestHandler):
    server: DigestServer

    def do_GET(self) -> None:
        now = time.time()
        header = self.headers.get("Authorization")
        if header is None:
            challenge = digest.make_challenge(REALM, SECRET, now, algorithm=self.server.algorithm)
            self.send_response(401)
            self.send_header("WWW-Authenticate", str(challenge))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            credentials = Credentials.parse(header)
            result = digest.verify(credentials, "GET", SECRET, now, password="secret", realm=REALM)
        except RemoteError:
            result = DigestResult.BAD
        self.server.results.append(result)
        self.send_response(200 if result is DigestResult.OK else 403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
@pytest.mark.parametrize(("password", "status"), [("secret", "200"), ("wrong", "403")])
def test_curl_answers_our_challenge(algorithm: str, password: str, status: str) -> None:
    curl = require_tool("curl")
    server = DigestServer(("127.0.0.1", 0), Handler)
    server.algorithm = algorithm
    server.results = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = subprocess.run(
            [
                curl, "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                "--max-time", "10", "--noproxy", "*", "--digest", "--user", f"alice:{password}",
                f"http://127.0.0.1:{port}/dir/index.html?x=1",
            ],
            capture_output=True,
            timeout=20,
            check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.stdout.decode() == status
    expected = DigestResult.OK if status == "200" else DigestResult.BAD
    assert server.results == [expected]
