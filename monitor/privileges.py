"""Give up privileges once the capture socket is open (tcpdump ``-Z``, with capabilities).

Capture needs ``CAP_NET_RAW`` only to *open* a packet socket; an open socket keeps working
without it. ``drop_privileges`` therefore, in this order: empties the capability bounding set
(when allowed), switches to ``user`` if one is given (supplementary groups cleared, group and
user ids set), clears every capability set (effective, permitted, inheritable, ambient) with
``capset(2)``, sets ``PR_SET_NO_NEW_PRIVS`` so no exec can regain any, and then reads
``/proc/self/status`` to check that ``CapEff`` and ``CapPrm`` are zero.

Promise: it returns only when the process holds no capability; otherwise it raises
``PrivilegeError`` (the daemon refuses to run with privileges it does not need).

Capabilities are per thread in Linux: call this before any thread is started. (No
``PR_SET_KEEPCAPS`` dance is needed: nothing is kept across the user switch on purpose.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


class PrivilegeError(Exception):
    """Privileges could not be dropped; the message is one line."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 40


def capability_sets(pid: int | str = "self") -> dict[str, int]:
    """``CapInh``, ``CapPrm``, ``CapEff``, ``CapBnd``, ``CapAmb`` of a process, as integers."""
    sets: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name.startswith("Cap"):
                sets[name] = int(value.strip(), 16)
    return sets


def drop_privileges(user: str | None = None) -> None:
    """Drop to ``user`` (if given) and to no capabilities at all. See the module docstring."""
    libc = _libc()
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    # the bounding set can only shrink with CAP_SETPCAP; without it, the empty permitted set
    # below is what matters
    for cap in range(_last_cap() + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise PrivilegeError(f"unknown user {user!r}") from None
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        except OSError as error:
            raise PrivilegeError(
                f"cannot switch to user {user!r}: {error.strerror or 'error'}"
            ) from None
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        errno = ctypes.get_errno()
        raise PrivilegeError(f"capset failed: {os.strerror(errno)}")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise PrivilegeError(f"PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    sets = capability_sets()
    if sets.get("CapEff") or sets.get("CapPrm") or sets.get("CapAmb"):
        raise PrivilegeError("capabilities are still held after dropping them")
