#!/usr/bin/env python3
"""The table of docs/benchmarks.md, from scripts/bench.sh's JSON lines.

    scripts/bench-table.py target/bench/results.jsonl [--docs docs/benchmarks.md]
    scripts/bench-table.py --criterion target/criterion     # criterion's means as JSON lines

One row per scenario and server: the median over the runs, and ours divided by it (ours: the
scenario's first server whose name starts with `ours`, or `http-axum-layer`). Above 1× means
more per second, or for memory more bytes. With --docs, the table replaces the one between the
`<!-- table -->` and `<!-- /table -->` lines.
"""
import json, pathlib, statistics, sys

args = sys.argv[1:]
if args[:1] == ["--criterion"]:
    for path in sorted(pathlib.Path(args[1]).glob("**/new/estimates.json")):
        name = json.loads((path.parent / "benchmark.json").read_text())["full_id"]
        mean = json.loads(path.read_text())["mean"]["point_estimate"]
        print(json.dumps({"scenario": "classify", "server": name, "ns": round(mean, 1)}))
    sys.exit()

runs = {}
for line in pathlib.Path(args[0]).read_text().splitlines():
    r = json.loads(line)
    runs.setdefault(r["scenario"], {}).setdefault(r["server"], []).append(r)


def median(records, key):
    values = [r[key] for r in records if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "" if value is None else f"{value:,.{digits}f}"


MEASURES = [("per_second", "/s"), ("rss_per_socket_bytes", "B per socket"), ("ns", "ns")]
rows = ["| scenario | server | median | unit | runs | server CPU % | server µs/op | of it user | syscalls/op "
        "| p50 / p99 µs | ours ÷ |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
for scenario, servers in runs.items():
    key, unit = next((k, u) for k, u in MEASURES if any(k in r for rs in servers.values() for r in rs))
    ours = next((s for s in servers if s.startswith("ours") or s == "http-axum-layer"), None)
    base = median(servers[ours], key) if ours else None
    for server, records in servers.items():
        value = median(records, key)
        ratio = f"{base / value:.2f}×" if base and value and server != ours else ""
        latency = "" if median(records, "p50_us") is None else \
            f"{fmt(median(records, 'p50_us'))} / {fmt(median(records, 'p99_us'))}"
        dropped = median(records, "dropped")
        unit_cell = unit + ("" if dropped is None else f", {dropped:,.0f} dropped")
        digits = 1 if key == "ns" else 2 if value is not None and value < 100 else 0
        rows.append(f"| {scenario} | {server} | {fmt(value, digits)} | {unit_cell} | {len(records)} "
                    f"| {fmt(median(records, 'server_cpu'))} | {fmt(median(records, 'server_us_per_op'), 2)} "
                    f"| {fmt(median(records, 'server_user_us_per_op'), 2)} "
                    f"| {fmt(median(records, 'syscalls_per_op'), 2)} | {latency} | {ratio} |")
table = "\n".join(rows) + "\n"
print(table, end="")
if args[1:2] == ["--docs"]:
    docs = pathlib.Path(args[2])
    text = docs.read_text()
    start, end = text.index("<!-- table -->\n") + len("<!-- table -->\n"), text.index("<!-- /table -->")
    docs.write_text(text[:start] + table + text[end:])
