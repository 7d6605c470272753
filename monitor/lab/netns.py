"""Network namespaces for the lab: a switch, hosts on it, a router and an "internet".

Topology (nothing is created in the caller's own network namespace)::

    <tag>-sw        the switch: one bridge ``snlabbr0``; every host's cable ends here
    <tag>-<host>    one namespace per device, with one interface ``snlab0`` on the bridge
    <tag>-router    a host on the bridge that forwards to ...
    <tag>-inet      ... the "internet": one namespace holding every external address

``<tag>`` is ``snlab<pid>`` of the process that built the lab, so labs of two processes never
collide and a lab whose owner died can be recognised and removed (``remove_stale``).

Promise: ``Lab.close()`` kills every process started in the lab (its process group and
whatever else ``ip netns pids`` still finds in a lab namespace) and deletes every namespace,
which takes the bridge and every veth with it. It is idempotent and never raises, so it can
run from ``finally``, an ``atexit`` hook and a signal handler alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from monitor.lab.signals import held

TAG_PREFIX = "snlab"
BRIDGE = "snlabbr0"
HOST_IF = "snlab0"
WAN_IF = "snlabwan"
_TAG_RE = re.compile(r"^snlab(\d+)-")


class LabError(Exception):
    """The lab could not be built or driven (a command failed); one line for the user."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> str:
    """Run a short command; returns its stdout. Raises ``LabError`` on failure if ``check``."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"{argv[0]}: {type(error).__name__}") from None
    if check and done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        last = message[-1] if message else f"exit status {done.returncode}"
        raise LabError(f"{' '.join(argv[:6])}: {last}")
    return done.stdout


def list_namespaces() -> list[str]:
    """Names of every network namespace of the machine (``ip netns list``)."""
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_pids(ns: str) -> None:
    out = run(["ip", "netns", "pids", ns], check=False)
    for word in out.split():
        if word.isdigit():
            with contextlib.suppress(OSError):
                os.kill(int(word), signal.SIGKILL)


def delete_namespace(ns: str) -> None:
    """Kill what still runs in ``ns`` and delete it (which deletes its interfaces)."""
    for _ in range(3):
        _kill_namespace_pids(ns)
        run(["ip", "netns", "del", ns], check=False)
        if ns not in list_namespaces():
            return
        time.sleep(0.2)


def remove_stale() -> list[str]:
    """Delete lab namespaces whose owning process is gone; returns their names."""
    removed = []
    for ns in list_namespaces():
        match = _TAG_RE.match(ns)
        if match and not _pid_alive(int(match.group(1))):
            delete_namespace(ns)
            removed.append(ns)
    return removed


@dataclass
class Process:
    """A process the lab started in one of its namespaces."""

    name: str
    ns: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes] | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Lab:
    """Builds and tears down one lab; see the module docstring for the layout."""

    workdir: Path
    tag: str = field(default_factory=lambda: f"{TAG_PREFIX}{os.getpid()}")
    namespaces: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    _next_port: int = 1
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- naming -------------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    @property
    def switch(self) -> str:
        return self.ns("sw")

    # -- building -----------------------------------------------------------------------------
    def _add_namespace(self, ns: str) -> None:
        with self._lock:
            if self._closed:
                raise LabError("the lab is closed")
            if ns in list_namespaces():
                delete_namespace(ns)
            # Recorded before it exists: close() must delete it even if creation is cut short.
            self.namespaces.append(ns)
            run(["ip", "netns", "add", ns])
        # IPv6 would make every interface (the bridge included) chatter router solicitations
        # and MLD from addresses that are no device of the scenario.
        self.exec(
            ns,
            [
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )
        self.exec(ns, ["ip", "link", "set", "lo", "up"])

    def exec(self, ns: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> str:
        """Run a short command inside namespace ``ns``."""
        return run(["ip", "netns", "exec", ns, *argv], check=check, timeout=timeout)

    def build_switch(self) -> None:
        """The switch namespace with its bridge; a capture on the bridge sees every frame."""
        self._add_namespace(self.switch)
        self.exec(
            self.switch,
            [
                "ip", "link", "add", BRIDGE, "type", "bridge",
                "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0",
            ],
        )  # fmt: skip
        self.exec(self.switch, ["ip", "link", "set", BRIDGE, "up"])

    def add_host(self, host: str, mac: str) -> str:
        """A namespace for ``host`` plugged into the switch with ``mac``; returns its name."""
        ns = self.ns(host)
        self._add_namespace(ns)
        port = self.port_of(host)
        self.exec(
            self.switch,
            ["ip", "link", "add", port, "type", "veth", "peer", "name", HOST_IF, "netns", ns],
        )
        self.exec(self.switch, ["ip", "link", "set", port, "master", BRIDGE])
        self.exec(self.switch, ["ip", "link", "set", port, "up"])
        self.exec(ns, ["ip", "link", "set", HOST_IF, "address", mac])
        self.exec(ns, ["ip", "link", "set", HOST_IF, "up"])
        return ns

    _ports: dict[str, str] = field(default_factory=dict)

    def port_of(self, host: str) -> str:
        """The switch-side interface of ``host``'s cable (unplugging = setting it down)."""
        port = self._ports.get(host)
        if port is None:
            port = f"{TAG_PREFIX}p{self._next_port}"
            self._next_port += 1
            self._ports[host] = port
        return port

    def set_link(self, host: str, up: bool) -> None:
        """Plug (``up``) or unplug ``host``'s cable at the switch."""
        self.exec(self.switch, ["ip", "link", "set", self.port_of(host), "up" if up else "down"])

    def add_address(self, host: str, cidr: str, gateway: str | None = None) -> None:
        ns = self.ns(host)
        self.exec(ns, ["ip", "addr", "add", cidr, "dev", HOST_IF])
        if gateway:
            self.exec(ns, ["ip", "route", "replace", "default", "via", gateway])

    def build_internet(
        self, router: str, lan_cidr: str, wan_router: str, wan_inet: str, prefixes: Sequence[str]
    ) -> str:
        """The internet namespace, cabled to ``router`` (already a host), with routes.

        ``wan_router``/``wan_inet`` are the two ends of the router's uplink (``a.b.c.d/30``);
        ``prefixes`` are the external networks whose addresses live in the internet namespace.
        """
        inet = self.ns("inet")
        self._add_namespace(inet)
        rns = self.ns(router)
        self.exec(
            rns,
            ["ip", "link", "add", WAN_IF, "type", "veth", "peer", "name", WAN_IF, "netns", inet],
        )
        self.exec(rns, ["ip", "addr", "add", wan_router, "dev", WAN_IF])
        self.exec(rns, ["ip", "link", "set", WAN_IF, "up"])
        self.exec(rns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        self.exec(inet, ["ip", "addr", "add", wan_inet, "dev", WAN_IF])
        self.exec(inet, ["ip", "link", "set", WAN_IF, "up"])
        self.exec(rns, ["ip", "route", "replace", "default", "via", wan_inet.split("/")[0]])
        self.exec(inet, ["ip", "route", "add", lan_cidr, "via", wan_router.split("/")[0]])
        for prefix in prefixes:
            # Every address of an external prefix is local to the internet namespace, so a
            # server listening on 0.0.0.0 there answers for any of them.
            self.exec(inet, ["ip", "route", "add", "local", prefix, "dev", "lo"])
        return inet

    # -- processes ----------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        ns: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> Process:
        """Start ``argv`` in ``ns``, in its own process group, logging to ``workdir/logs``."""
        logdir = self.workdir / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        # A stop signal raised between the fork and the recording would lose the child, and
        # close() cannot stop what was never recorded: the signal waits until it is recorded.
        with self._lock, held():
            if self._closed:
                raise LabError("the lab is closed")
            log = open(logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            try:
                popen = subprocess.Popen(
                    ["ip", "netns", "exec", ns, *argv],
                    stdin=stdin,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    # The tag in the environment marks the process and all it forks as this
                    # lab's, so that tests can tell whether anything of a lab survived it.
                    env={**os.environ, **(env or {}), "SNLAB_TAG": self.tag},
                )
            except OSError as error:
                log.close()
                raise LabError(f"{argv[0]}: cannot start: {error.strerror}") from None
            process = Process(name, ns, popen, log)
            self.processes.append(process)
        return process

    def stop(self, process: Process, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Stop ``process`` and its group: ``sig``, then SIGKILL after ``grace`` seconds."""
        if process.alive():
            with contextlib.suppress(OSError):
                os.killpg(process.pid, sig)
            try:
                process.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.popen.wait(timeout=grace)
        # A group member can outlive its leader (a daemon that forked): sweep the group.
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.log is not None:
            process.log.close()
            process.log = None

    # -- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        """Kill every lab process and delete every lab namespace. Idempotent; never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                self.stop(process, grace=2.0)
        for ns in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                delete_namespace(ns)
        # Anything with our tag that was half-created before it was recorded.
        with contextlib.suppress(Exception):
            for ns in list_namespaces():
                if ns.startswith(f"{self.tag}-"):
                    delete_namespace(ns)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
