"""The admin console off plain loopback, against `voicebot run`: speaking HTTPS itself (a self-signed
certificate made with openssl), behind an HTTPS proxy (Secure cookies, the login limit per forwarded
client address), refused at start when it would be open to the network in clear; and the user
commands an operator runs while it serves (`console user set/remove/list`, `console audit`)."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.net import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def cli(
    env: dict[str, str], *args: str, stdin: str = "", ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        cwd=REPO, env={**os.environ, **env}, input=stdin, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def add_user(env: dict[str, str], name: str, role: str, password: str) -> None:
    cli(env, "console", "user", "add", name, "--role", role, "--password-stdin", stdin=password + "\n")


def log_in(client: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    page = client.get("/login", headers=headers)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"csrf": token, "name": name, "password": password}, headers=headers)


def forwarded_login(proxy: httpx.Client, client: str, name: str, password: str) -> httpx.Response:
    """A login as a TLS-terminating proxy forwards it: the browser's cookies are Secure, so they are
    passed on by hand (a client library keeps Secure cookies off plain HTTP, as it should)."""
    headers = {"X-Forwarded-For": client}
    page = proxy.get("/login", headers=headers)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert "Secure" in cookie_line(page, "vb_login")
    proxy.cookies.clear()
    cookies = "; ".join(v.split(";")[0] for v in page.headers.get_list("set-cookie"))
    return proxy.post(
        "/login",
        data={"csrf": token, "name": name, "password": password},
        headers=headers | {"Cookie": cookies},
    )


def cookie_line(response: httpx.Response, name: str) -> str:
    (line,) = [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    return line


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "console.crt", folder / "console.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_console_secure_session_and_the_user_commands(voicebot: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    console = f"127.0.0.1:{free_port()}"
    server = voicebot(
        VOICEBOT_CONSOLE__LISTEN=console,
        VOICEBOT_CONSOLE__TLS_CERT=str(cert),
        VOICEBOT_CONSOLE__TLS_KEY=str(key),
    )
    env = server.env
    assert f"https://{console}/" in server.log()  # console.listening says where
    add_user(env, "alice", "admin", "alice-secret-1")
    add_user(env, "bob", "analyst", "bob-secret-22")
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
        httpx.get(f"http://{console}/login", timeout=5)
    with httpx.Client(
        base_url=f"https://{console}", verify=ssl.create_default_context(cafile=cert), timeout=10
    ) as alice:
        done = log_in(alice, "alice", "alice-secret-1")
        assert done.status_code == 303, done.text
        session = cookie_line(done, "vb_session")
        assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session, session
        assert alice.get("/versions").status_code == 200
        assert alice.get("/audit").status_code == 200  # an admin's page
        for since in ("9999999w", "99999999999999999999w", "1y"):  # a clear 400, never a server error
            bad = alice.get(f"/calls?since={since}")
            assert bad.status_code == 400 and "since:" in bad.text, (since, bad.status_code)

        # the operator changes alice's role while she is logged in: her session ends at once
        out = cli(env, "console", "user", "set", "alice", "--role", "viewer").stdout
        assert "user alice: set done" in out
        ended = alice.get("/versions")
        assert ended.status_code == 303 and ended.headers["location"].startswith("/login")
        assert log_in(alice, "alice", "alice-secret-1").status_code == 303
        assert alice.get("/audit").status_code == 403  # a viewer now
    # a new password through stdin, then the old one is refused
    cli(env, "console", "user", "set", "bob", "--password", "--password-stdin", stdin="bob-new-secret-3\n")
    with httpx.Client(
        base_url=f"https://{console}", verify=ssl.create_default_context(cafile=cert), timeout=10
    ) as bob:
        assert log_in(bob, "bob", "bob-secret-22").status_code == 401
        assert log_in(bob, "bob", "bob-new-secret-3").status_code == 303
        assert bob.get("/calls").status_code == 200
        cli(env, "console", "user", "remove", "bob")
        assert bob.get("/calls").status_code == 303  # removed: logged out
        assert log_in(bob, "bob", "bob-new-secret-3").status_code == 401
    assert cli(env, "console", "user", "remove", "nobody", ok=False).returncode == 2
    users = cli(env, "console", "user", "list").stdout.split("\n")
    assert [u.split()[:2] for u in users if u] == [["alice", "viewer"]]
    audit = cli(env, "console", "audit").stdout
    for action in ("user_set", "user_remove", "login"):
        assert action in audit, audit
    assert "bob-new-secret-3" not in audit and "bob-new-secret-3" not in server.log()


def test_behind_an_https_proxy_and_open_to_the_network_only_so(voicebot: Any, tmp_path: Path) -> None:
    # in clear on a network address: refused at start, one line saying what to set
    port = free_port()
    done = cli(
        {
            "VOICEBOT_CONSOLE__LISTEN": f"0.0.0.0:{port}",
            "VOICEBOT_RUN_DIR": str(tmp_path / "refused"),
            "VOICEBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'refused.db'}",
        },
        "run",
        ok=False,
    )
    assert done.returncode != 0
    assert "opens the admin console to the network without TLS" in done.stderr + done.stdout
    assert "console.behind_https_proxy" in done.stderr + done.stdout

    # behind a proxy (here: the test, speaking HTTP on loopback as a TLS-terminating proxy would)
    console = f"127.0.0.1:{free_port()}"
    server = voicebot(VOICEBOT_CONSOLE__LISTEN=console, VOICEBOT_CONSOLE__BEHIND_HTTPS_PROXY="true")
    add_user(server.env, "alice", "admin", "alice-secret-1")
    with httpx.Client(base_url=f"http://{console}", timeout=10) as proxy:
        # five wrong guesses forwarded for one client lock that client out ...
        codes = [forwarded_login(proxy, "203.0.113.9", "carol", f"guess-{i}").status_code for i in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429, codes
        # ... not the proxy's other clients: the limit is per forwarded address, not the proxy's
        done = forwarded_login(proxy, "198.51.100.7", "alice", "alice-secret-1")
        assert done.status_code == 303, done.text
        assert "Secure" in cookie_line(done, "vb_session")  # the browser only sends it over HTTPS
    audit = cli(server.env, "console", "audit").stdout
    assert re.search(r"login\s+.*ok 198\.51\.100\.7", audit), audit
    assert re.search(r"login_failed\s+.*REFUSED 203\.0\.113\.9", audit), audit
