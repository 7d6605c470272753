"""HL7 v2 over MLLP: a patient monitor or device gateway sending ORU^R01 observations to an
interface engine, which acknowledges every message (MSA|AA).

The client keeps one TCP connection open, as interface connections do, sends one ORU^R01 per
bed at a steady cadence, waits for each ACK, and reconnects after a failure. Patients are the
synthetic canaries of ``monitor.lab.agent``.

Config: server ``host``/``port``; client ``server`` (name), ``port``, ``every``,
``sending_application``, ``facility``, ``receiver``, ``beds``, ``dns_server``.
"""

from __future__ import annotations

import random
import socket
import socketserver
import sys
import time
from datetime import UTC, datetime

from monitor.lab.agent import Config, patient, resolve

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"


def frame(message: str) -> bytes:
    """Wrap an HL7 message (segments joined by CR) in an MLLP block."""
    return START_BLOCK + message.encode("ascii") + END_BLOCK


def read_frame(sock: socket.socket, limit: int = 1 << 20) -> str:
    """Read one MLLP block; raises ``ConnectionError`` when the peer closes first."""
    data = b""
    while END_BLOCK not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
        if len(data) > limit:
            raise ValueError("MLLP block too long")
    start = data.find(START_BLOCK)
    return data[start + 1 : data.find(END_BLOCK)].decode("ascii", "replace")


def _stamp(when: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if when is None else when, UTC).strftime(
        "%Y%m%d%H%M%S"
    )


def oru_r01(sender: str, facility: str, receiver: str, control_id: str, bed: int) -> str:
    """An ORU^R01 (v2.6) with vital signs of the canary patient in ``bed``.

    ``receiver`` is ``APPLICATION^FACILITY`` of the engine (MSH-5 and MSH-6).
    """
    p = patient(bed)
    now = _stamp()
    receiving_app, _, receiving_facility = receiver.partition("^")
    heart_rate = random.randint(62, 96)
    spo2 = random.randint(94, 99)
    systolic = random.randint(105, 135)
    segments = [
        f"MSH|^~\\&|{sender}|{facility}|{receiving_app}|{receiving_facility}|{now}||"
        f"ORU^R01^ORU_R01|{control_id}|P|2.6"
        "|||AL|NE||UNICODE UTF-8",
        f"PID|1||{p['mrn']}^^^HOSP^MR||{p['family']}^{p['given']}||{p['dob']}|U",
        f"PV1|1|I|ICU^{bed + 1:02d}^1",
        f"OBR|1|||69837-6^Vital signs^LN|||{now}",
        f"OBX|1|NM|8867-4^Heart rate^LN||{heart_rate}|/min^beats per minute|||||F|||{now}",
        f"OBX|2|NM|59408-5^SpO2^LN||{spo2}|%|||||F|||{now}",
        f"OBX|3|NM|8480-6^Systolic BP^LN||{systolic}|mm[Hg]|||||F|||{now}",
    ]
    return "\r".join(segments) + "\r"


def ack(message: str, application: str) -> str:
    """The ACK an engine sends for ``message`` (MSA|AA with its control id)."""
    msh = message.split("\r", 1)[0].split("|")
    control_id = msh[9] if len(msh) > 9 else ""
    sender = "|".join(msh[2:4]) if len(msh) > 3 else "|"
    app, _, facility = application.partition("^")
    return (
        f"MSH|^~\\&|{app}|{facility}|{sender}|{_stamp()}||ACK^R01^ACK|A{control_id}|P|2.6\r"
        f"MSA|AA|{control_id}\r"
    )


class _Handler(socketserver.BaseRequestHandler):
    application = "ENGINE^HOSPITAL"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(600)
        try:
            while True:
                message = read_frame(sock)
                sock.sendall(frame(ack(message, self.application)))
        except (OSError, ValueError):
            return


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(cfg: Config) -> None:
    """The interface engine: an MLLP listener that ACKs every message."""
    _Handler.application = str(cfg.get("application", "ENGINE^HOSPITAL"))
    with _Server((str(cfg.get("bind", "0.0.0.0")), int(cfg.get("port", 2575))), _Handler) as server:
        server.serve_forever()


def client(cfg: Config) -> None:
    """A monitor or gateway: ORU^R01 per bed every ``every`` seconds over one connection."""
    every = float(cfg["every"])
    beds = int(cfg.get("beds", 1))
    sender = str(cfg["sending_application"])
    facility = str(cfg.get("facility", "WARD"))
    receiver = str(cfg.get("receiver", "ENGINE^HOSPITAL"))
    sock: socket.socket | None = None
    counter = random.randrange(10000, 90000)
    time.sleep(float(cfg.get("first", 0.0)))
    next_at = time.monotonic()
    while True:
        try:
            if sock is None:
                address = resolve(cfg, str(cfg["server"]))
                sock = socket.create_connection((address, int(cfg.get("port", 2575))), timeout=10)
            for bed in range(beds):
                counter += 1
                message = oru_r01(sender, facility, receiver, f"MSG{counter}", bed)
                sock.sendall(frame(message))
                reply = read_frame(sock)
                if "MSA|AA" not in reply:
                    print("message not accepted", file=sys.stderr, flush=True)
        except (OSError, ValueError) as error:
            print(f"hl7 send failed: {type(error).__name__}", file=sys.stderr, flush=True)
            if sock is not None:
                sock.close()
            sock = None
        next_at += every * random.uniform(0.97, 1.03)
        time.sleep(max(0.0, next_at - time.monotonic()))
