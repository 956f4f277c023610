#!/usr/bin/env bash
# Checks the minimum supported Rust version: `rust-version` in Cargo.toml (1.85).
#
# The check is in three parts:
#
# 1. The dependencies a user on that version gets. The crate is packaged as it would be
#    published, and locked afresh with cargo's MSRV-aware resolver
#    (CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback, which prefers versions whose
#    `rust-version` fits). Then every package in the library's dependency graph (all features;
#    Linux, macOS and Windows) must declare a `rust-version` no newer than ours. A dependency
#    that declares none cannot be checked; they are counted. Dev-dependencies (the examples and
#    tests) are only reported: the MSRV is a promise about the library.
# 2. The compiler: `cargo +1.85 check --all-features` on that package. rustup installs 1.85 when
#    it is missing; if it cannot, CI fails and a local run says the compile check did not run.
# 3. The library's source: let chains (`if let .. && ..`, stable in 1.88) are the
#    newer syntax most likely to slip in, and this scans src/ for them. Standard library items
#    newer than the MSRV are clippy's `incompatible_msrv` lint, which reads `rust-version` and
#    runs in .ci/run's clippy step.
#
# Needs cargo, python3 and the crates.io index. Ends with `N passed, M failed`; exits non-zero on
# failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET_DIR/msrv
PLATFORMS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu aarch64-apple-darwin x86_64-pc-windows-msvc)

say() { printf 'msrv: %s\n' "$*" >&2; }

passed=0
failed=0
check() { # NAME COMMAND...: runs the command, counts the result
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        say "ok: $name"
    else
        failed=$((failed + 1))
        say "FAILED: $name"
    fi
}

metadata=$(cargo metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml")
read -r name version msrv < <(python3 -c '
import json, sys
package = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "tower-websockets")
print(package["name"], package["version"], package["rust_version"] or "")
' <<<"$metadata")
[[ -n $msrv ]] || { say "Cargo.toml declares no rust-version"; exit 1; }
say "$name $version, rust-version $msrv"

# 1. The package, locked as a user on $msrv would lock it.
rm -rf "$WORK"
mkdir -p "$WORK"
cargo package --manifest-path "$ROOT/Cargo.toml" --allow-dirty --no-verify --quiet \
    --target-dir "$WORK/package"
tar -xzf "$WORK/package/package/$name-$version.crate" -C "$WORK"
crate=$WORK/$name-$version
printf '\n[workspace]\n' >>"$crate/Cargo.toml" # its own workspace, not the repository's
rm -f "$crate/Cargo.lock"
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo generate-lockfile --quiet \
    --manifest-path "$crate/Cargo.toml"

filters=()
for platform in "${PLATFORMS[@]}"; do
    filters+=(--filter-platform "$platform")
done

dependencies_fit() {
    cargo metadata --format-version 1 --all-features "${filters[@]}" --manifest-path "$crate/Cargo.toml" \
        >"$WORK/metadata.json"
    python3 - "$WORK/metadata.json" "$msrv" <<'PY'
import json, sys

meta = json.load(open(sys.argv[1]))
msrv = sys.argv[2]
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]


def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def reach(starts):
    """The packages reachable through normal and build dependencies."""
    seen, stack = set(), list(starts)
    while stack:
        id = stack.pop()
        if id not in seen:
            seen.add(id)
            stack += [d["pkg"] for d in nodes[id]["deps"]
                      if any(k["kind"] in (None, "build") for k in d["dep_kinds"])]
    return seen


def newer(ids):
    """The packages that need a newer Rust than ours."""
    return sorted(
        "%s %s (rust-version %s)" % (p["name"], p["version"], p["rust_version"])
        for p in map(packages.get, ids)
        if p["rust_version"] and version(p["rust_version"]) > version(msrv)
    )


library = reach([root]) - {root}
dev = reach([d["pkg"] for d in nodes[root]["deps"]
             if any(k["kind"] == "dev" for k in d["dep_kinds"])]) - library - {root}
undeclared = sum(1 for i in library if not packages[i]["rust_version"])
print("msrv: %d dependencies of the library, %d of them without a rust-version"
      % (len(library), undeclared), file=sys.stderr)
for line in newer(dev):
    print("msrv: note: dev-dependency %s needs a newer Rust than %s" % (line, msrv), file=sys.stderr)
too_new = newer(library)
for line in too_new:
    print("msrv: dependency %s needs a newer Rust than %s" % (line, msrv), file=sys.stderr)
sys.exit(1 if too_new else 0)
PY
}
check "every dependency of the library declares rust-version <= $msrv" dependencies_fit

# 2. The compiler. rustup installs it where it is missing (this project's machines reach the
#    toolchain server); where it cannot be had, CI fails, and a developer's run says plainly
#    that the compile check did not run.
if ! rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
    say "installing Rust $msrv (rustup toolchain install $msrv --profile minimal)"
    rustup toolchain install "$msrv" --profile minimal >&2 || true
fi
if rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
    check "cargo +$msrv check --all-features" \
        cargo "+$msrv" check --all-features --manifest-path "$crate/Cargo.toml" --target-dir "$WORK/target"
elif [[ -n ${CI:-} ]]; then
    check "Rust $msrv installs (needed for the compile check)" false
else
    say "THE COMPILE CHECK DID NOT RUN: Rust $msrv could not be installed; only the scan below checks the source"
fi

# 3. Let chains in the library's source: whole conditions, over as many lines as rustfmt spreads
#    them (`if let Some(x) = a\n    && b\n{`), not line by line.
no_let_chains() {
    python3 - "$ROOT/src" <<'PY'
import pathlib, re, sys

found = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.rs")):
    code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
    for head in re.finditer(r"\b(if|while)\s+let\b", code):
        depth, chain = 0, False
        for at in range(head.end(), len(code)):
            c = code[at]
            depth += (c in "([") - (c in ")]")
            if depth == 0 and c in "{;":
                break  # the block opens (or, for a struct pattern, a brace: then no chain is seen)
            if depth == 0 and code.startswith("&&", at):
                chain = True
                break
        if chain:
            number = code.count("\n", 0, head.start()) + 1
            found.append(f"{path}:{number}: {path.read_text().splitlines()[number - 1].strip()}")
for line in found:
    print(f"msrv: a let chain (Rust 1.88): {line}", file=sys.stderr)
sys.exit(1 if found else 0)
PY
}
check "no let chains in src/" no_let_chains

echo "$passed passed, $failed failed"
((failed == 0))
