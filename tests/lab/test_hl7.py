"""HL7 messages of the lab: fields where HL7 v2 puts them, ACKs that answer them, MLLP framing."""

from __future__ import annotations

import socket

from monitor.lab.hl7 import ack, frame, oru_r01, read_frame


def test_oru_r01_has_its_msh_fields_at_their_hl7_positions() -> None:
    message = oru_r01("IntelliVue^PIC", "ICU3", "RHAPSODY^HOSPITAL", "MSG1", 0)
    msh = message.split("\r")[0].split("|")
    # msh[n] is MSH-(n+1): the field separator itself is MSH-1
    assert (msh[2], msh[3], msh[4], msh[5]) == ("IntelliVue^PIC", "ICU3", "RHAPSODY", "HOSPITAL")
    assert (msh[8], msh[9], msh[11]) == ("ORU^R01^ORU_R01", "MSG1", "2.6")
    assert message.split("\r")[1].startswith("PID|1||CNRY-")


def test_the_ack_accepts_the_message_by_its_control_id() -> None:
    reply = ack(oru_r01("A^B", "F", "E^H", "MSG42", 1), "RHAPSODY^HOSPITAL")
    msh, msa = reply.rstrip("\r").split("\r")
    assert msh.split("|")[8] == "ACK^R01^ACK"
    assert msa == "MSA|AA|MSG42"


def test_mllp_frames_survive_a_socket_split_in_small_pieces() -> None:
    message = oru_r01("A^B", "F", "E^H", "MSG7", 2)
    left, right = socket.socketpair()
    with left, right:
        data = frame(message)
        for i in range(0, len(data), 7):
            left.sendall(data[i : i + 7])
        assert read_frame(right) == message
