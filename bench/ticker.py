"""A job program for the fan-out bench rows: reports STATES states on fd 3 at 1000/INTERVAL_MS a
second, as a real job reports progress, starting when the driver writes the start time.

    ticker.py GO_FILE STATES INTERVAL_MS LINGER_S      (param `slot`: this job's offset in ms)

Waits until GO_FILE holds T0 (epoch seconds), then writes line k (1..STATES) at
T0 + slot ms + k × INTERVAL_MS: `P sK tMS` (progress P = K × 100 / STATES %, message `sK tMS`, MS the epoch ms the
state was reported), which lets the client tell every state apart and time it from the report.
Stays LINGER_S seconds after the last state, so the job's end falls outside the measurement.
"""
import os
import sys
import time


def main():
    go_file, states, interval_ms, linger = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    slot = int(os.environ.get("HERALD_PARAM_SLOT", "0"))
    out = os.fdopen(int(os.environ.get("HERALD_PROGRESS_FD", "3")), "w", buffering=1)
    while True:
        try:
            with open(go_file) as f:
                text = f.read().strip()
            if text:
                t0 = float(text)
                break
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    base = t0 + slot / 1000.0
    for k in range(1, states + 1):
        wait = base + k * interval_ms / 1000.0 - time.time()
        if wait > 0:
            time.sleep(wait)
        out.write(f"{k * 100 / states:g} s{k} t{int(time.time() * 1000)}\n")
    time.sleep(linger)


if __name__ == "__main__":
    main()
