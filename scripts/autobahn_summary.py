#!/usr/bin/env python3
"""Summarise an Autobahn `index.json` (as kosoku writes it) and apply the pass bar.

    autobahn_summary.py [--expect N] target/autobahn/index.json

The pass bar: every case, sections 12 and 13 (permessage-deflate) included, must have
`behavior` OK, NON-STRICT or INFORMATIONAL and `behaviorClose` OK or INFORMATIONAL. An
UNIMPLEMENTED case fails: the echo server runs with `--compression`.

With `--expect N` (scripts/autobahn.sh passes 517 when the whole suite was asked for), the index
must hold exactly N cases: a run that stopped early, or lost cases, fails even if every case it
holds passed; each missing case counts as a failure.

Prints a table by section (Markdown), the cases that failed, and a last line
`N passed, M failed`. Exits 1 when a case failed, the index is empty, or the count is not the
expected one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict

GOOD_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}

SECTION_NAMES = {
    1: "Framing",
    2: "Pings/Pongs",
    3: "Reserved bits",
    4: "Opcodes",
    5: "Fragmentation",
    6: "UTF-8 handling",
    7: "Close handling",
    9: "Limits/performance",
    10: "Misc",
    12: "WebSocket compression (different payloads)",
    13: "WebSocket compression (different parameters)",
}

VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"]


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def main() -> int:
    parser = argparse.ArgumentParser(description="Summarise an Autobahn index.json.")
    parser.add_argument("--expect", type=int, default=None, help="the number of cases the run must hold")
    parser.add_argument("index")
    args = parser.parse_args()
    with open(args.index, encoding="utf-8") as f:
        index = json.load(f)
    if not index:
        print("index.json holds no results")
        print("0 passed, 1 failed")
        return 1

    passed = 0
    failures: list[str] = []
    by_section: dict[int, Counter[str]] = defaultdict(Counter)
    for agent, cases in index.items():
        for case_id in sorted(cases, key=case_key):
            result = cases[case_id]
            behavior, close = result["behavior"], result["behaviorClose"]
            section = case_key(case_id)[0]
            by_section[section][behavior] += 1
            if behavior in GOOD_BEHAVIOR and close in GOOD_CLOSE:
                passed += 1
                if close != "OK":
                    by_section[section]["close " + close] += 1
            else:
                failures.append(
                    f"{case_id}: behavior={behavior} behaviorClose={close} "
                    f"remoteCloseCode={result.get('remoteCloseCode')} ({agent})"
                )
                if close not in GOOD_CLOSE:
                    by_section[section]["close " + close] += 1

    agents = ", ".join(index)
    total = sum(n for c in by_section.values() for k, n in c.items() if not k.startswith("close "))
    print(f"Autobahn results for {agents}: {total} cases")
    print()
    print("| Section | Cases | " + " | ".join(VERDICTS) + " | behaviorClose not OK |")
    print("|---|---:|" + "---:|" * len(VERDICTS) + "---|")
    for section in sorted(by_section):
        counts = by_section[section]
        cases = sum(n for k, n in counts.items() if not k.startswith("close "))
        cells = [str(counts[v]) if counts[v] else "" for v in VERDICTS]
        closes = ", ".join(f"{n} {k.removeprefix('close ')}" for k, n in sorted(counts.items()) if k.startswith("close "))
        name = SECTION_NAMES.get(section, "")
        print(f"| {section}. {name} | {cases} | " + " | ".join(cells) + f" | {closes} |")
    print()
    for failure in failures:
        print(f"FAILED {failure}")
    failed = len(failures)
    if args.expect is not None and total != args.expect:
        print(f"FAILED: the run holds {total} cases, not the {args.expect} expected")
        failed += max(args.expect - total, 1)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
