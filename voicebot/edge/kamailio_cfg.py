"""Render the Kamailio config and dispatcher list of the edge from :class:`EdgeParams`.

Pure functions (no I/O): the runner writes the results into ``run_dir`` and checks them with
``kamailio -c`` before starting.
"""

from __future__ import annotations

import ipaddress
import re

from voicebot.edge.cfg_template import TEMPLATE
from voicebot.edge.params import Backend, EdgeParams, validate

# Methods a UA worker handles; anything else outside a dialog gets 405 with this Allow header.
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER, NOTIFY, UPDATE, PRACK"

# Kamailio dispatcher algorithms: 10 = least active calls (per duid, capped by maxload), 4 = round robin.
_DS_ALG = {"call-load": 10, "round-robin": 4}
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
# Call-load bookkeeping: a BYE releases the call's slot, a 2xx confirms it (else it expires in 60 s).
# A placed call (route OUTBOUND marks its Record-Route with out=1) never counted as a worker's load.
_LOAD_BYE = 'if (is_method("BYE") && !check_route_param("out=1")) {\n            ds_load_update();\n        }'
_REPLY_ROUTE = """onreply_route[INVITE_REPLY] {
    if (status =~ "^2[0-9][0-9]$") {
        ds_load_update();
    }
}"""
_NO_LOAD = "# round robin: no call-load bookkeeping"


def render_config(p: EdgeParams) -> str:
    """Return the complete kamailio.cfg text for ``p`` (raises ConfigError on invalid params)."""
    validate(p)
    call_load = p.dispatch == "call-load"
    tls = "tls" in p.transports
    values = {
        "LOG_LEVEL": str(p.log_level),
        "CHILDREN": str(p.children),
        "TCP_CHILDREN": str(p.tcp_children),
        "LISTEN": _listen_lines(p),
        "MODULES_DIR": p.modules_dir,
        "TLS_GLOBAL": "enable_tls=yes" if tls else "",
        "TLS_MODULE": 'loadmodule "tls.so"' if tls else "",
        "TLS_MODPARAMS": _tls_modparams(p) if tls else "",
        "CTL_SOCKET": str(p.ctl_socket),
        "FR_TIMER": str(p.fr_timer_ms),
        "FR_INV_TIMER": str(p.fr_inv_timer_ms),
        "PIKE_INTERVAL": str(p.pike_interval_s),
        "PIKE_REQS": str(p.pike_reqs_per_interval),
        "DISPATCHER_LIST": str(p.dispatcher_list_path),
        "PING_FROM_HOST": _host(p.advertised_host),
        "PROBE_INTERVAL": str(p.probe_interval_s),
        "SCANNER_CHECK": _scanner_check(p.scanner_user_agents),
        "MAX_MESSAGE_BYTES": str(p.max_message_bytes),
        "ALLOW": ALLOW,
        "TRUNK_CHECK": _trunk_check(p.trunk_allow),
        "PIKE_CHECK": _pike_check(p),
        "RETRY_AFTER": str(p.drain_retry_after_s),
        "LOAD_EXPIRE": str(p.call_load_expire_s),
        "DS_ALG": str(_DS_ALG[p.dispatch]),
        # Kamailio rejects empty blocks, so whole statements are swapped in or out.
        "LOAD_BYE": _LOAD_BYE if call_load else _NO_LOAD,
        "ARM_REPLY": 't_on_reply("INVITE_REPLY");' if call_load else _NO_LOAD,
        "REPLY_ROUTE": _REPLY_ROUTE if call_load else "",
        "LOAD_UNSET": "ds_load_unset();" if call_load else _NO_LOAD,
        "UAC_MODULES": 'loadmodule "db_text.so"\nloadmodule "uac.so"' if p.registrations else "",
        "UAC_PARAMS": _uac_params(p) if p.registrations else "",
        "UAC_LOOKUP": _UAC_LOOKUP if p.registrations else "# (no trunk registers through the edge)",
        "OUTBOUND_CHECK": _OUTBOUND_CHECK
        if p.dial_targets
        else "# (no trunk places calls: no outbound route)",
        "OUTBOUND_ROUTE": _outbound_route(p) if p.dial_targets else "",
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], TEMPLATE)


# A call our own UA worker places (voicebot/outbound) goes out through the edge to a trunk.
_OUTBOUND_CHECK = """if (ds_is_from_list("1")) {
        route(OUTBOUND);
    }"""


def _outbound_route(p: EdgeParams) -> str:
    """Only to a trunk's `dial` host (and port): an INVITE from a UA worker to anywhere else is
    refused, so nothing inside can turn the edge into a relay; record-routed so that the dialog's
    later requests pass here too; it may ring as long as outbound calls ring."""

    def host_is(host: str) -> str:
        # An IPv6 host may be written with or without its brackets: accept the request either way.
        return f'($rd == "{host}" || $rd == "[{host}]")' if ":" in host else f'$rd == "{host}"'

    match = " || ".join(
        f"({host_is(host)}" + (f" && $rp == {port})" if port is not None else ")")
        for host, port in p.dial_targets
    )
    return f"""route[OUTBOUND] {{
    if (!({match})) {{
        xlog("L_WARN", "edge.outbound_refused dest=$rd:$rp\n");
        sl_send_reply("403", "Forbidden - not a trunk");
        exit;
    }}
    # The UA worker's preloaded Route names this edge: it ends here, the carrier must not see it.
    remove_hf("Route");
    record_route();
    add_rr_param(";out=1");
    t_set_fr({p.dial_ring_ms}, 5000);
    xlog("L_NOTICE", "edge.outbound dest=$rd:$rp\n");
    route(RELAY);
}}"""


# A carrier sends calls for a registration to its Contact (sip:<trunk name>@edge): back to the AOR.
_UAC_LOOKUP = """if (uac_reg_lookup("$rU", "$ru")) {
        xlog("L_INFO", "edge.registered_trunk_call ruri=$ru\\n");
    }"""
_UACREG_COLUMNS = (
    "id(int,auto) l_uuid(string) l_username(string) l_domain(string) r_username(string) r_domain(string) "
    "realm(string) auth_username(string) auth_password(string) auth_ha1(string,null) auth_proxy(string) "
    "expires(int) flags(int) reg_delay(int) contact_addr(string,null) socket(string,null) "
)


def _uac_params(p: EdgeParams) -> str:
    return "\n".join(
        [
            f'modparam("uac", "reg_db_url", "text://{p.uacreg_dir}")',
            f'modparam("uac", "reg_contact_addr", "{_host(p.advertised_host)}:{p.port}")',
            'modparam("uac", "reg_timer_interval", 10)',
            'modparam("uac", "reg_retry_interval", 30)',
        ]
    )


def _dbtext(value: str) -> str:
    """A db_text field: its separator and escape character escaped."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def render_uacreg(p: EdgeParams) -> dict[str, str]:
    """The db_text tables (file name -> content) the uac module registers the trunks from."""
    contact = f"{_host(p.advertised_host)}:{p.port}"
    rows = [
        ":".join(
            [
                str(i),
                _dbtext(r.name),
                _dbtext(r.username),
                _dbtext(p.advertised_host),
                _dbtext(r.username),
                _dbtext(r.registrar_host),
                _dbtext(r.realm),
                _dbtext(r.username),
                _dbtext(r.password),
                "",
                _dbtext(r.registrar),
                str(r.expires_s),
                "0",
                "0",
                _dbtext(contact),
                "",
            ]
        )
        for i, r in enumerate(p.registrations, start=1)
    ]
    return {
        "version": "table_name(string) table_version(int) \nuacreg:5\n",
        "uacreg": _UACREG_COLUMNS + "\n" + "".join(row + "\n" for row in rows),
    }


def render_dispatcher_list(p: EdgeParams) -> str:
    """Return dispatcher.list: one destination per UA worker in set 1, in the given order.

    ``duid`` keys the call-load table; ``maxload`` stops selecting a worker that is full (pjsua2 cannot
    take a 5th call and would answer 486).
    """
    lines = [
        "# setid destination flags priority attributes (generated by voicebot.edge)",
        # Flags 1 = inactive: no INVITE goes to a UA worker until it has said it can take calls (the
        # supervisor sets it active) or answered an OPTIONS probe (it opens its SIP port only then).
    ]
    for i, b in enumerate(p.backends):
        lines.append(f"1 {backend_uri(b)} 1 0 duid=ua{i};maxload={b.max_calls}")
    return "\n".join(lines) + "\n"


def backend_uri(b: Backend) -> str:
    """The dispatcher destination URI of a UA worker (as in dispatcher.list and dispatcher.list RPCs)."""
    return f"sip:{_host(b.host)}:{b.port}"


def _host(host: str) -> str:
    """Bracket IPv6 literals for use in SIP URIs and listen directives."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _listen_lines(p: EdgeParams) -> str:
    lines = []
    for transport in p.transports:
        port = p.tls_port if transport == "tls" else p.port
        line = f"listen={transport}:{_host(p.listen)}:{port}"
        if p.advertise and p.advertise != p.listen:
            line += f" advertise {_host(p.advertise)}:{port}"
        lines.append(line)
    return "\n".join(lines)


def _tls_modparams(p: EdgeParams) -> str:
    return "\n".join(
        [
            f'modparam("tls", "certificate", "{p.tls_cert}")',
            f'modparam("tls", "private_key", "{p.tls_key}")',
            'modparam("tls", "tls_method", "TLSv1.2+")',
            # Trunks authenticate by source IP (TRUNK_ACL), not by client certificate.
            'modparam("tls", "verify_certificate", 0)',
            'modparam("tls", "require_certificate", 0)',
        ]
    )


def _scanner_check(user_agents: tuple[str, ...]) -> str:
    if not user_agents:
        return "# (no scanner User-Agents configured)"
    # validate() allows only [A-Za-z0-9 ._/-]; '.' is the one regex metacharacter among them.
    alternatives = "|".join(ua.lower().replace(".", "[.]") for ua in user_agents)
    return f'if ($ua != $null && $(ua{{s.tolower}}) =~ "{alternatives}") {{\n        exit;\n    }}'


def _subnets(allow: tuple[str, ...]) -> str:
    """The allowlist as ipops wants it: normalized CIDRs, comma separated."""
    return ",".join(str(ipaddress.ip_network(cidr, strict=False)) for cidr in allow)


def _pike_check(p: EdgeParams) -> str:
    exempt = '!ds_is_from_list("1")'
    if p.trunk_allow and not p.pike_trunks:
        exempt += f' && !is_in_subnet("$si", "{_subnets(p.trunk_allow)}")'
    return f"if ({exempt} && !pike_check_req()) {{\n        exit;\n    }}"


def _trunk_check(allow: tuple[str, ...]) -> str:
    if not allow:
        # An empty allowlist admits nobody: opening the edge to the world must be explicit (0.0.0.0/0).
        return 'sl_send_reply("403", "Forbidden - no trunk allowed");\n    exit;'
    return (
        f'if (!is_in_subnet("$si", "{_subnets(allow)}")) {{\n'
        '        xlog("L_NOTICE", "edge.trunk_denied src=$si\\n");\n'
        '        sl_send_reply("403", "Forbidden - source not allowed");\n'
        "        exit;\n"
        "    }"
    )
