"""Tests of monitor/baseline.py: learning state, facts, expiry, freeze, approve, YAML."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.baseline import (
    ENFORCING,
    LEARNING,
    Baseline,
    BaselineConfig,
    BaselineStore,
    export_yaml,
    import_yaml,
    profile_facts,
)
from monitor.facts import FactCounts
from monitor.model import WindowProfile
from monitor.profiles import FormatError
from tests.synthetic import window_profiles

T0 = 1_700_000_000.0
GW = "02:00:00:00:00:fe"


def window(
    i: int,
    *,
    peers: set[str] | None = None,
    names: dict[str, int] | None = None,
    device: str = "dev",
    length: float = 60.0,
) -> WindowProfile:
    start = T0 + i * length
    return WindowProfile(
        device,
        start,
        start + length,
        tx_packets=10,
        tx_bytes=1000,
        rx_packets=8,
        rx_bytes=900,
        flows_started=1,
        peers={GW} if peers is None else peers,
        protocols={"dns": 2},
        facts={"dns_query": dict(names or {"ntp.example.org": 2})},
        conversations={f"{GW}|udp/53": [start + 5.0, start + 35.0]},
    )


def test_enforcing_starts_exactly_when_duration_and_window_count_are_both_reached() -> None:
    # 10 windows of 60 s reach 600 s; the count (5) is reached first: time decides.
    baseline = Baseline("dev", BaselineConfig(min_duration=600.0, min_windows=5))
    for i in range(9):
        assert baseline.learn(window(i))
        assert baseline.state == LEARNING
    assert baseline.progress == pytest.approx(0.9)
    baseline.learn(window(9))
    assert baseline.state == ENFORCING
    assert baseline.enforcing_since == T0 + 600.0
    assert baseline.progress == 1.0


def test_a_device_seen_rarely_waits_for_the_window_count() -> None:
    # active one window in ten: the duration is reached long before the count.
    baseline = Baseline("dev", BaselineConfig(min_duration=600.0, min_windows=4))
    for n, i in enumerate((0, 10, 20)):
        baseline.learn(window(i))
        assert baseline.windows == n + 1
        assert baseline.state == LEARNING
    assert baseline.duration >= 600.0
    assert baseline.progress == pytest.approx(0.75)
    baseline.learn(window(30))
    assert baseline.state == ENFORCING and baseline.enforcing_since == T0 + 31 * 60.0


def test_a_window_already_learned_is_not_learned_twice() -> None:
    baseline = Baseline("dev")
    assert baseline.learn(window(0))
    assert not baseline.learn(window(0))
    assert baseline.windows == 1 and baseline.facts["dns_query"]["ntp.example.org"].count == 2


def test_facts_carry_first_seen_last_seen_and_count() -> None:
    baseline = Baseline("dev")
    for i in range(3):
        baseline.learn(window(i, names={"ntp.example.org": 2, f"only{i}.example": 1}))
    fact = baseline.facts["dns_query"]["ntp.example.org"]
    assert (fact.first_seen, fact.last_seen, fact.count) == (T0 + 60, T0 + 180, 6)
    assert baseline.facts["peer"][GW].count == 3  # peers are folded in as facts
    assert set(baseline.facts["protocol"]) == {"dns"}


def test_facts_not_seen_for_the_ttl_expire() -> None:
    baseline = Baseline("dev", BaselineConfig(fact_ttl=3600.0, min_windows=1000))
    baseline.learn(window(0, names={"old.example": 1, "kept.example": 1}))
    for i in range(1, 61):  # 60 more minutes without old.example
        baseline.learn(window(i, names={"kept.example": 1}))
    assert "old.example" in baseline.facts["dns_query"]  # last seen 3600 s ago: not yet
    baseline.learn(window(61, names={"kept.example": 1}))
    assert set(baseline.facts["dns_query"]) == {"kept.example"}


def test_conversations_silent_for_the_ttl_are_forgotten_and_the_rest_keep_their_cadence() -> None:
    baseline = Baseline("dev", BaselineConfig(fact_ttl=3600.0, min_windows=1000))
    for i in range(62):
        profile = window(i)
        start = profile.start
        profile.conversations = {"steady|tcp/2575": [start + 10.0, start + 40.0]}
        if i == 0:
            profile.conversations["once|tcp/2575"] = [start + 1.0]
        baseline.learn(profile)
        if i == 59:  # its last message was 3599 s before this window's end: not yet
            assert "once|tcp/2575" in baseline.cadence
    assert list(baseline.cadence) == ["steady|tcp/2575"]
    steady = baseline.cadence["steady|tcp/2575"]
    assert steady.messages == 124 and steady.bursts == 124
    stats = steady.stats()
    assert stats is not None and stats.median == 30.0 and stats.n == 64  # the ring is full


def test_the_store_expires_facts_of_devices_that_went_silent() -> None:
    store = BaselineStore(BaselineConfig(fact_ttl=7200.0))
    store.learn_window([window(0, device="quiet"), window(0, device="busy")])
    for i in range(1, 200):
        store.learn_window([window(i, device="busy")])
    quiet = store.get("quiet")
    assert quiet is not None and quiet.facts == {}
    assert "quiet" in store.dirty


def test_a_device_that_returns_after_all_its_facts_expired_forgets_again() -> None:
    store = BaselineStore(BaselineConfig(fact_ttl=7200.0))
    store.learn_window([window(0, device="roamer", names={"first.example": 1})])
    for i in range(1, 200):  # the roamer is away long enough to forget everything
        store.learn_window([window(i, device="busy")])
    roamer = store.get("roamer")
    assert roamer is not None and roamer.facts == {} and list(roamer.cadence) == []
    store.learn_window([window(200, device="roamer", names={"second.example": 1})])
    assert roamer.facts.has("dns_query", "second.example")
    for i in range(201, 400):
        store.learn_window([window(i, device="busy")])
    assert roamer.facts == {} and list(roamer.cadence) == []


def test_facts_learned_after_a_window_with_nothing_in_it_still_expire() -> None:
    baseline = Baseline("dev", BaselineConfig(fact_ttl=3600.0, min_windows=1000))
    # a device first counted from frames sent to it: no peer, protocol or fact yet
    baseline.learn(WindowProfile("dev", T0, T0 + 60.0, rx_packets=4, rx_bytes=296))
    baseline.learn(window(1, names={"old.example": 1}))
    for i in range(2, 63):
        baseline.learn(window(i, names={"kept.example": 1}))
    assert set(baseline.facts["dns_query"]) == {"kept.example"}


def test_a_frozen_baseline_learns_nothing() -> None:
    baseline = Baseline("dev", BaselineConfig(min_duration=60.0, min_windows=1))
    baseline.freeze()
    assert not baseline.learn(window(0))
    assert baseline.windows == 0 and baseline.facts == {} and baseline.state == LEARNING
    baseline.unfreeze()
    assert baseline.learn(window(1))
    assert baseline.state == ENFORCING


def enforcing_baseline() -> Baseline:
    baseline = Baseline("dev", BaselineConfig(min_duration=300.0, min_windows=5))
    for i in range(5):
        baseline.learn(window(i))
    assert baseline.enforcing
    return baseline


def test_while_learning_new_facts_become_known_without_deviation_records() -> None:
    baseline = Baseline("dev")
    baseline.learn(window(0))
    new = window(1, peers={GW, "ext:203.0.113.9"})
    assert [d.value for d in baseline.deviations(new)] == ["ext:203.0.113.9"]
    baseline.learn(new)
    assert baseline.knows("peer", "ext:203.0.113.9") and baseline.pending == {}


def test_a_new_fact_while_enforcing_stays_a_deviation_until_approved() -> None:
    baseline = enforcing_baseline()
    odd = window(5, peers={GW, "ext:203.0.113.9"})
    deviations = baseline.deviations(odd)
    assert [(d.kind, d.value, d.pending_since) for d in deviations] == [
        ("peer", "ext:203.0.113.9", None)
    ]
    baseline.learn(odd)  # learned after scoring: recorded as pending, not as normal
    assert not baseline.knows("peer", "ext:203.0.113.9")
    again = window(6, peers={GW, "ext:203.0.113.9"})
    assert [d.pending_since for d in baseline.deviations(again)] == [T0 + 360.0]
    baseline.learn(again)

    fact = baseline.approve("peer", "ext:203.0.113.9", "alice", "vendor cloud, CHG-1234", T0 + 999)
    assert baseline.deviations(window(7, peers={GW, "ext:203.0.113.9"})) == []
    assert (fact.first_seen, fact.count) == (T0 + 360.0, 2)  # history of the pending fact kept
    assert baseline.approvals[("peer", "ext:203.0.113.9")].by == "alice"
    assert baseline.pending == {}


def test_a_pending_fact_and_an_approval_stay_with_their_own_device() -> None:
    # Baselines with neither share empty ones until they have their own: a write must never
    # reach another device's.
    odd, quiet = enforcing_baseline(), enforcing_baseline()
    odd.learn(window(5, peers={GW, "ext:203.0.113.9"}))
    odd.approve("tls_sni", "update.vendor.example", "bob", "firmware 4.2", T0 + 999)
    assert set(odd.pending) == {"peer"} and set(odd.approvals) == {
        ("tls_sni", "update.vendor.example")
    }
    assert quiet.pending == {} and quiet.approvals == {}
    fresh = Baseline("other")
    assert fresh.pending == {} and fresh.approvals == {}
    for baseline in (odd, quiet):  # and so they are read back from the state file
        again = Baseline.from_dict(baseline.to_dict(compact=True))
        assert again.to_dict() == baseline.to_dict()
    quiet.learn(window(6, peers={GW, "ext:198.51.100.7"}))
    assert set(quiet.pending["peer"]) == {"ext:198.51.100.7"}
    assert set(odd.pending["peer"]) == {"ext:203.0.113.9"}


def test_a_baseline_costs_under_900_bytes_before_it_learns() -> None:
    # One per device. Most never have a pending fact or an approval: a table and a dict
    # of their own for them cost 152 bytes a baseline, 991 in all.
    config = BaselineConfig()
    devices = [f"02:00:00:00:{k >> 8:02x}:{k & 255:02x}" for k in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        baselines = [Baseline(device, config) for device in devices]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / len(baselines) < 900


def test_approving_a_value_never_seen_makes_it_known_with_count_zero() -> None:
    baseline = enforcing_baseline()
    fact = baseline.approve("tls_sni", "update.vendor.example", "bob", "firmware 4.2", T0 + 1)
    assert fact.count == 0
    profile = window(9)
    profile.facts["tls_sni"] = {"update.vendor.example": 1}
    assert baseline.deviations(profile) == []


def test_approve_refuses_an_unknown_kind_or_a_missing_reason() -> None:
    baseline = enforcing_baseline()
    with pytest.raises(ValueError, match="unknown fact kind"):
        baseline.approve("colour", "red", "a", "b", T0)
    with pytest.raises(ValueError, match="why"):
        baseline.approve("peer", "ext:203.0.113.9", "alice", "  ", T0)


def test_learn_window_skips_devices_found_anomalous_and_marks_the_rest_dirty() -> None:
    store = BaselineStore()
    store.learn_window([window(0, device="a"), window(0, device="b")], skip={"b"})
    assert store.get("a") is not None and store.get("b") is None
    assert store.dirty == {"a"}


def test_reset_starts_the_device_over() -> None:
    store = BaselineStore(BaselineConfig(min_duration=60.0, min_windows=1))
    store.learn_window([window(0)])
    assert store.reset("dev")
    assert store.get("dev") is None and store.removed == {"dev"}
    store.learn_window([window(1)])
    again = store.get("dev")
    assert again is not None and again.windows == 1 and store.removed == set()


def test_conversations_beyond_the_cap_drop_the_least_recent() -> None:
    baseline = Baseline("dev", BaselineConfig(max_conversations=3))
    profile = window(0)
    profile.conversations = {f"p{k}|tcp/1": [T0 + k] for k in range(5)}
    baseline.learn(profile)
    assert sorted(baseline.cadence) == ["p2|tcp/1", "p3|tcp/1", "p4|tcp/1"]


def test_expected_interval_is_the_best_measured_conversation() -> None:
    baseline = Baseline("dev")
    for i in range(10):
        baseline.learn(window(i))
    expected = baseline.expected_interval()
    assert expected is not None
    key, stats = expected
    assert key == f"{GW}|udp/53" and stats.median == 30.0


def synthetic_store() -> BaselineStore:
    store = BaselineStore(BaselineConfig(min_duration=600.0, min_windows=5))
    for i in range(40):
        store.learn_window(window_profiles(3, i, devices=6))
    first = sorted(store.baselines)[0]
    store.approve(first, "peer", "ext:198.51.100.7", "alice", "lab: 'quoted' # not a comment", T0)
    store.set_frozen(first, True)
    return store


def test_export_import_export_is_byte_identical() -> None:
    store = synthetic_store()
    text = export_yaml(store.baselines.values())
    again = import_yaml(text, "file.yml", store.config)
    assert export_yaml(again) == text
    assert [b.to_dict() for b in again] == [
        store.baselines[k].to_dict() for k in sorted(store.baselines)
    ]


def test_export_is_one_document_per_device_in_id_order_with_counts_and_reasons() -> None:
    store = synthetic_store()
    text = export_yaml(store.baselines.values())
    assert text.count("\n---") + text.startswith("---") == len(store.baselines)
    devices = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("device:")]
    assert devices == sorted(devices) and len(devices) == len(store.baselines)
    assert "approved_by: alice" in text and "why: 'lab: ''quoted'' # not a comment'" in text
    assert "  - value: " in text and "    count: " in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device: [unclosed", "line 1: not valid YAML"),
        ("!!python/object/apply:os.system ['true']", "not valid YAML"),
        ("format: something-else\ndevice: x\n", "document 1: not a santinel baseline"),
        ("[1, 2]", "document 1: not a santinel baseline"),
    ],
)
def test_import_refuses_hostile_or_foreign_yaml_with_one_line(text: str, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        import_yaml(text, "b.yml", None)
    assert str(caught.value).startswith("b.yml: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("frozen: false", "frozen: maybe", 1), "frozen"),
        (lambda t: t.replace("  dns_query:", "  colour:", 1), "unknown fact kind"),
        (lambda t: t.replace("windows: 3", "windows: -3", 1), "windows"),
        (lambda t: t.replace("last_window_end: '", "last_window_end: 'x", 1), "last_window_end"),
        (lambda t: t.replace("state: ", "mood: happy\nstate: ", 1), "unknown key"),
    ],
)
def test_import_names_the_document_and_field_at_fault(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    baseline = Baseline("dev")
    for i in range(3):
        baseline.learn(window(i))
    text = edit(export_yaml([baseline]))
    with pytest.raises(FormatError) as caught:
        import_yaml(text, "b.yml", None)
    assert str(caught.value).startswith("b.yml: document 1: ")
    assert message in str(caught.value)


def _leaves(node: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] + [path]
    return [path]


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.one_of(st.integers(), st.text(max_size=5)), st.integers(), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_import_of_any_mangled_export_raises_only_format_error(data: st.DataObject) -> None:
    baseline = Baseline("dev")
    for i in range(3):
        baseline.learn(window(i))
    baseline.approve("peer", "ext:203.0.113.9", "alice", "ok", T0)
    doc = {"format": "santinel-baseline/1", **baseline.to_dict()}
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_leaves(doc)))
        if not path:
            continue
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(JUNK)
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        import_yaml(text, "fuzz.yml", None)
    except FormatError as error:
        assert "\n" not in str(error) and str(error).startswith("fuzz.yml: ")


def test_pending_facts_are_bounded() -> None:
    baseline = Baseline("dev", BaselineConfig(min_duration=60.0, min_windows=1, max_pending=5))
    baseline.learn(window(0))
    for i in range(1, 4):
        baseline.learn(window(i, names={f"n{i}-{k}.example": 1 for k in range(3)}))
    assert sum(len(v) for v in baseline.pending.values()) == 5


def test_volume_scores_flag_a_burst_against_the_learned_median() -> None:
    baseline = Baseline("dev")
    for i in range(20):
        baseline.learn(window(i))
    assert baseline.volume_scores(window(20)) == dict.fromkeys(
        ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "flows", "peers"), 0.0
    )
    burst = window(21)
    burst.tx_bytes = 50_000
    # a flat history (MAD 0): the spread is 10 % of the median, so 49 "sigmas"
    assert baseline.volume_scores(burst)["tx_bytes"] == pytest.approx(490.0)
    assert Baseline("new").volume_scores(burst) == {}


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5, unique=True))
def test_any_fact_text_survives_export_import_export(values: list[str]) -> None:
    baseline = Baseline("dev")
    profile = window(0)
    profile.facts = {"dns_query": dict.fromkeys(values, 1), "hostname": {v: 2 for v in values}}
    profile.conversations = {f"{v}|tcp/1": [T0 + 1.0, T0 + 9.0] for v in values}
    baseline.learn(profile)
    text = export_yaml([baseline])
    again = import_yaml(text, "x.yml", None)
    assert export_yaml(again) == text
    assert set(again[0].facts["dns_query"]) == set(values)


def test_a_steady_conversation_that_stops_is_reported_overdue() -> None:
    baseline = Baseline("dev")
    for i in range(10):  # a message every 30 s
        baseline.learn(window(i))
    last = T0 + 9 * 60 + 35.0
    expected = f"{GW}|udp/53"
    # 30 s median, MAD 0: the spread is max(5 % of 30 s, 1 s) = 1.5 s; late after 34.5 s
    assert baseline.overdue(last + 34.0) == []
    late = baseline.overdue(last + 35.0)
    assert [(o.conversation, o.expected_interval, o.silent_for) for o in late] == [
        (expected, 30.0, 35.0)
    ]


def test_an_irregular_conversation_is_never_overdue() -> None:
    baseline = Baseline("dev")
    for i in range(10):
        profile = window(i)
        offset = (7, 52, 20, 41, 3, 58, 33, 12, 47, 26)[i]  # gaps from 5 s to 115 s
        profile.conversations = {"p|tcp/1": [T0 + 60 * i + offset]}
        baseline.learn(profile)
    assert baseline.overdue(T0 + 100_000) == []


def test_the_compact_state_form_round_trips_exactly() -> None:
    store = synthetic_store()
    for baseline in store.baselines.values():
        compact = baseline.to_dict(derived=False, compact=True)
        assert Baseline.from_dict(compact, store.config).to_dict() == baseline.to_dict()


@pytest.mark.parametrize(
    "entry",
    [
        ["x", 1, 5.0],
        ["x", 1, 9.0, 5.0],
        ["x", -1, 1.0, 2.0],
        ["", 1, 1.0, 2.0],
        ["x", 1, float("nan"), 2.0],
        ["x", 1, 1.0, 2.0, "alice", "", 3.0],
    ],
)
def test_the_compact_facts_are_checked(entry: list[object]) -> None:
    data = Baseline("dev").to_dict(derived=False, compact=True)
    data["facts"] = {"peer": [entry]}
    with pytest.raises(FormatError, match=r"facts\.peer\[0\]"):
        Baseline.from_dict(data)


def test_a_window_s_facts_fold_in_its_peers_and_protocols_alike_from_counts_or_dicts() -> None:
    facts = {
        "peer": {"10.0.0.9": 4},
        "protocol": {"hl7": 7},
        "dns_query": {"ntp.example.org": 2},
        "service_used": {},  # a kind whose sightings were all taken back
    }
    as_dicts = window(1, peers={"10.0.0.9", "10.0.0.7"})
    as_dicts.facts = facts
    as_dicts.protocols = {"dns": 3, "hl7": 2}
    as_counts = window(1, peers=as_dicts.peers)
    as_counts.facts = FactCounts(facts)
    as_counts.protocols = as_dicts.protocols
    expected = [
        # a value the facts hold keeps its count and its place; the others follow
        ("peer", [("10.0.0.9", 4), *[(p, 1) for p in as_dicts.peers if p != "10.0.0.9"]]),
        ("protocol", [("hl7", 7), ("dns", 3)]),
        ("dns_query", [("ntp.example.org", 2)]),
    ]
    for profile in (as_dicts, as_counts):
        found = profile_facts(profile)
        assert [(kind, list(values.items())) for kind, values in found.items()] == expected
    assert profile_facts(as_counts)["peer"] is not profile_facts(as_counts)["peer"]
    assert as_counts.facts == facts, "folding changes nothing of the profile"
