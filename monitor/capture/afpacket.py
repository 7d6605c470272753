"""Live capture on a Linux AF_PACKET socket with a TPACKET_V3 memory-mapped receive ring.

``PacketRing`` opens one ``SOCK_RAW`` packet socket bound to one interface, attaches a BPF
filter compiled by libpcap (through pcapy-ng: only the compiler is used), maps a ring of
blocks shared with the kernel and, optionally, joins a ``PACKET_FANOUT`` group so that
several sockets (one per worker process) share the interface's traffic by flow hash.

``read_batch`` walks the blocks the kernel handed over (``TP_STATUS_USER``), copies their
frames into one contiguous buffer in a compiled loop and gives each block back
(``TP_STATUS_KERNEL``) once every frame of it is copied: the pipeline receives the same
``FrameBatch`` a capture file gives. Per frame: capture time in nanoseconds from the kernel
(``tp_sec``/``tp_nsec``), ``caplen`` the bytes kept (at most ``snaplen``: the filter returns
it, so the kernel cuts), ``wirelen`` the real length on the wire (``tp_len``). A VLAN tag the
driver took out of the frame (``TP_STATUS_VLAN_VALID``) is put back, as libpcap does, so a
trunk SPAN port looks the same here as in a capture file.

Gathering: on a wire at moderate rates the kernel hands over a block every few milliseconds,
and each would be a batch of its own, yet a batch's fixed cost is shared by its frames (a
batch of 2,048 frames costs the pipeline about twice as much per frame as one of 65,536).
``read_batch(gather_seconds=...)`` lets handed-over blocks wait, up to that long after it
first saw one, until they hold ``GATHER_FRAMES`` frames; never while a quarter of the ring is
waiting, nor once frames arrive faster than ``GATHER_MAX_RATE``: a busy wire is read at once,
as without gathering, since a reader that sleeps while it has work to do only moves closer to
a full ring.

Kernel statistics (``PACKET_STATISTICS``) are reset by each read; ``stats`` accumulates them:
``received`` counts every frame that passed the filter (the kernel adds the dropped ones),
``dropped`` the frames lost because the ring was full, ``queue_freezes`` how often it filled.

Fanout: ``PACKET_FANOUT_HASH`` sends every packet of a flow to the same socket (the kernel's
flow hash is symmetric: both directions go to one socket; IP fragments hash on addresses
only, so the fragments of one datagram stay together). ``PACKET_FANOUT_FLAG_DEFRAG`` is not
set on purpose: with it the kernel reassembles fragments before the sockets see them, so the
sensor would count reassembled datagrams instead of the packets on the wire, and a fragment
train that never completes would vanish from sight.

Promise: the constructor, ``read_batch`` and ``stats`` raise nothing but ``CaptureError``
(source = interface name), one line, with the reason (no such device, permission, bad BPF
filter, unsupported link type, the interface went down); never because of packet content.
The compiled walk assumes x86's ordering of loads and stores (no explicit barriers).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import select
import socket
import struct
import time
from types import TracebackType
from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt
import pcapy

from monitor.capture import LINKTYPE_ETHERNET, LINKTYPE_RAW, RING_BYTES, CaptureError, FrameBatch

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SIOCGIFHWADDR = 0x8927

TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
PACKET_OUTGOING = 4

# ARPHRD_* (if_arp.h) whose packet sockets give an Ethernet header, or a bare IP packet
_ETHERNET_HATYPES = frozenset({1, 772})  # ETHER, LOOPBACK
_RAW_IP_HATYPES = frozenset({512, 519, 768, 769, 776, 778, 0xFFFE})  # PPP, RAWIP, tunnels, NONE
ARPHRD_LOOPBACK = 772

BLOCK_HEADER_STATUS = 8  # tpacket_block_desc.hdr.bh1.block_status
TPACKET3_HEADER = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): sockaddr_ll follows
MAX_BLOCK_BYTES = 1 << 20
MIN_BLOCKS = 4
# read_batch's gathering (see the module docstring): frames worth a batch, the arrival rate
# (frames/s) past which it reads at once, and how often the waiting blocks are counted
GATHER_FRAMES = 16384
GATHER_MAX_RATE = 250_000
GATHER_STEP_SECONDS = 0.002
FRAME_BYTES = 2048  # only checked by the kernel for V3: block_size must be a multiple


class RingStats(NamedTuple):
    """Cumulative kernel statistics of one socket since it was opened."""

    received: int  # passed the filter, dropped ones included
    dropped: int  # lost because the ring was full
    queue_freezes: int  # times every block was full


def compile_filter(expression: str, linktype: int, snaplen: int, source: str) -> bytes:
    """The classic BPF program of ``expression`` as ``struct sock_filter`` array bytes.

    Accepted packets are cut to ``snaplen`` by the kernel (the program returns it); an
    empty expression accepts everything, cut to ``snaplen``.
    """
    dlt = pcapy.DLT_EN10MB if linktype == LINKTYPE_ETHERNET else pcapy.DLT_RAW
    try:
        program = pcapy.compile(dlt, snaplen, expression, 1, 0).get_bpf()
    except (pcapy.PcapError, ValueError, TypeError) as exc:
        raise CaptureError(source, f"bad BPF filter {expression!r}: {exc}") from None
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    instructions = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _hardware_type(sock: socket.socket, interface: str) -> int:
    request = struct.pack("16sH14x", interface.encode()[:15], 0)
    reply = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)
    return int(struct.unpack("16sH14x", reply)[1])


def _ring_geometry(buffer_bytes: int, snaplen: int) -> tuple[int, int]:
    """(block size, block count): blocks of at most 1 MiB, at least four of them when the
    buffer allows, each big enough for one frame of ``snaplen`` bytes."""
    smallest = 4096
    while smallest < snaplen + TPACKET3_HEADER + 64 + 4096:
        smallest <<= 1
    block = MAX_BLOCK_BYTES
    while block > smallest and buffer_bytes // block < MIN_BLOCKS:
        block >>= 1
    block = max(block, smallest)
    return block, max(2, buffer_bytes // block)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


def _map_ring(fd: int, size: int) -> int:
    address = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if address is None or address == MAP_FAILED:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot map the ring: {errno.errorcode.get(code, code)}")
    return int(address)


def _reason(error: OSError) -> str:
    if error.errno in (errno.EPERM, errno.EACCES):
        return "permission denied (needs root or CAP_NET_RAW)"
    if error.errno in (errno.ENODEV, errno.ENXIO):
        return "no such device"
    if error.errno == errno.ENETDOWN:
        return "the interface went down"
    return error.strerror or errno.errorcode.get(error.errno or 0, "error")


class PacketRing:
    """Frames arriving on ``interface`` (see the module docstring)."""

    def __init__(
        self,
        interface: str,
        bpf_filter: str = "",
        snaplen: int = 65535,
        buffer_bytes: int = RING_BYTES,
        timeout_ms: int = 100,
        promiscuous: bool = True,
        fanout_group: int | None = None,
    ) -> None:
        self.interface = interface
        self.timeout_ms = timeout_ms
        self.snaplen = snaplen
        self._closed = True
        self._totals = [0, 0, 0]
        self._map_address: int | None = None
        try:
            # protocol 0: nothing arrives before the filter is in place and the socket bound
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as error:
            raise CaptureError(interface, f"cannot capture: {_reason(error)}") from None
        try:
            self._open(sock, bpf_filter, buffer_bytes, promiscuous, fanout_group)
        except CaptureError:
            self._unmap()
            sock.close()
            raise
        except OSError as error:
            self._unmap()
            sock.close()
            raise CaptureError(interface, f"cannot capture: {_reason(error)}") from None
        self._sock = sock
        self._closed = False

    def _open(
        self,
        sock: socket.socket,
        bpf_filter: str,
        buffer_bytes: int,
        promiscuous: bool,
        fanout_group: int | None,
    ) -> None:
        interface = self.interface
        if not interface or len(interface.encode()) > 15 or "/" in interface:
            raise CaptureError(interface, "cannot capture: no such device")
        hatype = _hardware_type(sock, interface)
        if hatype in _ETHERNET_HATYPES:
            self.linktype = LINKTYPE_ETHERNET
        elif hatype in _RAW_IP_HATYPES:
            self.linktype = LINKTYPE_RAW
        else:
            raise CaptureError(interface, f"unsupported link type (ARPHRD {hatype})")
        # on loopback each packet passes twice (out and in): keep the incoming copy only
        self._skip_outgoing = hatype == ARPHRD_LOOPBACK
        _attach_filter(sock, compile_filter(bpf_filter, self.linktype, self.snaplen, interface))
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        self.block_bytes, self.block_count = _ring_geometry(buffer_bytes, self.snaplen)
        request = struct.pack(
            "7I",
            self.block_bytes,
            self.block_count,
            FRAME_BYTES,
            self.block_bytes // FRAME_BYTES * self.block_count,
            max(1, self.timeout_ms),  # a block is handed over at least this often
            0,
            0,
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self._map_bytes = self.block_bytes * self.block_count
        self._map_address = _map_ring(sock.fileno(), self._map_bytes)
        # a plain array over the mapping (no buffer export to outlive): nothing but these
        # views ever points into the ring, and they go before the unmap
        self._ring8 = np.ctypeslib.as_array(
            ctypes.cast(self._map_address, ctypes.POINTER(ctypes.c_uint8)),
            shape=(self._map_bytes,),
        )
        self._ring16 = self._ring8.view(np.uint16)
        self._ring32 = self._ring8.view(np.uint32)
        self._cursor = (0, 0, 0)  # (block, frames of it consumed, byte offset of the next)
        sock.bind((interface, ETH_P_ALL))
        self.ifindex = socket.if_nametoindex(interface)
        if promiscuous:
            membership = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
        if fanout_group is not None:
            try:
                sock.setsockopt(
                    SOL_PACKET, PACKET_FANOUT, (fanout_group & 0xFFFF) | PACKET_FANOUT_HASH << 16
                )
            except OSError as error:
                raise CaptureError(
                    interface, f"cannot join fanout group {fanout_group}: {_reason(error)}"
                ) from None
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_batch(self, max_frames: int = 4096, gather_seconds: float = 0.0) -> FrameBatch | None:
        """The frames that arrive within ``timeout_ms`` (at most ``max_frames``), or ``None``;
        with ``gather_seconds``, those that arrive until enough are waiting to make a batch
        worth its cost, that long after the first one, the ring is a quarter full, or frames
        arrive faster than ``GATHER_MAX_RATE`` (see the module docstring)."""
        if self._closed:
            raise CaptureError(self.interface, "capture is closed")
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            if gather_seconds > 0 and self._waiting()[0]:
                self._gather(min(max_frames, GATHER_FRAMES), gather_seconds)
            batch = self._drain(max_frames)
            if batch is not None:
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            events = self._poll.poll(max(1, int(remaining * 1000)))
            if any(mask & select.POLLERR for _, mask in events):
                self._raise_socket_error()

    def _waiting(self) -> tuple[int, int]:
        """The blocks handed over from the cursor on, and the frames in them not yet read."""
        block, index, _ = self._cursor
        ring32, words = self._ring32, self.block_bytes >> 2
        blocks = frames = 0
        b = block
        for _ in range(self.block_count):
            base = b * words
            if not ring32[base + (BLOCK_HEADER_STATUS >> 2)] & TP_STATUS_USER:
                break
            frames += int(ring32[base + 3]) - (index if b == block else 0)
            blocks += 1
            b = (b + 1) % self.block_count
        return blocks, frames

    def _gather(self, frames_wanted: int, seconds: float) -> None:
        # the socket stays readable while a handed-over block waits: sleep, do not poll
        began = time.monotonic()
        blocks, frames = self._waiting()
        waiting_before = frames
        while frames < frames_wanted and blocks * 4 < self.block_count:
            elapsed = time.monotonic() - began
            if elapsed >= seconds or frames - waiting_before > GATHER_MAX_RATE * elapsed:
                return
            time.sleep(min(seconds - elapsed, GATHER_STEP_SECONDS))
            blocks, frames = self._waiting()

    def _raise_socket_error(self) -> None:
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise CaptureError(self.interface, f"capture failed: {_reason(OSError(code, ''))}")

    def _drain(self, max_frames: int) -> FrameBatch | None:
        block, index, offset = self._cursor
        buffer, offsets, caplens, wirelens, stamps, block, index, offset = _drain_ring(
            self._ring8,
            self._ring16,
            self._ring32,
            self.block_bytes,
            self.block_count,
            block,
            index,
            offset,
            max_frames,
            self.snaplen,
            self._skip_outgoing,
            self.linktype == LINKTYPE_ETHERNET,
        )
        self._cursor = (block, index, offset)
        count = offsets.shape[0]
        if count == 0:
            return None
        return FrameBatch(
            buffer=buffer,
            offsets=offsets,
            caplens=caplens,
            wirelens=wirelens,
            timestamps_ns=stamps,
            linktypes=np.full(count, self.linktype, dtype=np.int32),
            source=self.interface,
        )

    def stats(self) -> RingStats:
        """Kernel statistics since the socket was opened (see the module docstring)."""
        if self._closed:
            raise CaptureError(self.interface, "capture is closed")
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        except OSError as error:
            reason = f"cannot read statistics: {_reason(error)}"
            raise CaptureError(self.interface, reason) from None
        for i, value in enumerate(struct.unpack("3I", raw)):
            self._totals[i] += value  # the kernel resets its counters on every read
        return RingStats(*self._totals)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unmap()
        self._sock.close()

    def _unmap(self) -> None:
        if getattr(self, "_map_address", None) is None:
            return
        # the views go first: nothing may point into the ring once it is unmapped
        self._ring8 = self._ring16 = self._ring32 = np.zeros(0, np.uint8)
        _libc.munmap(ctypes.c_void_p(self._map_address), ctypes.c_size_t(self._map_bytes))
        self._map_address = None

    def __enter__(self) -> PacketRing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def warm_up() -> None:
    """Load the compiled ring reader (from numba's cache, or compile it) before any ring
    opens: left to the first read, a cold cache (a new installation, an upgrade) would keep a
    just-opened ring waiting a second or more while the wire fills it."""
    ring8 = np.zeros(4096, np.uint8)  # one block the kernel has not handed over: no frame
    _drain_ring(
        ring8, ring8.view(np.uint16), ring8.view(np.uint32), 4096, 1, 0, 0, 0, 1, 65535, False, True
    )


@numba.njit(cache=True)  # type: ignore[misc]
def _drain_ring(
    ring8: npt.NDArray[np.uint8],
    ring16: npt.NDArray[np.uint16],
    ring32: npt.NDArray[np.uint32],
    block_bytes: int,
    block_count: int,
    block: int,
    index: int,
    offset: int,
    max_frames: int,
    snaplen: int,
    skip_outgoing: bool,
    ethernet: bool,
) -> tuple[
    npt.NDArray[np.uint8],
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    int,
    int,
    int,
]:
    """Copy up to ``max_frames`` frames from the blocks the kernel handed over, starting at
    the cursor (block, frames of it already consumed, byte offset of the next frame); give
    back each block whose frames are all consumed. Returns the frames and the new cursor."""
    # pass 1: how many frames and bytes, and how many ring frames that consumes
    frames = 0
    nbytes = 0
    consumed = 0
    b, k, off = block, index, offset
    for _ in range(block_count):
        base = b * block_bytes
        if (ring32[(base + BLOCK_HEADER_STATUS) >> 2] & TP_STATUS_USER) == 0:
            break
        in_block = ring32[(base + 12) >> 2]
        if k == 0:
            off = ring32[(base + 16) >> 2]
        while k < in_block and frames < max_frames:
            h = base + off
            if not (skip_outgoing and ring8[h + TPACKET3_HEADER + 10] == PACKET_OUTGOING):
                caplen = ring32[(h + 12) >> 2]
                status = ring32[(h + 20) >> 2]
                if ethernet and (status & TP_STATUS_VLAN_VALID) and caplen >= 12:
                    caplen += 4
                nbytes += min(caplen, snaplen)
                frames += 1
            consumed += 1
            off += ring32[h >> 2]
            k += 1
        if k < in_block:
            break
        b = (b + 1) % block_count
        k = 0
        off = 0
    buffer = np.empty(nbytes, np.uint8)
    offsets = np.empty(frames, np.int64)
    caplens = np.empty(frames, np.int32)
    wirelens = np.empty(frames, np.int32)
    stamps = np.empty(frames, np.int64)
    # pass 2: copy exactly what pass 1 counted, giving back finished blocks
    b, k, off = block, index, offset
    n = 0
    at = 0
    while consumed > 0:
        base = b * block_bytes
        in_block = ring32[(base + 12) >> 2]
        if k == 0:
            off = ring32[(base + 16) >> 2]
        while k < in_block and consumed > 0:
            h = base + off
            if not (skip_outgoing and ring8[h + TPACKET3_HEADER + 10] == PACKET_OUTGOING):
                caplen = ring32[(h + 12) >> 2]
                wirelen = ring32[(h + 16) >> 2]
                status = ring32[(h + 20) >> 2]
                data = h + ring16[(h + 24) >> 1]
                offsets[n] = at
                stamps[n] = np.int64(ring32[(h + 4) >> 2]) * 1_000_000_000 + ring32[(h + 8) >> 2]
                if ethernet and (status & TP_STATUS_VLAN_VALID) and caplen >= 12:
                    tpid = 0x8100
                    if status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = ring16[(h + 36) >> 1]
                    tci = ring32[(h + 32) >> 2]
                    tag = np.empty(16, np.uint8)
                    tag[:12] = ring8[data : data + 12]
                    tag[12] = (tpid >> 8) & 0xFF
                    tag[13] = tpid & 0xFF
                    tag[14] = (tci >> 8) & 0xFF
                    tag[15] = tci & 0xFF
                    keep = min(caplen + 4, snaplen)
                    head = min(keep, 16)
                    buffer[at : at + head] = tag[:head]
                    if keep > 16:
                        buffer[at + 16 : at + keep] = ring8[data + 12 : data + keep - 4]
                    caplen = keep
                    wirelen += 4
                else:
                    caplen = min(caplen, snaplen)
                    buffer[at : at + caplen] = ring8[data : data + caplen]
                caplens[n] = caplen
                wirelens[n] = wirelen
                at += caplen
                n += 1
            consumed -= 1
            off += ring32[h >> 2]
            k += 1
        if k >= in_block:
            ring32[(base + BLOCK_HEADER_STATUS) >> 2] = 0  # TP_STATUS_KERNEL: the block is back
            b = (b + 1) % block_count
            k = 0
            off = 0
    return buffer, offsets, caplens, wirelens, stamps, b, k, off
