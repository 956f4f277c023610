"""Memory after load (issue 19): many clients churn against the echo server, then leave; the
server's resident memory and open file descriptors are sampled throughout and after.

Each client loops until the load ends: connect (half of the clients offer permessage-deflate),
echo a few messages of 1 B to 64 KiB (sizes spread evenly on a log scale; half text that
compresses, half random bytes), check each echo, close, and connect again.

With --trim, it then asks the server's allocator to give its free memory back (gdb calls glibc's
`malloc_trim(0)` in the server) and samples once more: what is left is what the server still
holds, not what the allocator kept.

Prints one JSON object per sample (seconds, phase, rss_kib, fds) and a closing summary line.
Run through scripts/soak.sh, which starts the server.
"""

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time

import websockets


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def payload(rng):
    size = int(math.exp(rng.uniform(0, math.log(64 * 1024))))
    if rng.random() < 0.5:
        words = b"tower websockets echo soak memory after load "
        return (words * (size // len(words) + 1))[:size].decode()
    return rng.randbytes(size)


async def client(url, compressed, deadline, seed, counts):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        async with websockets.connect(
            url, compression="deflate" if compressed else None, max_size=None
        ) as socket:
            for _ in range(rng.randint(1, 8)):
                message = payload(rng)
                await socket.send(message)
                echo = await socket.recv()
                if echo != message:
                    raise AssertionError(f"echo differs: sent {len(message)} units, got {len(echo)}")
                counts["echoes"] += 1
        counts["connections"] += 1


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id")
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--after", type=float, default=30, help="seconds to sample after the load")
    parser.add_argument("--every", type=float, default=5, help="seconds between samples")
    parser.add_argument("--trim", action="store_true",
                        help="at the end, call malloc_trim(0) in the server (needs gdb) and sample")
    args = parser.parse_args()

    start = time.monotonic()
    deadline = start + args.seconds
    counts = {"echoes": 0, "connections": 0}
    samples = []

    def sample(phase):
        row = {"seconds": round(time.monotonic() - start), "phase": phase,
               "rss_kib": rss_kib(args.pid), "fds": fds(args.pid)}
        samples.append(row)
        print(json.dumps(row), flush=True)

    sample("before")
    tasks = [asyncio.create_task(client(args.url, i % 2 == 0, deadline, i, counts))
             for i in range(args.clients)]
    load = asyncio.gather(*tasks)
    while not load.done():
        await asyncio.wait([load], timeout=args.every)
        if not load.done():
            sample("load")
    await load  # raises the first client's failure
    end = time.monotonic() + max(args.after, args.every)
    while time.monotonic() < end:
        await asyncio.sleep(args.every)
        sample("after")
    if args.trim:
        subprocess.run(["gdb", "-p", str(args.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                       check=True, capture_output=True)
        sample("trimmed")

    load_rows = [s for s in samples if s["phase"] == "load"] or samples
    summary = {
        "clients": args.clients, "seconds": args.seconds, **counts,
        "rss_before_kib": samples[0]["rss_kib"],
        "rss_first_load_kib": load_rows[0]["rss_kib"],
        "rss_peak_kib": max(s["rss_kib"] for s in samples),
        "rss_after_kib": [s for s in samples if s["phase"] == "after"][-1]["rss_kib"],
        "rss_trimmed_kib": samples[-1]["rss_kib"] if args.trim else None,
        "fds_before": samples[0]["fds"], "fds_after": samples[-1]["fds"],
    }
    print(json.dumps({"summary": summary}), flush=True)
    if counts["echoes"] == 0:
        sys.exit("no echo completed")


if __name__ == "__main__":
    asyncio.run(main())
