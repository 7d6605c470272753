"""The flow table's compiled index, the batch grouping helpers, the payload prefilter and the
content keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.flows import FlowTable, group_keys, group_max


def flow_hashes(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(1, 2**62, count, dtype=np.uint64) | np.uint64(1)).astype(np.uint64)


def tcp(count: int) -> np.ndarray:
    return np.full(count, 6, np.uint8)


def test_lookup_finds_allocated_flows_and_misses_the_others() -> None:
    table = FlowTable(max_flows=1000, initial=8)
    hashes = flow_hashes(600)
    slots = table.allocate(hashes[:300], tcp(300))
    assert (table.lookup(hashes[:300]) == slots).all()
    assert (table.lookup(hashes[300:]) == -1).all()
    assert len(table) == 300 and table.created == 300


def test_index_stays_exact_through_random_churn() -> None:
    """Backward-shift deletion must never lose a key that probed past a deleted one."""
    table = FlowTable(max_flows=5000, initial=16)
    rng = np.random.default_rng(7)
    model: dict[int, int] = {}
    pool = flow_hashes(3000, seed=3)
    for _ in range(60):
        absent = np.array([h for h in rng.choice(pool, 80) if int(h) not in model], np.uint64)
        absent = np.unique(absent)
        for h, slot in zip(
            absent.tolist(), table.allocate(absent, tcp(len(absent))).tolist(), strict=False
        ):
            model[h] = slot
        present = np.array(list(model), np.uint64)
        gone = rng.choice(present, min(40, len(present)), replace=False)
        table.evict(table.lookup(gone), "idle")
        for h in gone.tolist():
            del model[h]
        expected = np.array([model.get(int(h), -1) for h in pool], np.int64)
        assert (table.lookup(pool) == expected).all()
    assert len(table) == len(model)


def test_making_room_evicts_the_least_recently_seen_but_never_the_kept() -> None:
    table = FlowTable(max_flows=64, initial=64)
    hashes = flow_hashes(64)
    slots = table.allocate(hashes, tcp(64))
    table.last_seen[slots] = np.arange(64, dtype=np.float64)  # slot order = age order
    keep = slots[:2]  # the two oldest are in the current batch
    table.make_room(10, keep)
    remaining = table.lookup(hashes)
    assert (remaining[:2] >= 0).all()
    assert (remaining[2:12] == -1).all() and (remaining[12:] >= 0).all()
    assert table.evicted["full"] == 10


def test_idle_flows_are_those_past_their_transport_timeout() -> None:
    table = FlowTable()
    slots = table.allocate(flow_hashes(2), np.array([6, 17], np.uint8))
    table.last_seen[slots] = 1000.0
    assert table.idle(1000.0 + 400).tolist() == [slots[1]]  # UDP: 300 s
    assert sorted(table.idle(1000.0 + 700).tolist()) == sorted(slots.tolist())  # TCP: 600 s


def test_a_flow_s_columns_and_index_cost_under_110_bytes_at_the_default_bound() -> None:
    """Half a million live flows: every byte a slot costs is half a MiB resident. The columns
    are as narrow as their values and the index is at most half full (76 + 25 bytes now;
    int64 ids, budgets and labels and a quarter-full index cost 174)."""
    table = FlowTable(initial=500_000)
    arrays = [value for value in vars(table).values() if isinstance(value, np.ndarray)]
    assert sum(array.nbytes for array in arrays) / table.capacity < 110
    assert table._index_keys.shape[0] >= 2 * table.capacity  # still at most half full


def test_grouping_by_hash_agrees_with_sorting() -> None:
    keys = np.random.default_rng(5).integers(0, 500, 20_000).astype(np.uint64)
    first, inverse, counts = group_keys(keys)
    unique, unique_counts = np.unique(keys, return_counts=True)
    assert sorted(keys[first].tolist()) == unique.tolist()
    assert (keys[first][inverse] == keys).all()
    assert dict(zip(keys[first].tolist(), counts.tolist(), strict=False)) == dict(
        zip(unique.tolist(), unique_counts.tolist(), strict=False)
    )
    assert (first == np.sort(first)).all()  # numbered in order of first appearance


def test_group_max_is_the_largest_value_of_each_group() -> None:
    groups = np.array([0, 1, 0, 2, 1], np.int64)
    values = np.array([5.0, 1.0, 7.0, -3.0, 0.5])
    assert group_max(groups, values, 3).tolist() == [7.0, 1.0, -3.0]


def test_first_sends_after_a_row_are_the_first_from_their_address_in_the_batch() -> None:
    """Against a plain loop, on random batches: an address is an IP packet's source or an
    ARP sender (0.0.0.0 is none), IPv4 and IPv6 apart; frames without either are skipped."""
    from monitor.flows import first_sends_after

    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 80))
        src_hi = rng.integers(0, 2, n).astype(np.uint64)
        src_lo = rng.integers(0, 6, n).astype(np.uint64)
        ip_version = rng.choice(np.array([0, 4, 6], np.uint8), n)
        arp = (ip_version == 0) & (rng.random(n) < 0.5)
        start = int(rng.integers(-1, n))
        seen: set[tuple[int, int, int]] = set()
        expected = []
        for i in range(n):
            version = 4 if arp[i] else int(ip_version[i])
            if version == 0 or (arp[i] and src_lo[i] == 0):
                continue
            address = (int(src_hi[i]), int(src_lo[i]), version)
            if address not in seen and i > start:
                expected.append(i)
            seen.add(address)
        got = first_sends_after(src_hi, src_lo, ip_version, arp, start)
        assert got.tolist() == expected, seed


def test_device_traffic_counts_each_packet_for_its_sender_and_receiver_in_its_window() -> None:
    """Against the numpy formulation it replaced (a bincount per column, ``ufunc.at`` for
    the times), on random batches: lengths past the last size bin, packets of no device."""
    from monitor.flows import device_traffic

    bins = np.array([0, 0, 1, 1, 2, 3], np.int64)  # lengths 0..4, and 5 for every longer one
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n, devices, windows = int(rng.integers(1, 200)), int(rng.integers(1, 6)), 3
        senders = rng.integers(-1, devices, n)
        receivers = rng.integers(-1, devices, n)
        window = np.sort(rng.integers(0, windows, n))
        lengths = rng.integers(0, 9, n).astype(np.int32)
        times = np.round(rng.random(n) * 100, 2)
        arp = rng.random(n) < 0.3
        counts, totals, last_sent, arp_counts, arp_times = device_traffic(
            senders, receivers, window, lengths, times, arp, devices, windows, bins, 4
        )
        cells = devices * windows
        tx, rx = senders >= 0, receivers >= 0
        tx_cell = senders[tx] * windows + window[tx]
        rx_cell = receivers[rx] * windows + window[rx]
        expected = np.zeros((devices, windows, 8), np.int64)
        for column, where, weights in (
            (0, tx_cell, None),
            (1, tx_cell, lengths[tx]),
            (2, rx_cell, None),
            (3, rx_cell, lengths[rx]),
        ):
            summed = np.bincount(where, weights=weights, minlength=cells)
            expected[:, :, column] = summed.reshape(devices, windows)
        size_bin = bins[np.clip(lengths[tx], 0, 5)]
        histogram = np.bincount(tx_cell * 4 + size_bin, minlength=cells * 4)
        expected[:, :, 4:] = histogram.reshape(devices, windows, 4)
        assert (counts == expected).all(), seed
        assert (totals == expected[:, :, :4].sum(axis=1)).all(), seed
        latest = np.full(devices, -1.0)
        np.maximum.at(latest, senders[tx], times[tx])
        assert (last_sent == latest).all(), seed
        sent_arp = tx & arp
        arp_cell = senders[sent_arp] * windows + window[sent_arp]
        assert (arp_counts.ravel() == np.bincount(arp_cell, minlength=cells)).all(), seed
        first, last = np.full(cells, np.inf), np.full(cells, -np.inf)
        np.minimum.at(first, arp_cell, times[sent_arp])
        np.maximum.at(last, arp_cell, times[sent_arp])
        assert (arp_times[:, :, 0].ravel() == first).all(), seed
        assert (arp_times[:, :, 1].ravel() == last).all(), seed


def test_flow_packets_count_per_side_and_tell_the_flows_whose_server_shows() -> None:
    """Against the numpy formulation it replaced, on random batches of TCP and UDP flows:
    a SYN-ACK tells the server of a TCP flow (the batch's first one), packets both ways that
    of a UDP flow (also with the first way counted in an earlier batch), each at the packet
    that showed it (as frame by frame), and a flow whose server is known is not told again."""
    from monitor.flows import account_flow_packets

    for seed in range(20):
        rng = np.random.default_rng(seed)
        table = FlowTable(max_flows=64, initial=64)
        flows = int(rng.integers(1, 12))
        protocol = np.where(rng.random(flows) < 0.5, 6, 17).astype(np.uint8)
        slots = table.allocate(flow_hashes(flows, seed), protocol)
        table.packets[slots, 0] = rng.integers(0, 2, flows)  # an earlier batch's
        table.server_side[slots] = np.where(rng.random(flows) < 0.2, 1, -1)
        table.last_seen[slots] = rng.random(flows) * 50
        n = int(rng.integers(1, 60))
        groups = rng.integers(-1, flows, n)
        rows = np.flatnonzero(groups >= 0)
        inverse = groups[rows]
        direction = rng.integers(0, 2, n).astype(np.uint8)
        lengths = rng.integers(40, 1500, n).astype(np.int32)
        times = rng.random(n) * 100
        protocols = np.where(groups >= 0, protocol[groups], 6).astype(np.uint8)
        flags = rng.choice(np.array([0x02, 0x12, 0x10, 0x18], np.uint8), n)
        before = (table.packets.copy(), table.bytes.copy(), table.last_seen.copy())

        replied, synack_side, known_at = account_flow_packets(
            rows, inverse, slots, direction, lengths, times, protocols, flags,
            table.packets, table.bytes, table.last_seen, table.server_side,
        )  # fmt: skip

        packets, byte_counts, last_seen = before
        # packet by packet: the first packet that shows an unknown server
        expected_side = np.full(flows, -1, np.int64)
        expected_at = np.full(flows, -1, np.int64)
        ways = packets[slots].copy()
        for r in rows.tolist():
            g = int(groups[r])
            ways[g, direction[r]] += 1
            if table.server_side[slots[g]] >= 0 or expected_at[g] >= 0:
                continue
            if protocol[g] == 6 and flags[r] & 0x12 == 0x12:
                expected_side[g], expected_at[g] = direction[r], r
            elif protocol[g] == 17 and (ways[g] > 0).all():
                expected_at[g] = r
        side_index = inverse * 2 + direction[rows]
        packets[slots] += np.bincount(side_index, minlength=2 * flows).reshape(flows, 2)
        byte_counts[slots] += np.bincount(
            side_index, weights=lengths[rows], minlength=2 * flows
        ).reshape(flows, 2).astype(np.int64)  # fmt: skip
        last_seen[slots] = np.maximum(last_seen[slots], group_max(inverse, times[rows], flows))
        assert (table.packets == packets).all(), seed
        assert (table.bytes == byte_counts).all(), seed
        assert (table.last_seen == last_seen).all(), seed
        assert (synack_side == expected_side).all(), seed
        assert (known_at == expected_at).all(), seed
        assert replied.tolist() == np.flatnonzero(expected_at >= 0).tolist(), seed


def test_payloads_go_to_the_decoders_within_their_flow_s_budget_or_when_followed() -> None:
    """Against the numpy formulation it replaced, on random batches: UDP to and from the
    inspected ports, TCP within each flow's budget (spent also by a payload no decoder could
    read), a followed flow's payloads up to the size limit and never its budget, later
    fragments and packets of no flow never."""
    from monitor.flows import select_payloads

    readable, unreadable = b"\x16\x03\x01\x00\x05", b"\x17\x03\x03\x00\x05"
    inspected = np.zeros(65536, np.bool_)
    inspected[[53, 67, 5353]] = True
    for seed in range(30):
        rng = np.random.default_rng(seed)
        flows, n = int(rng.integers(1, 8)), int(rng.integers(1, 80))
        slots = rng.permutation(16)[:flows].astype(np.int64)
        followed = rng.random(16) < 0.3
        budget = rng.integers(0, 5, 16).astype(np.int8)
        groups = rng.integers(-1, flows, n)
        lengths = rng.choice(np.array([0, 5, 5, 5, 5000], np.int32), n)
        fragment = rng.choice(np.array([0, 0, 0, 1, 2], np.uint8), n)
        protocols = rng.choice(np.array([6, 6, 17, 1], np.uint8), n)
        src_port = rng.choice(np.array([53, 1000, 40000], np.int32), n)
        dst_port = rng.choice(np.array([5353, 2000, 443], np.int32), n)
        starts = [readable if rng.random() < 0.7 else unreadable for _ in range(n)]
        buffer = np.frombuffer(b"".join(starts), np.uint8)
        offsets = np.arange(n, dtype=np.int64) * 5
        spent = budget.copy()

        taken, udp_rows, tcp_rows, of_followed = select_payloads(
            groups, slots, lengths, fragment, protocols, src_port, dst_port, inspected,
            buffer, offsets, followed, spent, 4096,
        )  # fmt: skip

        has_payload = (lengths > 0) & (fragment != 2)
        udp = has_payload & (protocols == 17) & (inspected[src_port] | inspected[dst_port])
        assert udp_rows.tolist() == np.flatnonzero(udp & (groups >= 0)).tolist(), seed
        group_followed = followed[slots]
        eligible = (
            has_payload
            & (protocols == 6)
            & (~np.append(group_followed, False)[groups] | (lengths <= 4096))
        )
        left = np.where(group_followed, 1 << 40, budget[slots].astype(np.int64))
        chosen = np.zeros(n, np.bool_)
        for i in range(n):
            if eligible[i] and groups[i] >= 0 and left[groups[i]] > 0:
                chosen[i] = True
                left[groups[i]] -= 1
        chosen &= np.frombuffer(buffer, np.uint8)[offsets] == 0x16  # readable ones
        assert taken.tolist() == chosen.tolist(), seed
        assert tcp_rows.tolist() == np.flatnonzero(chosen).tolist(), seed
        assert of_followed.tolist() == group_followed[groups[tcp_rows]].tolist(), seed
        expected_budget = budget.copy()
        expected_budget[slots[~group_followed]] = left[~group_followed]
        assert spent.tolist() == expected_budget.tolist(), seed


def payload_table(*payloads: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    buffer = np.frombuffer(b"".join(payloads), np.uint8)
    lengths = np.array([len(p) for p in payloads], np.int32)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return buffer, offsets, lengths, np.arange(len(payloads), dtype=np.int64)


def hl7_message(kind: bytes, control_id: bytes, time: bytes, ack: bool = False) -> bytes:
    second = b"MSA|AA|" + control_id if ack else b"PID|1||BENCH-1||BENCH^SYNTHETIC"
    return (
        b"\x0bMSH|^~\\&|PUMP|WARD3|ENGINE|HOSP|"
        + time
        + b"||"
        + kind
        + b"|"
        + control_id
        + b"|P|2.5.1\r"
        + second
        + b"\r\x1c\r"
    )


def test_hl7_messages_differing_only_in_time_and_control_id_share_a_routing_key() -> None:
    from monitor.flows import hl7_routing_keys

    table = payload_table(
        hl7_message(b"ORU^R01", b"MSG1", b"20261205090000"),
        hl7_message(b"ORU^R01", b"MSG2", b"20261205090005"),
        hl7_message(b"ADT^A01", b"MSG3", b"20261205090010"),
        hl7_message(b"ACK", b"MSG4", b"20261205090011", ack=True),
        hl7_message(b"ACK", b"MSG5", b"20261205090012", ack=False),
        b"OBX|1|NM|HR||72\r",  # a continuation segment: decoded on its own
    )
    keys = hl7_routing_keys(*table, np.zeros(6, np.int64)).tolist()
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3], keys[4]}) == 4
    assert keys[5] == 0
    salted = hl7_routing_keys(*table, np.arange(6, dtype=np.int64)).tolist()
    assert salted[0] != salted[1]  # another flow or direction is another feed


def test_dicom_image_fragments_are_told_from_command_fragments() -> None:
    from monitor.flows import dicom_data_only

    def pdata(*pdvs: tuple[int, bytes]) -> bytes:
        items = b"".join(
            (len(body) + 2).to_bytes(4, "big") + bytes([1, control]) + body
            for control, body in pdvs
        )
        return b"\x04\x00" + len(items).to_bytes(4, "big") + items

    command = (0x03, b"\x00\x00\x00\x01" + b"\x00" * 8)
    image = (0x00, b"\x7f" * 40)
    association = b"\x01\x00\x00\x00\x00\x10" + b"\x00" * 16
    table = payload_table(pdata(image), pdata(command), pdata(image, command), association)
    assert dicom_data_only(*table).tolist() == [True, False, False, False]


def test_only_payloads_a_decoder_could_read_go_to_python() -> None:
    from monitor.flows import could_be_metadata

    plausible = {
        b"\x16\x03\x01\x00\xa5\x01\x00": True,  # a TLS handshake record
        b"GET /status HTTP/1.1\r\nHost: pump-7\r\n\r\n": True,
        b"POST /fhir/Observation HTTP/1.1\r\n": True,
        b"\x0bMSH|^~\\&|MONITOR|WARD3|": True,  # MLLP's start block
        b"MSH|^~\\&|LAB|": True,
        b"FHS|^~\\&|": True,
        b"\x01\x00\x00\x00\x00\xcd\x00\x01": True,  # a DICOM A-ASSOCIATE-RQ
        b"\x10\x1a\x00\x04MQTT\x04": True,  # an MQTT CONNECT
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n": False,
        b"HTTP/1.0 404 Not Found\r\n": False,
        b"\x17\x03\x03\x00\x20": False,  # TLS application data
        b"<html><body>": False,
        b"G": False,
    }
    buffer, offsets, lengths, _ = payload_table(*plausible)
    assert could_be_metadata(buffer, offsets, lengths).tolist() == list(plausible.values())


def dns_keys(*messages: bytes, salt: list[int] | None = None) -> tuple[list[int], list[int]]:
    from monitor.flows import dns_content_keys

    buffer, offsets, lengths, rows = payload_table(*messages)
    salts = np.array(salt if salt is not None else [0] * len(messages), np.int64)
    contents, salted = dns_content_keys(buffer, offsets, lengths, rows, salts)
    return contents.tolist(), salted.tolist()


def dns_answer(message_id: int, ttl: int, address: str) -> bytes:
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    name = "pacs.ward.example"
    return bytes(
        DNS(
            id=message_id,
            qr=1,
            qd=DNSQR(qname=name),
            an=[
                DNSRR(rrname=name, ttl=ttl, rdata=address),
                DNSRR(rrname=name, type="AAAA", ttl=ttl, rdata="2001:db8::9"),
            ],
        )
    )


def mdns_announcement() -> bytes:
    from scapy.layers.dns import DNS, DNSRR, DNSRRSRV, dns_compress

    return bytes(
        dns_compress(  # type: ignore[no-untyped-call]
            DNS(
                id=0,
                qr=1,
                aa=1,
                an=[
                    DNSRR(rrname="_dicom._tcp.local", type="PTR", rdata="US 3._dicom._tcp.local"),
                    DNSRRSRV(rrname="US 3._dicom._tcp.local", target="us3.local", port=104),
                    DNSRR(rrname="us3.local", type="A", rdata="169.254.10.3", ttl=4500),
                ],
            )
        )
    )


def with_answers(*answers: bytes) -> bytes:
    """A response to one question for "pacs" (at offset 12), with ``answers``."""
    header = bytes.fromhex("0001 8180 0001") + len(answers).to_bytes(2, "big") + bytes(4)
    return header + b"\x04pacs\x00\x00\x01\x00\x01" + b"".join(answers)


# an A record at offset 22 whose TTL's bytes (28 to 31) read as the name "abc"
TTL_READS_ABC = bytes.fromhex("c00c 0001 0001") + b"\x03abc" + bytes.fromhex("0004 0a000001")
# names the decoder reads, each through a TTL's bytes
NAMES_THROUGH_A_TTL = {
    "an owner name": with_answers(
        TTL_READS_ABC, bytes.fromhex("c01c 0001 0001 0000003c 0004 0a000002")
    ),
    "a PTR target": with_answers(TTL_READS_ABC, bytes.fromhex("c00c 000c 0001 0000003c 0002 c01c")),
    "an SRV target": with_answers(
        TTL_READS_ABC, bytes.fromhex("c00c 0021 0001 0000003c 0008 0000 0000 0068 c01c")
    ),
    # a pointer in the class's last byte (0xc0) whose offset is the TTL's first byte (12)
    "a pointer's offset": with_answers(
        bytes.fromhex("c00c 0001 00c0 0c00003c 0004 0a000001"),
        bytes.fromhex("c01b 0001 0001 0000003c 0004 0a000002"),
    ),
}


def test_a_dns_answer_keys_alike_with_another_id_and_ttl_and_apart_with_another_address() -> None:
    contents, salted = dns_keys(
        dns_answer(1, 300, "10.1.0.9"),
        dns_answer(2, 17, "10.1.0.9"),
        dns_answer(1, 300, "10.1.0.10"),
        dns_answer(1, 300, "10.1.0.9"),
        salt=[5, 5, 5, 6],
    )
    assert contents[0] != 0 and contents[0] == contents[1] != contents[2]
    assert salted[0] == salted[1] != salted[3]
    assert contents[3] == contents[0]


def test_a_dns_message_that_reads_a_ttl_or_would_not_decode_has_no_key() -> None:
    from monitor.decode.dns import parse

    read = []
    for message in NAMES_THROUGH_A_TTL.values():
        info = parse(message)
        assert info is not None
        read.append((info.records[1].name, info.records[1].target))
    # what the decoder finds through the TTL
    assert read == [("abc", "10.0.0.2"), ("pacs", "abc"), ("pacs", "abc"), ("pacs", "10.0.0.2")]
    answer = dns_answer(1, 300, "10.1.0.9")
    not_a_query = answer[:2] + bytes([answer[2] | 0x18]) + answer[3:]  # opcode 3
    contents, salted = dns_keys(
        *NAMES_THROUGH_A_TTL.values(), answer[:-3], not_a_query, answer[:11]
    )
    assert contents == [0] * 7 and salted == [0] * 7


def test_dns_messages_that_key_alike_decode_alike() -> None:
    """Every one-byte change of a few messages (id, flags, counts, labels, pointers, types,
    TTLs, data): where the changed message keeps the original's key, it decodes as the
    original does; the changes that keep it are those to the id and the TTLs."""
    from monitor.decode import Malformed
    from monitor.decode.dns import parse

    def outcome(message: bytes) -> object:
        try:
            return parse(message)
        except Malformed as error:
            return error.reason

    kept = 0
    for original in (dns_answer(1, 300, "10.1.0.9"), mdns_announcement()):
        kept_at: set[int] = set()
        changed = [
            original[:at] + bytes([value]) + original[at + 1 :]
            for at in range(len(original))
            for value in {0x00, 0x01, 0x3F, 0xC0, 0xC0 | (at & 0x3F), 0xFF, original[at] ^ 1}
            if value != original[at]
        ]
        contents, _ = dns_keys(original, *changed)
        assert contents[0] != 0
        for message, content in zip(changed, contents[1:], strict=True):
            if content == contents[0]:
                assert outcome(message) == outcome(original)
                kept_at.add(next(i for i in range(len(message)) if message[i] != original[i]))
        kept += len(kept_at)
    ttl_bytes = 4 * 5  # the answer's two records, the announcement's three
    assert kept == 2 * 2 + ttl_bytes


def test_dns_keys_read_nothing_past_a_message_however_it_is_cut_or_changed() -> None:
    """Run as plain Python (numba's JIT off), where reading past a message's end raises:
    every cut of a few messages, and a few thousand random changes to them."""
    import json
    import os
    import random
    import subprocess
    import sys

    rng = random.Random(9)
    # a question whose name points at the message's last byte, half a pointer
    half_a_pointer = bytes.fromhex("0001 0100 0001 0000 0000 0000 c012 0001 0001 c0")
    samples = [
        dns_answer(1, 300, "10.1.0.9"),
        mdns_announcement(),
        *NAMES_THROUGH_A_TTL.values(),
        half_a_pointer,
    ]
    messages = [sample[:cut] for sample in samples for cut in range(len(sample) + 1)]
    for _ in range(3000):
        changed = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 5)):
            changed[rng.randrange(len(changed))] = rng.choice([0x00, 0x3F, 0xC0, 0xFF, 12, 28])
        messages.append(bytes(changed[: rng.randrange(len(changed) + 1)]))
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from monitor.flows import dns_content_keys\n"
        "messages = [bytes.fromhex(m) for m in json.load(sys.stdin)]\n"
        "buffer = np.frombuffer(b''.join(messages), np.uint8)\n"
        "lengths = np.array([len(m) for m in messages], np.int32)\n"
        "offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)\n"
        "rows = np.arange(len(messages), dtype=np.int64)\n"
        "keys, _ = dns_content_keys(buffer, offsets, lengths, rows, rows)\n"
        "print(int((keys != 0).sum()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        input=json.dumps([m.hex() for m in messages]),
        capture_output=True,
        text=True,
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
        cwd=Path(__file__).resolve().parents[1],  # where ``monitor`` is, wherever pytest ran
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 2  # the whole answer and announcement at least
