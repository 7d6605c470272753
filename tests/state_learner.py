"""A learner process for the crash test (tests/test_state.py), run as a script.

``python tests/state_learner.py STATE SEED WINDOWS INTERVAL`` opens (or creates) the state,
resumes at the window after the last checkpoint, learns the synthetic stream, checkpoints
every INTERVAL windows and prints ``checkpoint N NEXT_WINDOW`` once each checkpoint has
committed. The test kills it with SIGKILL at random moments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.baseline import BaselineConfig
from monitor.state import State
from tests.synthetic import apply_to_inventory, window_profiles

CONFIG = BaselineConfig(min_duration=1800.0, min_windows=20, fact_ttl=3 * 3600.0)


def main() -> int:
    path, seed, windows, interval = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    state = State(path)
    store = state.load_store(CONFIG)
    devices = state.load_devices()
    start = int(state.meta("next_window", 0))
    for i in range(start, windows):
        profiles = window_profiles(seed, i)
        apply_to_inventory(devices, profiles)
        store.learn_window(profiles, SimpleNamespace(devices=devices))
        for p in profiles:
            key = ("device_tx_packets", p.device_id)
            state.set_counter(*key, state.counters.get(key, 0) + p.tx_packets)
        if (i + 1) % interval == 0:
            number = state.checkpoint(store, devices, meta={"next_window": i + 1})
            print(f"checkpoint {number} {i + 1}", flush=True)
    state.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
