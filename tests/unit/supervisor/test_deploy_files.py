"""The deployment files in deploy/ are valid for the tools that read them: systemd, Kubernetes, voicebot."""

from __future__ import annotations

import os
import re
import subprocess
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from voicebot.config import load_settings
from voicebot.supervisor.plan import infer_params

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


@pytest.mark.parametrize("name", ["voicebot.service", "voicebot-edge.service"])
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    # The unit names /opt/voicebot; verify checks that its commands exist, so point it at this checkout.
    unit = tmp_path / name
    unit.write_text((DEPLOY / "systemd" / name).read_text().replace("/opt/voicebot", str(REPO)))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr  # warnings count too


MANIFESTS = {
    # each host its own edge (cluster.role single)
    "voicebot.yaml": {"ConfigMap", "Deployment", "PodDisruptionBudget"},
    # one edge, nodes, and the speech service that scales
    "cluster.yaml": {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "HorizontalPodAutoscaler"},
}
# What the kubelet would put in a pod's environment, for the settings test.
FIELDS = {"status.hostIP": "10.0.3.7", "spec.nodeName": "host-7"}
SECRETS = {
    "database-url": "postgresql+asyncpg://voicebot:pw@db/voicebot",
    "trunks": '[{"name": "pbx", "allow": ["192.0.2.10/32"]}]',
}


def _docs(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()))


def _pod_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet resolves it: field refs, secrets, $(VAR)."""
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], e["value"])
        elif "fieldRef" in e["valueFrom"]:
            env[e["name"]] = FIELDS[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[e["name"]] = SECRETS[e["valueFrom"]["secretKeyRef"]["key"]]
    return env


@pytest.mark.parametrize("name", sorted(MANIFESTS))
@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_the_kubernetes_manifests_match_the_schemas_strictly(name: str, version: str) -> None:
    docs = _docs(name)
    assert {d["kind"] for d in docs} == MANIFESTS[name]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or wrong field


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_pod_loads_its_settings_from_the_config_map_and_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    docs = _docs(name)
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    path = tmp_path / "voicebot.yaml"
    path.write_text(config_map["data"]["voicebot.yaml"])
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
        (container,) = pod["containers"]
        env = _pod_env(container)
        for key in [k for k in os.environ if k.startswith("VOICEBOT_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # Every VOICEBOT_* name is a real setting (a typo would be a silent default): loading with
        # extra="forbid" groups rejects unknown keys, and the value must land where it was meant.
        assert env["VOICEBOT_CONFIG"] == "/etc/voicebot/voicebot.yaml"  # where the ConfigMap is mounted
        s = load_settings(path)
        command = container["args"][0]
        if command in ("run", "edge"):
            assert s.sip.advertise == "10.0.3.7" and s.metrics.listen == "10.0.3.7:9464"
            assert s.database.url == SECRETS["database-url"] and s.log.format == "json"
        if command == "edge":
            # `voicebot edge` refuses to start without networks, and a node's address must be in them.
            assert s.cluster.backend_networks and s.trunks[0].name == "pbx"
            assert ip_address("10.0.3.7") in ip_network(s.cluster.backend_networks[0])
        if command == "run" and s.cluster.role == "node":
            assert s.cluster.node_id == "host-7" and s.behind_edge
            assert ip_address("10.0.3.7") in ip_network(s.cluster.edge_sources[0])
            # Nodes load no model: speech goes to the Service that the speech Deployment backs.
            assert s.inference.mode == "remote"
            service = next(d for d in docs if d["kind"] == "Service")
            port = service["spec"]["ports"][0]["port"]
            url = f"http://{service['metadata']['name']}:{port}/v1"
            assert all(p.urls == [url] for p in s.inference.asr_providers + s.inference.tts_providers)
        if command == "infer":
            params = infer_params(s)
            assert params.asr_backend == "faster-whisper"
            assert container["args"][1:] == ["--listen", "0.0.0.0:9470"]
        # The probes ask the port the process serves them on.
        probe_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
        listen = "0.0.0.0:9470" if command == "infer" else s.metrics.listen
        assert listen.endswith(f":{probe_port}")


def test_the_speech_autoscaler_and_budgets_name_real_deployments() -> None:
    docs = _docs("cluster.yaml")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
    assert target["spec"]["template"]["spec"]["containers"][0]["args"][0] == "infer"
    # The autoscaler scales on CPU utilisation, which needs a CPU request.
    assert target["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        labels = pdb["spec"]["selector"]["matchLabels"]
        pods = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
        assert any(labels.items() <= pod.items() for pod in pods)
