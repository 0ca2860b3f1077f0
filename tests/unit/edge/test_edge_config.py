"""render_config / render_dispatcher_list / validate: the text, and that Kamailio itself accepts it."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from voicebot.edge.kamailio_cfg import render_config, render_dispatcher_list, render_uacreg
from voicebot.edge.params import DEFAULT_SCANNER_USER_AGENTS, Backend, EdgeParams, Registration, validate
from voicebot.errors import ConfigError

KAMAILIO = Path("/usr/sbin/kamailio")
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")


def params(tmp_path: Path, **overrides: object) -> EdgeParams:
    base = EdgeParams(
        listen="127.0.0.1",
        advertise="",
        port=5060,
        transports=("udp", "tcp"),
        tls_port=5061,
        tls_cert=None,
        tls_key=None,
        backends=(Backend("127.0.0.1", 5071), Backend("127.0.0.1", 5072, max_calls=2)),
        trunk_allow=("10.1.2.3", "192.0.2.0/24"),
        pike_reqs_per_interval=50,
        pike_interval_s=2,
        scanner_user_agents=DEFAULT_SCANNER_USER_AGENTS,
        probe_interval_s=5,
        run_dir=tmp_path,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def kamailio_check(p: EdgeParams) -> subprocess.CompletedProcess[str]:
    """Write the files where the config expects them and run `kamailio -c` on them."""
    p.run_dir.mkdir(parents=True, exist_ok=True)
    p.config_path.write_text(render_config(p))
    p.dispatcher_list_path.write_text(render_dispatcher_list(p))
    cmd = [str(KAMAILIO), "-c", "-f", str(p.config_path), "-m", "16", "-M", "4", "-Y", str(p.run_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


def test_listen_lines_follow_transports_and_advertise(tmp_path: Path) -> None:
    cfg = render_config(params(tmp_path, advertise="203.0.113.7"))

    assert "listen=udp:127.0.0.1:5060 advertise 203.0.113.7:5060" in cfg
    assert "listen=tcp:127.0.0.1:5060 advertise 203.0.113.7:5060" in cfg
    assert "listen=tls" not in cfg and "tls.so" not in cfg


def test_every_placeholder_is_filled(tmp_path: Path) -> None:
    for dispatch in ("call-load", "round-robin"):
        cfg = render_config(params(tmp_path, dispatch=dispatch))
        assert not re.search(r"@@[A-Z_]+@@", cfg)


def test_protections_are_rendered_from_params(tmp_path: Path) -> None:
    cfg = render_config(params(tmp_path, max_message_bytes=4096, drain_retry_after_s=12))

    assert 'is_in_subnet("$si", "10.1.2.3/32,192.0.2.0/24")' in cfg
    assert 'modparam("pike", "reqs_density_per_unit", 50)' in cfg
    assert "if ($ml > 4096)" in cfg
    assert "Retry-After: 12" in cfg
    assert "friendly-scanner|sipvicious|" in cfg and "vaxsipuseragent" in cfg
    assert f'"unix:{tmp_path}/kamailio_ctl"' in cfg
    assert 'ds_select_dst("1", "10")' in cfg and "ds_load_update();" in cfg


def test_trunks_are_exempt_from_pike_unless_asked(tmp_path: Path) -> None:
    exempt = render_config(params(tmp_path))
    limited = render_config(params(tmp_path, pike_trunks=True))

    assert '!is_in_subnet("$si", "10.1.2.3/32,192.0.2.0/24") && !pike_check_req()' in exempt
    assert 'if (!ds_is_from_list("1") && !pike_check_req())' in limited


def test_scanner_dots_are_literal(tmp_path: Path) -> None:
    cfg = render_config(params(tmp_path, scanner_user_agents=("sip.scan", "Bad Bot/1")))
    assert '=~ "sip[.]scan|bad bot/1"' in cfg


def test_empty_allowlist_admits_nobody(tmp_path: Path) -> None:
    cfg = render_config(params(tmp_path, trunk_allow=()))
    trunk_route = cfg.split("route[TRUNK_ACL] {", 1)[1].split("}", 1)[0]
    assert 'sl_send_reply("403"' in trunk_route and "is_in_subnet" not in trunk_route


def test_round_robin_has_no_call_load_bookkeeping(tmp_path: Path) -> None:
    cfg = render_config(params(tmp_path, dispatch="round-robin"))
    assert 'ds_select_dst("1", "4")' in cfg
    assert "ds_load_" not in cfg and "onreply_route" not in cfg


def test_dispatcher_list_caps_each_worker(tmp_path: Path) -> None:
    text = render_dispatcher_list(
        params(tmp_path, backends=(Backend("::1", 5071), Backend("10.0.0.2", 5072, 2)))
    )
    assert "1 sip:[::1]:5071 1 0 duid=ua0;maxload=4" in text
    assert "1 sip:10.0.0.2:5072 1 0 duid=ua1;maxload=2" in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"transports": ("udp", "sctp")}, "transports"),
        ({"transports": ()}, "transports"),
        ({"transports": ("udp", "tls")}, "tls_cert"),
        ({"transports": ("tcp",)}, "must include udp"),
        ({"backends": ()}, "at least one backend"),
        ({"backends": (Backend("127.0.0.1", 0),)}, "backend"),
        ({"trunk_allow": ("10.0.0.300/8",)}, "10.0.0.300/8"),
        ({"scanner_user_agents": ('evil"); exit; #',)}, "scanner_user_agents"),
        ({"pike_reqs_per_interval": 0}, "pike"),
        ({"port": 70000}, "port"),
        ({"dispatch": "hash"}, "dispatch"),
        ({"max_message_bytes": 100}, "max_message_bytes"),
        ({"run_dir": Path("/tmp/" + "x" * 120)}, "too long"),
    ],
)
def test_invalid_params_are_rejected_with_the_field_name(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(params(tmp_path, **overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"dispatch": "round-robin"},
        {"trunk_allow": (), "scanner_user_agents": ()},
        {"advertise": "203.0.113.7", "trunk_allow": ("0.0.0.0/0", "::/0"), "pike_trunks": True},
        {"dial_targets": (("sip.carrier.example", None), ("198.51.100.7", 5080))},
    ],
    ids=["default", "round-robin", "empty-lists", "advertise-open", "outbound"],
)
def test_kamailio_accepts_the_config(tmp_path: Path, overrides: dict[str, object]) -> None:
    result = kamailio_check(params(tmp_path, **overrides))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kamailio_accepts_the_tls_config(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    p = params(tmp_path, transports=("udp", "tcp", "tls"), tls_cert=cert, tls_key=key)

    cfg = render_config(p)
    assert "listen=tls:127.0.0.1:5061" in cfg and f'"certificate", "{cert}"' in cfg
    result = kamailio_check(p)
    assert result.returncode == 0, result.stdout + result.stderr


def test_trunk_registrations_become_a_uacreg_table_with_separators_escaped(tmp_path: Path) -> None:
    reg = Registration("carrier", "sip:sip.carrier.example:5080;transport=tcp", "4420", "pa:ss\\word", "")
    p = params(tmp_path, registrations=(reg,), advertise="203.0.113.5")
    tables = render_uacreg(p)
    assert tables["version"].splitlines()[1] == "uacreg:5"
    header, row = tables["uacreg"].splitlines()
    assert header.startswith("id(int,auto) l_uuid(string)") and "contact_addr(string,null)" in header
    fields = re.split(r"(?<!\\):", row)
    assert len(fields) == len(header.split())
    assert fields[1:6] == ["carrier", "4420", "203.0.113.5", "4420", "sip.carrier.example"]
    assert fields[8] == "pa\\:ss\\\\word"  # db_text escapes its separator and its escape character
    assert fields[10] == "sip\\:sip.carrier.example\\:5080;transport=tcp"
    assert fields[14] == "203.0.113.5\\:5060"  # the edge's advertised address in Contact
    cfg = render_config(p)
    assert 'loadmodule "uac.so"' in cfg and "uac_reg_lookup" in cfg and "pa:ss" not in cfg
    assert kamailio_check(p).returncode == 0
    assert "uac.so" not in render_config(params(tmp_path))  # no registration: no uac module


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (Registration("bad name", "sip:x", "u", "p"), "trunk name"),
        (Registration("t", "http://x", "u", "p"), "not a sip: URI"),
        (Registration("t", "sip:x", "u", "p\nq"), "one line"),
    ],
)
def test_bad_registrations_are_refused(tmp_path: Path, registration: Registration, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(params(tmp_path, registrations=(registration,)))


def test_placed_calls_go_out_only_to_trunk_dial_hosts(tmp_path: Path) -> None:
    assert "route[OUTBOUND]" not in render_config(params(tmp_path))  # no trunk dials: no way out at all
    text = render_config(
        params(tmp_path, dial_targets=(("sip.carrier.example", None), ("198.51.100.7", 5080)))
    )
    assert 'if (ds_is_from_list("1")) {\n        route(OUTBOUND);' in text  # only our own UA workers
    assert '($rd == "sip.carrier.example") || ($rd == "198.51.100.7" && $rp == 5080)' in text
    assert 'sl_send_reply("403", "Forbidden - not a trunk")' in text
    assert 'remove_hf("Route");' in text  # the UA worker's preloaded route ends at the edge
    v6 = render_config(params(tmp_path, dial_targets=(("2001:db8::7", 5060),)))
    assert '(($rd == "2001:db8::7" || $rd == "[2001:db8::7]") && $rp == 5060)' in v6
    with pytest.raises(ConfigError, match="dial target"):
        validate(params(tmp_path, dial_targets=(('evil"; exit; #', None),)))
