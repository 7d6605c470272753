"""Application metadata dispatch: which decoder a payload goes to, and its decode cache."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR, DNSRR

from monitor import appmeta


def dns_bytes(message_id: int, name: str, answer: str | None = None) -> bytes:
    if answer is None:
        return bytes(DNS(id=message_id, rd=1, qd=DNSQR(qname=name)))
    return bytes(
        DNS(id=message_id, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=answer))
    )


def test_repeated_lookups_with_other_ids_give_the_same_facts() -> None:
    first = appmeta.decode(None, 17, (53001, 53), dns_bytes(1, "pacs.ward.example"))
    again = appmeta.decode(None, 17, (53002, 53), dns_bytes(2, "pacs.ward.example"))
    assert first == again
    assert first is not None and first[0] == "dns"


def test_lookups_for_other_names_or_answers_do_not_share_a_cache_entry() -> None:
    def facts(payload: bytes) -> set[tuple[str, str, str]]:
        found = appmeta.decode(None, 17, (53, 53001), payload)
        assert found is not None
        return {(f.kind, f.value, f.extra) for f in found[1]}

    pacs = facts(dns_bytes(7, "pacs.ward.example", "10.1.0.9"))
    assert ("resolved", "10.1.0.9", "pacs.ward.example") in pacs
    other = facts(dns_bytes(7, "pacs.ward.example", "10.1.0.10"))
    assert ("resolved", "10.1.0.10", "pacs.ward.example") in other
    assert pacs != other
    query = facts(dns_bytes(7, "lis.ward.example"))
    assert ("dns_query", "lis.ward.example", "") in query
