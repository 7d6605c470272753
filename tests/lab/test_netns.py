"""Lab namespaces: built without touching the host's network, and gone afterwards whatever
happens — an exception, a process that ignores SIGTERM, a lab whose owner died."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.lab.netns import BRIDGE, Lab, LabError, list_namespaces, remove_stale

from .conftest import lab_requirements, leftovers

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    reason = lab_requirements()
    if reason:
        pytest.skip(reason)


def host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_hosts_on_the_switch_reach_each_other_and_the_host_network_is_untouched(
    tmp_path: Path,
) -> None:
    before = host_links()
    with Lab(tmp_path) as lab:
        lab.build_switch()
        lab.add_host("a", "00:12:21:00:00:01")
        lab.add_host("b", "58:42:e4:00:00:02")
        lab.add_address("a", "10.99.0.1/24")
        lab.add_address("b", "10.99.0.2/24")
        out = lab.exec(lab.ns("a"), ["busybox", "ping", "-c", "1", "-W", "2", "10.99.0.2"])
        assert "1 packets received" in out
        assert BRIDGE in lab.exec(lab.switch, ["ip", "-o", "link"])
        assert host_links() == before
    assert leftovers(lab.tag) == []


def test_an_exception_inside_the_lab_still_removes_namespaces_and_processes(
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError), Lab(tmp_path) as lab:
        lab.build_switch()
        ns = lab.add_host("a", "00:12:21:00:00:01")
        # a process that ignores SIGTERM, and a child it forked into the background
        lab.spawn("stubborn", ns, ["sh", "-c", "trap '' TERM; sleep 300 & sleep 301"])
        raise RuntimeError("boom")
    assert leftovers(lab.tag) == []
    assert not any(ns.startswith(lab.tag) for ns in list_namespaces())


def test_a_closed_lab_refuses_to_start_anything(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.build_switch()
    lab.close()
    with pytest.raises(LabError):
        lab.spawn("late", lab.switch, ["true"])
    with pytest.raises(LabError):
        lab.add_host("late", "00:12:21:00:00:09")
    assert leftovers(lab.tag) == []


def test_namespaces_of_a_dead_lab_are_removed_and_a_live_labs_are_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = f"snlab{dead.pid}-orphan"
    subprocess.run(["ip", "netns", "add", orphan], check=True)
    with Lab(tmp_path) as live:
        live.build_switch()
        assert live.tag == f"snlab{os.getpid()}"
        removed = remove_stale()
        assert orphan in removed
        assert live.switch in list_namespaces()
    assert orphan not in list_namespaces()
