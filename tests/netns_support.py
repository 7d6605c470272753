"""Network namespaces for the daemon's end-to-end tests (tag ``sndmn``).

``wire(name)`` creates a namespace holding a veth pair (``sndmn<N>a`` → ``sndmn<N>b``) with
IPv6 off (no router solicitations: only the replayed frames cross the wire) and loopback up,
and deletes it afterwards, also on failure. ``Forwarder`` makes a TCP port on the
namespace's loopback reachable on the host's 127.0.0.1, so that a Prometheus on the host can
scrape a daemon that runs in the namespace: each connection is relayed by a thread that has
joined the namespace with ``setns(2)`` (network namespaces are per thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

CLONE_NEWNET = 0x40000000


def netns_available() -> bool:
    if os.geteuid() != 0:
        return False
    probe = f"sndmn-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Wire:
    netns: str
    sender: str  # tcpreplay writes here
    receiver: str  # the daemon captures here


@contextlib.contextmanager
def wire(tag: str = "sndmn") -> Iterator[Wire]:
    suffix = f"{os.getpid() % 100000}"
    netns = f"{tag}-e2e-{suffix}"
    sender, receiver = f"{tag}{suffix}a"[:15], f"{tag}{suffix}b"[:15]
    _ip("netns", "add", netns)
    try:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                netns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "link", "add", sender, "type", "veth", "peer", "name", receiver)
        # captures taken on a host with segmentation offload hold frames above 1500 bytes
        _ip("-n", netns, "link", "set", sender, "mtu", "65535")
        _ip("-n", netns, "link", "set", receiver, "mtu", "65535")
        _ip("-n", netns, "link", "set", sender, "up")
        _ip("-n", netns, "link", "set", receiver, "up")
        yield Wire(netns, sender, receiver)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


@contextlib.contextmanager
def host_veth(tag: str) -> Iterator[tuple[str, str, str]]:
    """``(host interface, namespace, namespace interface)``: a veth pair whose one end stays
    in the host namespace (where a capture listens) and whose other end sits in a new
    namespace (where tcpreplay sends); IPv6 off on both ends, so that only the replayed
    frames cross; the MTU admits the above-1500-byte frames of captures taken with
    segmentation offload. Removed afterwards, also on failure."""
    uid = f"{os.getpid() % 100000}"
    ns, host_if, ns_if = f"{tag}-{uid}", f"{tag}{uid}a"[:15], f"{tag}{uid}b"[:15]
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        subprocess.run(
            ["sysctl", "-qw", f"net.ipv6.conf.{host_if}.disable_ipv6=1"], capture_output=True
        )
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ns_if}.disable_ipv6=1"],
            capture_output=True,
        )
        _ip("link", "set", host_if, "mtu", "65535")
        _ip("-n", ns, "link", "set", ns_if, "mtu", "65535")
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "link", "set", ns_if, "up")
        yield host_if, ns, ns_if
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


class Forwarder:
    """127.0.0.1:<port> on the host → 127.0.0.1:<target_port> inside ``netns``."""

    def __init__(self, netns: str, target_port: int) -> None:
        self.netns = netns
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            _enter(self.netns)  # this thread only
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            client.close()
            return
        with client, upstream:
            pair = {client: upstream, upstream: client}
            while not self._stop.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.5)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    pair[sock].sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


@contextlib.contextmanager
def replay_veth(tag: str) -> Iterator[tuple[str, str, str]]:
    """``host_veth(tag)`` for a test that replays into it with tcpreplay: it skips, saying
    so, without root or tcpreplay."""
    if os.geteuid() != 0 or shutil.which("tcpreplay") is None:
        pytest.skip("needs root, iproute2 and tcpreplay")
    with host_veth(tag) as ends:
        yield ends
