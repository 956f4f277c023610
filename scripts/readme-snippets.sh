#!/usr/bin/env bash
# Builds the README's Rust snippets as a newcomer would paste them: each ```rust block goes into a
# fresh crate whose manifest takes the ```toml block printed before it (between it and the
# previous ```rust block) as is, with this crate patched in by path. Then, for each snippet:
#
# - `rustfmt --check` with the project's rustfmt.toml: it is formatted as the rest of the code;
# - `cargo clippy --all-targets -- -D warnings`: it compiles, with no warning from rustc or clippy,
#   nor from cargo, nor from this crate as the snippet's features build it;
# - a snippet with `#[tokio::test]` or `#[test]` goes to `tests/snippet.rs` and runs with
#   `cargo test`; one with `fn main` goes to `src/main.rs` and is built with `cargo build` (not
#   run: the quick starts are servers); anything else goes to `src/lib.rs` and is built.
#
# Usage: scripts/readme-snippets.sh [README]   (default: README.md at the repository root)
#
# The crates live in target/readme-snippets/ (one workspace, snippet-N per block). They build in
# the repository's own target directory (CARGO_TARGET_DIR, or target/), with the repository's
# dev profile, so whatever dependency the tests already built with the same features is not
# built again, and a second run rebuilds only what changed. Their Cargo.lock starts
# from the repository's, so the snippets build against the versions the tests use; dependencies
# the repository does not have come from crates.io. Each snippet is checked with only its own
# dependencies' features (cargo -p), so a snippet cannot lean on another's.
#
# Needs cargo (with clippy) and python3. Ends with `N passed, M failed`; exits non-zero on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
README=$(realpath "${1:-$ROOT/README.md}")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$CARGO_TARGET_DIR/readme-snippets

say() { printf 'readme-snippets: %s\n' "$*" >&2; }

mkdir -p "$WORK"
rm -rf "$WORK"/snippet-*
cp "$ROOT/Cargo.lock" "$WORK/Cargo.lock"

# Writes the workspace and one crate per ```rust block; prints `NAME KIND LINE FILE HEADING` for
# each crate (FILE: where the snippet went in it).
list=$(python3 - "$README" "$WORK" "$ROOT" <<'PY'
import json, pathlib, re, sys

readme, work, root = map(pathlib.Path, sys.argv[1:4])
lines = readme.read_text().splitlines()

blocks, heading, i = [], "", 0
while i < len(lines):
    line = lines[i]
    if line.startswith("#"):
        heading = line.lstrip("#").strip()
    fence = re.match(r"^```(\w*)", line)
    if fence:
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            sys.exit(f"{readme}:{start}: unclosed code block")
        blocks.append((fence.group(1), start, heading, "\n".join(body) + "\n"))
    i += 1

members, toml, errors = [], None, []
for lang, line, heading, body in blocks:
    if lang == "toml":
        toml = body
    elif lang == "rust":
        if toml is None:
            errors.append(f"{readme}:{line}: a ```rust block with no ```toml block before it "
                          "(since the previous ```rust block) to say its dependencies")
            continue
        if not re.search(r"^\[(dev-)?dependencies\]", toml, re.M):
            errors.append(f"{readme}:{line}: the ```toml block before it has no [dependencies]")
            continue
        name = f"snippet-{len(members) + 1}"
        crate = work / name
        if re.search(r"^\s*#\[(tokio::)?test\b", body, re.M):
            kind, path = "test", crate / "tests" / "snippet.rs"
            (crate / "src").mkdir(parents=True)
            (crate / "src" / "lib.rs").write_text("")
        elif re.search(r"^\s*(async\s+)?fn main\(", body, re.M):
            kind, path = "bin", crate / "src" / "main.rs"
        else:
            kind, path = "lib", crate / "src" / "lib.rs"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"// {readme.name}, line {line}: line n here is line n + {line - 1} there\n" + body)
        (crate / "Cargo.toml").write_text(
            f'[package]\nname = "readme-{name}"\nversion = "0.0.0"\nedition = "2024"\n'
            f"publish = false\n\n# {readme.name}, before line {line}\n{toml}"
        )
        members.append(name)
        print(name, kind, line, path.relative_to(crate), heading)
        toml = None  # each ```rust block needs its own ```toml block

if errors:
    sys.exit("\n".join(errors))
(work / "Cargo.toml").write_text(
    "# Written by scripts/readme-snippets.sh: the README's snippets, one crate each.\n"
    f'[workspace]\nresolver = "3"\nmembers = {json.dumps(members)}\n\n'
    f"[patch.crates-io]\ntower-websockets = {{ path = {json.dumps(str(root))} }}\n\n"
    # The repository's [profile.*] sections, so that what its tests built is reused as it is.
    + "".join(re.findall(r"^\[profile\..*?(?=^\[(?!profile\.)|\Z)", (root / "Cargo.toml").read_text(), re.M | re.S))
)
PY
)

# Runs cargo with its output on stderr. Any warning fails, the crate's own included: it is built by
# path, so its warnings show (a user would not see them, but they mean the library warns with the
# features this snippet chose).
cargo_clean() {
    local log=$WORK/cargo.log status=0
    cargo "$@" 2>"$log" || status=$?
    cat "$log" >&2
    if grep -q '^warning' "$log"; then
        say "warnings above, from: cargo $*"
        return 1
    fi
    return "$status"
}

passed=0
failed=0
while read -r name kind line file heading; do
    [[ -n $name ]] || continue
    say "$name: README line $line ($heading), $kind"
    ok=true
    # In the project's style (rustfmt.toml), as the rest of the code.
    rustfmt --edition 2024 --check --config-path "$ROOT/rustfmt.toml" "$WORK/$name/$file" || ok=false
    cargo_clean clippy --manifest-path "$WORK/Cargo.toml" -p "readme-$name" --all-targets -- -D warnings ||
        ok=false
    if $ok && [[ $kind == test ]]; then
        cargo_clean test --manifest-path "$WORK/Cargo.toml" -p "readme-$name" --test snippet || ok=false
    elif $ok; then
        cargo_clean build --manifest-path "$WORK/Cargo.toml" -p "readme-$name" || ok=false
    fi
    if $ok; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        say "FAILED: $name (README line $line); the crate is $WORK/$name"
    fi
done <<<"$list"

echo "$passed passed, $failed failed"
((failed == 0 && passed > 0))
