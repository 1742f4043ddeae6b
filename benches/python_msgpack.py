#!/usr/bin/env python3
"""Python baseline for the decode figures of benches/goofish_figures.rs.

What the Python bots do with an IM push item: base64-decode the `data` field and unpack it
with PyPI `msgpack` (its C extension), then parse the content JSON nested as a string at
`1.6.3.5`. Measured on the same golden captures (A1 order card, A5 buyer text), on one
thread, for BENCH_DECODE_SECS seconds each (default 3) split into 5 rounds; the medians of
wall-clock and of thread CPU-time rates.

    python3 benches/python_msgpack.py          # human-readable lines
    python3 benches/python_msgpack.py --json   # one JSON line, read by goofish_figures

Needs PyPI `msgpack` (`python3 -m venv /tmp/venv && /tmp/venv/bin/pip install msgpack`);
exits with status 2 and a message on stderr without it.
"""

import base64
import json
import os
import platform
import sys
import time
from pathlib import Path

try:
    import msgpack
except ImportError:
    print("PyPI msgpack is not installed for " + sys.executable, file=sys.stderr)
    sys.exit(2)

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "captures"
PAYLOADS = {"A1": "a1-order-created.b64", "A5": "a5-buyer-text.b64"}
UNPACK = "b64decode + unpackb"
FULL = "b64decode + unpackb + json.loads(content)"


def unpack(b64):
    return msgpack.unpackb(base64.b64decode(b64), raw=False, strict_map_key=False)


def unpack_and_content(b64):
    message = unpack(b64)
    content = message[1][6][3][5]
    return message, json.loads(content)


ROUNDS = 5


def median(values):
    return sorted(values)[len(values) // 2]


def rate(decode_one, payload, seconds):
    """Median payloads per second of wall and of thread CPU time over ROUNDS rounds, after a
    300 ms warm-up, in batches of 64 like the Rust side."""
    warm = time.perf_counter() + 0.3
    while time.perf_counter() < warm:
        decode_one(payload)
    wall, cpu = [], []
    for _ in range(ROUNDS):
        start, cpu_start = time.perf_counter(), time.thread_time()
        n = 0
        while time.perf_counter() - start < seconds / ROUNDS:
            for _ in range(64):
                decode_one(payload)
            n += 64
        wall.append(n / (time.perf_counter() - start))
        cpu.append(n / (time.thread_time() - cpu_start))
    return {"wall": median(wall), "cpu": median(cpu)}


def main():
    seconds = float(os.environ.get("BENCH_DECODE_SECS", "3"))
    rates = {}
    for key, name in PAYLOADS.items():
        payload = (CAPTURES / name).read_text().strip()
        unpack_and_content(payload)  # fails loudly if the capture is not what we expect
        rates[key] = {
            UNPACK: rate(unpack, payload, seconds),
            FULL: rate(unpack_and_content, payload, seconds),
        }
    if "--json" in sys.argv[1:]:
        version = ".".join(str(part) for part in msgpack.version)
        print(json.dumps({"msgpack": version, "python": platform.python_version(), "rates": rates}))
        return
    for key, figures in rates.items():
        for what, per_second in figures.items():
            print(
                f"python {key}, {what}: {per_second['wall']:.0f} payloads/s,"
                f" {per_second['cpu']:.0f} per CPU-second"
            )


if __name__ == "__main__":
    main()
