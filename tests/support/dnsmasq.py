"""A throwaway dnsmasq (Debian `dnsmasq-base`) serving given records on 127.0.0.1.

No upstream, no /etc/hosts: it answers only what the test gives it (``--naptr-record``,
``--srv-host``, ``--host-record``, ``--txt-record``), NXDOMAIN for other names under
``local`` and REFUSED for the rest. Every query it gets is logged, so a test can count
what reached the server (``queries()``): that is how caching is shown.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.tools import free_port, require_tool, stop_process, wait_for_port


@dataclass
class Dnsmasq:
    port: int
    log: Path

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def queries(self, rdtype: str | None = None, name: str | None = None) -> list[tuple[str, str]]:
        """(type, name) of each query the server received, in order."""
        out: list[tuple[str, str]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            # dnsmasq[123]: query[SRV] _sip._udp.ivoz.test from 127.0.0.1
            _, sep, rest = line.partition(": query[")
            if not sep:
                continue
            kind, _, tail = rest.partition("] ")
            qname = tail.split(" ", 1)[0]
            if (rdtype is None or kind == rdtype) and (name is None or qname == name):
                out.append((kind, qname))
        return out


@contextmanager
def dnsmasq(
    records: Sequence[str], *, local: str = "ivoz.test", local_ttl: int | None = None
) -> Iterator[Dnsmasq]:
    """Run dnsmasq with ``records`` (option strings like ``--srv-host=...``) until exit."""
    binary = require_tool("dnsmasq")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ivoz-dnsmasq-"))
    log = workdir / "dnsmasq.log"
    args = [
        binary,
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--conf-file=/dev/null",
        "--pid-file=",  # no pid file (it would need /run)
        "--user=",  # stay the user we are (root would otherwise switch to nobody)
        f"--local=/{local}/",
        "--log-queries",
        f"--log-facility={log}",
        *([f"--local-ttl={local_ttl}"] if local_ttl is not None else []),
        *records,
    ]
    errors = workdir / "stderr"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        try:
            wait_for_port("127.0.0.1", port, timeout=10)  # dnsmasq serves TCP too
        except TimeoutError:
            stop_process(proc)
            raise RuntimeError(f"dnsmasq did not start: {errors.read_text()}") from None
        # the log file is written once dnsmasq is up; let it say "started"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (log.exists() and "started" in log.read_text()):
            time.sleep(0.02)
        yield Dnsmasq(port, log)
    finally:
        stop_process(proc)
