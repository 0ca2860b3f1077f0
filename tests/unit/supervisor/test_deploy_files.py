"""The deployment files in deploy/ are valid for the tools that read them: systemd, Kubernetes, voicebot."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from voicebot.config import load_settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


@pytest.mark.parametrize("name", ["voicebot.service", "voicebot-edge.service"])
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    # The unit names /opt/voicebot; verify checks that its commands exist, so point it at this checkout.
    unit = tmp_path / name
    unit.write_text((DEPLOY / "systemd" / name).read_text().replace("/opt/voicebot", str(REPO)))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr  # warnings count too


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_the_kubernetes_manifests_match_the_schemas_strictly(version: str) -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "voicebot.yaml").read_text()))
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "PodDisruptionBudget"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or wrong field


def test_the_settings_in_the_kubernetes_config_map_load_with_the_pods_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "voicebot.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    path = tmp_path / "voicebot.yaml"
    path.write_text(config_map["data"]["voicebot.yaml"])
    monkeypatch.setenv("VOICEBOT_SIP__ADVERTISE", "192.0.2.5")
    monkeypatch.setenv("VOICEBOT_METRICS__LISTEN", "192.0.2.5:9464")
    monkeypatch.setenv("VOICEBOT_TRUNKS", '[{"name": "pbx", "allow": ["192.0.2.10/32"]}]')
    s = load_settings(path)
    assert s.sip.advertise == "192.0.2.5" and s.trunks[0].name == "pbx" and s.log.format == "json"
    # The pod's environment names exactly these settings (a typo would be a silent default).
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {n for n in env if n.startswith("VOICEBOT_")} == {
        "VOICEBOT_CONFIG",
        "VOICEBOT_SIP__ADVERTISE",
        "VOICEBOT_METRICS__LISTEN",
        "VOICEBOT_DATABASE__URL",
        "VOICEBOT_TRUNKS",
    }
