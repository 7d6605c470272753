"""DICOM upper layer (PS3.8) metadata.

Kept: for A-ASSOCIATE-RQ/AC the called and calling AE titles, the application context, the
abstract syntaxes proposed (RQ), the implementation class UID and version name; for
A-ASSOCIATE-RJ result, source and reason; for A-ABORT source and reason; for P-DATA-TF the
DIMSE command of each *command* PDV (Command Field (0000,0100) as 'C-STORE-RQ', ...) with its
affected or requested SOP class UID and, for responses, the status.

Promise: a dataset PDV (the message control header says so) is skipped unread, so patient
attributes are never touched; the user identity sub-item of an association request
(user name, password) is skipped as well. ``parse`` walks every PDU that starts in the payload,
returns ``None`` when the payload does not start with a plausible PDU and raises only
``Malformed`` with a fixed reason. A P-DATA PDU longer than the payload (a large C-STORE) is
read as far as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "dicom_bad_item",
        "dicom_bad_pdu",
        "dicom_bad_pdv",
        "dicom_truncated",
    }
)

PDU_TYPES: dict[int, str] = {
    1: "A-ASSOCIATE-RQ",
    2: "A-ASSOCIATE-AC",
    3: "A-ASSOCIATE-RJ",
    4: "P-DATA-TF",
    5: "A-RELEASE-RQ",
    6: "A-RELEASE-RP",
    7: "A-ABORT",
}

COMMANDS: dict[int, str] = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0020: "C-FIND-RQ",
    0x8020: "C-FIND-RSP",
    0x0021: "C-MOVE-RQ",
    0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
    0x0FFF: "C-CANCEL-RQ",
}

_MAX_PDU = 1 << 30
_MAX_SYNTAXES = 128
_MAX_PDUS = 256
_MAX_COMMANDS = 64


@dataclass(frozen=True, slots=True)
class DimseCommand:
    command: str  # a COMMANDS name, or 'UNKNOWN'
    sop_class_uid: str | None  # Affected (0000,0002) or Requested (0000,0003) SOP Class UID
    status: int | None  # (0000,0900), responses only


@dataclass(frozen=True, slots=True)
class DicomInfo:
    pdu_types: tuple[str, ...]  # every PDU that starts in the payload, in order
    called_ae: str | None
    calling_ae: str | None
    application_context: str | None
    abstract_syntaxes: tuple[str, ...]  # proposed in an A-ASSOCIATE-RQ
    implementation_class_uid: str | None
    implementation_version: str | None
    reject: tuple[int, int, int] | None  # A-ASSOCIATE-RJ (result, source, reason)
    abort: tuple[int, int] | None  # A-ABORT (source, reason)
    commands: tuple[DimseCommand, ...]


def looks_like(payload: bytes) -> bool:
    """A PDU header whose type, reserved byte, length and first bytes fit PS3.8."""
    if len(payload) < 10 or payload[1] != 0:
        return False
    kind = payload[0]
    length = int.from_bytes(payload[2:6], "big")
    if kind in (1, 2):
        return length >= 68 and payload[6:8] == b"\x00\x01"
    if kind == 4:
        # First PDV: length >= 2, odd presentation context id, control header bits 0-1 only.
        return len(payload) >= 12 and length >= 6 and payload[10] & 1 == 1 and payload[11] <= 3
    if kind in (3, 5, 6, 7):
        return length == 4
    return False


def _ae(raw: bytes) -> str:
    return text(raw.strip(b" \x00"), 16)


def _uid(raw: bytes) -> str:
    return text(raw.rstrip(b" \x00"), 64)


@dataclass(slots=True)
class _Assoc:
    called: str | None = None
    calling: str | None = None
    context: str | None = None
    impl_uid: str | None = None
    impl_version: str | None = None


def _associate(pdu: bytes, assoc: _Assoc, syntaxes: list[str]) -> None:
    if len(pdu) < 74:
        raise Malformed("dicom_truncated")
    assoc.called = _ae(pdu[10:26])
    assoc.calling = _ae(pdu[26:42])
    pos = 74
    while pos + 4 <= len(pdu):
        item = pdu[pos]
        length = (pdu[pos + 2] << 8) | pdu[pos + 3]
        value = pdu[pos + 4 : pos + 4 + length]
        if len(value) < length:
            raise Malformed("dicom_bad_item")
        pos += 4 + length
        if item == 0x10:
            assoc.context = _uid(value)
        elif item == 0x20:  # presentation context (RQ): id, 3 reserved, sub-items
            sub = 4
            while sub + 4 <= len(value):
                sub_type = value[sub]
                sub_len = (value[sub + 2] << 8) | value[sub + 3]
                if sub + 4 + sub_len > len(value):
                    raise Malformed("dicom_bad_item")
                if sub_type == 0x30 and len(syntaxes) < _MAX_SYNTAXES:
                    syntaxes.append(_uid(value[sub + 4 : sub + 4 + sub_len]))
                sub += 4 + sub_len
        elif item == 0x50:  # user information: only 0x52 and 0x55; 0x58 (identity) skipped
            sub = 0
            while sub + 4 <= len(value):
                sub_type = value[sub]
                sub_len = (value[sub + 2] << 8) | value[sub + 3]
                if sub + 4 + sub_len > len(value):
                    raise Malformed("dicom_bad_item")
                if sub_type == 0x52:
                    assoc.impl_uid = _uid(value[sub + 4 : sub + 4 + sub_len])
                elif sub_type == 0x55:
                    assoc.impl_version = _ae(value[sub + 4 : sub + 4 + sub_len])
                sub += 4 + sub_len


def _command(fragment: bytes) -> DimseCommand | None:
    """Read a command set (implicit VR little endian, group 0000 only) as far as it goes."""
    pos = 0
    field: int | None = None
    uid: str | None = None
    status: int | None = None
    while pos + 8 <= len(fragment):
        group = fragment[pos] | (fragment[pos + 1] << 8)
        elem = fragment[pos + 2] | (fragment[pos + 3] << 8)
        length = int.from_bytes(fragment[pos + 4 : pos + 8], "little")
        if group != 0:
            break  # not a command element: a continuation fragment or garbage
        value = fragment[pos + 8 : pos + 8 + length]
        if len(value) < length:
            break
        if elem in (0x0002, 0x0003) and uid is None:
            uid = _uid(value)
        elif elem == 0x0100 and length == 2:
            field = value[0] | (value[1] << 8)
        elif elem == 0x0900 and length == 2:
            status = value[0] | (value[1] << 8)
        pos += 8 + length
    if field is None:
        return None
    return DimseCommand(COMMANDS.get(field, "UNKNOWN"), uid, status)


def _pdata(pdu: bytes, commands: list[DimseCommand]) -> None:
    pos = 6
    while pos + 6 <= len(pdu):
        pdv_len = int.from_bytes(pdu[pos : pos + 4], "big")
        if pdv_len < 2:
            raise Malformed("dicom_bad_pdv")
        control = pdu[pos + 5]
        start = pos + 6
        stop = pos + 4 + pdv_len
        # Bit 0 set: command fragment. A dataset fragment is never looked into.
        if control & 0x01 and len(commands) < _MAX_COMMANDS:
            cmd = _command(pdu[start:stop])
            if cmd is not None:
                commands.append(cmd)
        pos = stop


def parse(payload: bytes) -> DicomInfo | None:
    """Describe the PDUs that start in ``payload``, or ``None`` if it does not start with one."""
    if not looks_like(payload):
        return None
    kinds: list[str] = []
    assoc = _Assoc()
    syntaxes: list[str] = []
    commands: list[DimseCommand] = []
    reject: tuple[int, int, int] | None = None
    abort: tuple[int, int] | None = None
    pos = 0
    while pos + 6 <= len(payload) and len(kinds) < _MAX_PDUS:
        kind = payload[pos]
        length = int.from_bytes(payload[pos + 2 : pos + 6], "big")
        if kind not in PDU_TYPES or payload[pos + 1] != 0 or length > _MAX_PDU:
            if pos == 0:
                raise Malformed("dicom_bad_pdu")
            break  # bytes after the last PDU that are not one: leave them
        pdu = payload[pos : pos + 6 + length]
        kinds.append(PDU_TYPES[kind])
        if kind == 4:
            _pdata(pdu, commands)
        elif len(pdu) < 6 + length:
            raise Malformed("dicom_truncated")
        elif kind in (1, 2) and assoc.called is None:
            _associate(pdu, assoc, syntaxes if kind == 1 else [])
        elif kind == 3 and length >= 4:
            reject = (pdu[7], pdu[8], pdu[9])
        elif kind == 7 and length >= 4:
            abort = (pdu[8], pdu[9])
        pos += 6 + length
    return DicomInfo(
        pdu_types=tuple(kinds),
        called_ae=assoc.called,
        calling_ae=assoc.calling,
        application_context=assoc.context,
        abstract_syntaxes=tuple(syntaxes),
        implementation_class_uid=assoc.impl_uid,
        implementation_version=assoc.impl_version,
        reject=reject,
        abort=abort,
        commands=tuple(commands),
    )
