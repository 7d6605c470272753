"""HL7 v2 message metadata, over MLLP (``0x0B`` message ``0x1C 0x0D``) or bare.

Kept: the separators (MSH-1, MSH-2), sending application and facility (MSH-3, MSH-4), receiving
application and facility (MSH-5, MSH-6), message type (MSH-9, first two components), version
(MSH-12), the acknowledgment code of an ACK (MSA-1), and how many segments of each type the
message holds, with the total of patient-bearing ones (PID, PD1, NK1, PV1, OBX, ...).

Promise: no field of any segment other than MSH and MSA-1 is ever read — a patient segment is
only counted by its three-letter id. ``parse`` returns ``None`` for anything that is not an HL7
v2 message and raises only ``Malformed`` with a fixed reason. ``parse`` describes the first
message of a payload, ``parse_all`` every MLLP frame in it; a message cut by the segment
boundary is described as far as it goes (``complete`` is False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "hl7_bad_separators",
        "hl7_no_msh",
        "hl7_truncated",
    }
)

SB, EB, CR = 0x0B, 0x1C, 0x0D

# Segments that carry patient identity, visit or clinical content (HL7 v2.x chapters 3, 4, 6, 7).
PATIENT_SEGMENTS = frozenset(
    {
        "PID",
        "PD1",
        "NK1",
        "PV1",
        "PV2",
        "OBX",
        "OBR",
        "ORC",
        "NTE",
        "AL1",
        "IAM",
        "DG1",
        "PR1",
        "GT1",
        "IN1",
        "IN2",
        "IN3",
        "MRG",
        "ROL",
        "SPM",
        "TQ1",
        "RXA",
        "RXE",
        "RXO",
        "RXR",
        "RXD",
        "RXG",
        "ACC",
        "UB1",
        "UB2",
        "DB1",
    }
)
_SEGMENT_ID = re.compile(rb"[A-Z][A-Z0-9]{2}\Z")
_MAX_SEGMENT_TYPES = 64
_MAX_SEGMENTS = 100_000


@dataclass(frozen=True, slots=True)
class Hl7Info:
    framed: bool  # arrived in an MLLP block
    complete: bool  # the whole message was in the payload (MLLP end block seen, or bare)
    field_separator: str  # MSH-1
    encoding_characters: str  # MSH-2
    sending_application: str  # MSH-3, up to three components joined by '^'
    sending_facility: str  # MSH-4
    receiving_application: str  # MSH-5
    receiving_facility: str  # MSH-6
    message_type: str  # MSH-9, first two components: 'ORU^R01'
    version: str | None  # MSH-12
    ack_code: str | None  # MSA-1 of an acknowledgment
    segment_counts: tuple[tuple[str, int], ...]  # (segment id, count), in first-seen order
    patient_segments: int  # how many segments are patient-bearing (PATIENT_SEGMENTS)


def looks_like(payload: bytes) -> bool:
    """An MLLP start block or a bare message, starting with an MSH (or batch FHS/BHS) segment."""
    start = 1 if payload[:1] == b"\x0b" else 0
    return payload[start : start + 3] in (b"MSH", b"FHS", b"BHS") and len(payload) > start + 3


def _component(value: bytes, comp: int, limit: int = 2) -> str:
    # Components are rewritten with '^' so a site's own component separator does not leak into
    # fact values; sub-components and escapes are kept as they are.
    parts = value.split(bytes([comp]))[:limit]
    return text(b"^".join(parts))


def parse(payload: bytes) -> Hl7Info | None:
    """Describe the first HL7 v2 message of ``payload``, or ``None`` if it holds none."""
    if not looks_like(payload):
        return None
    framed = payload[0] == SB
    body = payload[1:] if framed else payload
    end = body.find(bytes([EB]))
    complete = not framed or end >= 0
    if end >= 0:
        body = body[:end]
    # Segments end with CR; LF and CRLF are tolerated (files and hand-made feeds use them).
    segments = [s for s in re.split(rb"\r\n|\r|\n", body) if s]
    if not segments:
        return None
    msh_index = next((i for i, s in enumerate(segments[:3]) if s.startswith(b"MSH")), None)
    if msh_index is None:
        raise Malformed("hl7_no_msh")
    msh = segments[msh_index]
    if len(msh) < 8:
        raise Malformed("hl7_truncated")
    sep = msh[3]
    if chr(sep).isalnum() or sep < 0x21 or sep > 0x7E:
        raise Malformed("hl7_bad_separators")
    fields = msh.split(bytes([sep]))
    encoding = fields[1]
    if not 2 <= len(encoding) <= 5 or any(
        chr(c).isalnum() or c < 0x21 or c > 0x7E or c == sep for c in encoding
    ):
        raise Malformed("hl7_bad_separators")
    if len(fields) < 9:
        raise Malformed("hl7_truncated")
    comp = encoding[0]

    def msh_field(n: int, limit: int = 3) -> str:
        # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-n is fields[n - 1].
        return _component(fields[n - 1], comp, limit) if len(fields) >= n else ""

    counts: dict[str, int] = {}
    patient = 0
    ack_code: str | None = None
    for seg in segments[msh_index:][:_MAX_SEGMENTS]:
        seg_id = seg[:3]
        if len(seg) > 3 and seg[3] != sep:
            continue  # not a segment start (a wrapped line of a hand-made file)
        if not _SEGMENT_ID.match(seg_id):
            continue
        name = seg_id.decode("ascii")
        if name in counts:
            counts[name] += 1
        elif len(counts) < _MAX_SEGMENT_TYPES:
            counts[name] = 1
        if name in PATIENT_SEGMENTS:
            patient += 1
        elif name == "MSA" and ack_code is None:
            msa = seg.split(bytes([sep]), 2)
            if len(msa) > 1:
                ack_code = text(msa[1], 2)
    version = msh_field(12, 1) or None
    return Hl7Info(
        framed=framed,
        complete=complete,
        field_separator=chr(sep),
        encoding_characters=encoding.decode("ascii"),
        sending_application=msh_field(3),
        sending_facility=msh_field(4),
        receiving_application=msh_field(5),
        receiving_facility=msh_field(6),
        message_type=msh_field(9, 2),
        version=version,
        ack_code=ack_code,
        segment_counts=tuple(counts.items()),
        patient_segments=patient,
    )


_MAX_MESSAGES = 64


def parse_all(payload: bytes) -> tuple[Hl7Info, ...]:
    """Describe every MLLP-framed message of ``payload`` (TCP may coalesce several).

    A bare payload (no MLLP) is one message. Frames after the first that are not HL7 (an MLLP
    commit ACK) are skipped, a last one cut inside its MSH ends the list; at most 64 messages
    are described. Raises only ``Malformed``, and only for the first message.
    """
    first = parse(payload)
    if first is None:
        return ()
    if not first.framed:
        return (first,)
    infos = [first]
    pos = payload.find(bytes([EB]))
    while pos >= 0 and len(infos) < _MAX_MESSAGES:
        start = payload.find(bytes([SB]), pos + 1)
        if start < 0:
            break
        try:
            info = parse(payload[start:])
        except Malformed:
            break  # a later frame cut inside its MSH: the next segment holds the rest
        if info is not None:
            infos.append(info)
        pos = payload.find(bytes([EB]), start + 1)
    return tuple(infos)
