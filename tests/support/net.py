"""Loopback networking helpers for tests: free ports and raw SIP datagrams."""

from __future__ import annotations

import random
import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on both UDP and TCP (SIP listens on both)."""
    for _ in range(200):
        port = random.randint(21000, 59000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind((host, port))
                t.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def free_port_block(n: int, host: str = "127.0.0.1") -> int:
    """The first of ``n`` consecutive free ports."""
    for _ in range(200):
        base = random.randint(21000, 59000 - n)
        try:
            socks = []
            for p in range(base, base + n):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind((host, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def sip_options(
    port: int, host: str = "127.0.0.1", timeout: float = 1.0, src: str = "127.0.0.1"
) -> str | None:
    """Send an OPTIONS over UDP; return the status line of the answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        lport = s.getsockname()[1]
        branch = f"z9hG4bK{random.randint(0, 1 << 30)}"
        msg = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {src}:{lport};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:{host}:{port}>\r\n"
            f"From: <sip:probe@{src}>;tag={branch[-6:]}\r\nCall-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n"
        )
        return send_raw(s, msg.encode(), (host, port), timeout)


def send_raw(s: socket.socket, data: bytes, addr: tuple[str, int], timeout: float) -> str | None:
    s.settimeout(timeout)
    s.sendto(data, addr)
    try:
        reply, _ = s.recvfrom(65535)
    except (TimeoutError, OSError):
        return None
    return reply.decode(errors="replace").split("\r\n", 1)[0]


def wait_sip(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = sip_options(port, timeout=0.3)
        if line and line.startswith("SIP/2.0 200"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered OPTIONS on port {port} within {timeout}s")


def wait_http_ok(url: str, timeout: float = 120.0) -> bool:
    """Poll ``GET url`` until it answers 200 (a speech service's /readyz once its models are loaded);
    False if it has not within ``timeout`` seconds."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:  # refused while it starts, 503 while it loads
            pass
        time.sleep(0.2)
    return False
