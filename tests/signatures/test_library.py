"""One generated test per entry of the shipped library: its positive and negative samples.

The samples run through the real classifier, rule and policy evaluation
(``monitor.signature_samples``); a new entry gets its test by being added to ``signatures/``.
"""

from __future__ import annotations

import pytest

from monitor.signature_samples import run_samples
from monitor.signatures import (
    Entry,
    SignatureError,
    SignatureLibrary,
    default_signature_dirs,
    load_library,
)

# a broken library fails one test with its errors instead of breaking collection
LOAD_ERRORS: list[str] = []
try:
    LIBRARY = load_library(default_signature_dirs())
except SignatureError as error:
    LIBRARY, LOAD_ERRORS = SignatureLibrary(), error.errors
ENTRIES: list[Entry] = [entry for _, entry in LIBRARY.entries()]


def test_the_library_loads_and_has_entries_of_every_kind() -> None:
    assert not LOAD_ERRORS, "\n".join(LOAD_ERRORS)
    assert LIBRARY.fingerprints and LIBRARY.rules and LIBRARY.policies


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.id for entry in ENTRIES])
def test_entry_samples(entry: Entry) -> None:
    results = run_samples(entry, LIBRARY)
    ran = [r for r in results if not r.skipped]
    assert any(r.polarity == "positive" for r in ran), "no positive sample ran"
    assert any(r.polarity == "negative" for r in ran), "no negative sample ran"
    failures = [r.describe() for r in results if not r.ok]
    assert not failures, f"{LIBRARY.origins[entry.id]}: " + "; ".join(failures)
