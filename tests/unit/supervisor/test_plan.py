from __future__ import annotations

import pytest

from voicebot.config import Settings, TrunkSettings, load_settings
from voicebot.errors import ConfigError
from voicebot.supervisor.plan import ua_params


def test_default_is_two_workers_behind_the_edge() -> None:
    s = Settings()
    assert s.uses_edge and [u.port for u in ua_params(s)] == [5080, 5081]


def test_single_worker_listens_on_the_public_port() -> None:
    (ua,) = ua_params(Settings(workers={"ua_workers": 1}))
    assert ua.port == 5060 and not ua.behind_edge and ua.transports == ["udp", "tcp"]


def test_workers_behind_the_edge_get_internal_ports_and_disjoint_rtp_ranges() -> None:
    s = Settings(workers={"ua_workers": 3, "ua_base_port": 7000}, sip={"rtp_ports_per_worker": 100})
    uas = ua_params(s)
    assert [u.port for u in uas] == [7000, 7001, 7002]
    assert all(u.behind_edge and u.listen == "127.0.0.1" and u.transports == ["udp"] for u in uas)
    assert [u.rtp_port_start for u in uas] == [20000, 20100, 20200]
    assert s.uses_edge


def test_secrets_are_secret_in_settings_and_plain_only_in_worker_params() -> None:
    s = Settings(
        trunks=[
            TrunkSettings(name="t", allow=["10.0.0.1"], registrar="sip:pbx", username="u", password="pw")
        ],
        sip={"advertise": "10.0.0.5"},
    )
    assert "pw" not in repr(s)
    assert ua_params(s)[0].trunks[0].password == "pw"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"VOICEBOT_SIP__PORT": "99999"}, "sip.port"),
        ({"VOICEBOT_TRUNKS": '[{"name": "x", "allow": ["10.0.0.300"]}]'}, "not an IP address"),
        ({"VOICEBOT_QUEUES": '{"sales": "tel:+1555"}'}, "not a sip: or sips: URI"),
        ({"VOICEBOT_TRUNKS": '[{"name": "x", "registrar": "sip:pbx"}]'}, "username/password missing"),
        # A real PBX would get 127.0.0.1 in Contact and SDP (no audio): one line that says what to set.
        ({"VOICEBOT_TRUNKS": '[{"name": "pbx", "allow": ["192.0.2.10/32"]}]'}, "set sip.advertise"),
        (
            {
                "VOICEBOT_TRUNKS": '[{"name": "carrier", "allow": ["127.0.0.1"], "registrar": '
                '"sip:sip.carrier.example:5060", "username": "u", "password": "p"}]'
            },
            "trunk 'carrier' reaches this host from sip.carrier.example",
        ),
    ],
)
def test_invalid_settings_say_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_documented_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "deploy" / "voicebot.example.yaml"
    monkeypatch.delenv("VOICEBOT_CONFIG", raising=False)
    s = load_settings(example)
    assert s.sip.port == 5060 and s.queues["sales"].startswith("sip:")
    assert s.call.transfer_digits == {"1": "sales", "2": "support"}


def test_a_routable_advertise_lets_remote_trunks_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_TRUNKS", '[{"name": "pbx", "allow": ["192.0.2.10/32"]}]')
    monkeypatch.setenv("VOICEBOT_SIP__ADVERTISE", "198.51.100.7")
    assert load_settings().sip.advertise == "198.51.100.7"
    monkeypatch.setenv("VOICEBOT_TRUNKS", '[{"name": "local", "allow": ["127.0.0.0/8", "::1/128"]}]')
    monkeypatch.delenv("VOICEBOT_SIP__ADVERTISE")
    assert load_settings().sip.advertise == "127.0.0.1"  # loopback trunks only: the default is right


def test_speech_chains_follow_the_inference_mode() -> None:
    from voicebot.supervisor.plan import call_worker_params, speech_chains

    cloud = {"name": "cloud", "urls": ["https://speech.example/v1"], "api_key_env": "SPEECH_KEY"}
    # local (default): the configured providers first, then this node's service
    asr, tts = speech_chains(Settings(inference={"listen": "0.0.0.0:9555", "asr_providers": [cloud]}))
    assert [p.name for p in asr] == ["cloud", "local"] and asr[1].urls == ["http://127.0.0.1:9555/v1"]
    assert asr[1].voicebot and [p.name for p in tts] == ["local"]
    # remote: no model and no service on this node, the providers only
    asr, tts = speech_chains(Settings(inference={"mode": "remote", "asr_providers": [cloud]}))
    assert [p.name for p in asr] == ["cloud"] and tts == []
    # off: the models in every call worker, as before the service
    cw = call_worker_params(Settings(inference={"mode": "off"}))
    assert cw.asr_providers == [] and cw.tts_providers == [] and cw.asr_backend == "faster-whisper"
    # keys only: no recogniser asked for, the voices still from the service
    asr, tts = speech_chains(Settings(asr={"backend": "none"}))
    assert asr == [] and [p.name for p in tts] == ["local"]


def test_remote_without_providers_and_providers_without_a_service_are_refused() -> None:
    with pytest.raises(ValueError, match="mode remote needs"):
        Settings(inference={"mode": "remote"})
    with pytest.raises(ValueError, match=r"only with inference\.mode local or remote"):
        Settings(inference={"mode": "off", "asr_providers": [{"name": "x", "urls": ["http://x/v1"]}]})


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:9470", ("127.0.0.1", 9470)), (":9470", ("127.0.0.1", 9470)), ("[::1]:80", ("::1", 80))],
)
def test_host_port(listen: str, expected: tuple[str, int]) -> None:
    from voicebot.config import host_port

    assert host_port(listen) == expected


@pytest.mark.parametrize("listen", ["9470", "host:", "host:port", "host:70000", "host:0"])
def test_host_port_says_what_is_wrong(listen: str) -> None:
    from voicebot.config import host_port

    with pytest.raises(ValueError, match="is not HOST:PORT"):
        host_port(listen)


def test_a_cluster_node_listens_on_its_own_address_behind_the_shared_edge() -> None:
    s = Settings(
        sip={"listen": "10.0.0.11", "advertise": "10.0.0.11"},
        cluster={"role": "node", "node_id": "n1", "edge_sources": ["10.0.0.5/32"]},
        trunks=[
            TrunkSettings(name="pbx", allow=["192.0.2.0/24"], registrar="sip:pbx", username="u", password="p")
        ],
    )
    assert not s.uses_edge and s.behind_edge
    uas = ua_params(s)
    assert [(u.listen, u.advertise, u.port, u.node) for u in uas] == [
        ("10.0.0.11", "10.0.0.11", 5080, "n1"),
        ("10.0.0.11", "10.0.0.11", 5081, "n1"),
    ]
    assert all(u.behind_edge and u.edge_sources == ["10.0.0.5/32"] for u in uas)
    assert all(t.registrar is None for u in uas for t in u.trunks)  # the edge registers, once


@pytest.mark.parametrize(
    ("cluster", "sip", "fragment"),
    [
        ({"role": "node"}, {}, "edge_sources"),
        (
            {"role": "node", "edge_sources": ["10.0.0.5/32"]},
            {"advertise": "node1.example"},
            "not an IP address",
        ),
        ({"beat_s": 2.0, "stale_after_s": 5.0}, {}, "3 x beat_s"),
        ({"backend_networks": ["not-a-net"]}, {}, "not an IP address or CIDR"),
    ],
)
def test_cluster_settings_that_cannot_work_are_refused(cluster: dict, sip: dict, fragment: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=fragment):
        load_settings(cluster=cluster, sip=sip)
