#!/usr/bin/env python3
"""Writes a valid handler module with N extra functions (default 200,000)
of about 55 bytes of code each: the module of issue 16 (12.9 MB, 25-43 s to
compile). The same module as `fixtures::many_functions` in the tests.

usage: bench/many_functions.py OUT.wasm [N]
"""
import sys


def uleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def section(sid, payload):
    return bytes([sid]) + uleb(len(payload)) + payload


def vec(items):
    return uleb(len(items)) + b"".join(items)


def name(s):
    return uleb(len(s)) + s.encode()


def body(locals_, code):
    b = vec(locals_) + code + b"\x0b"
    return uleb(len(b)) + b


def extra(i):
    c = lambda v: b"\x41" + sleb(v)  # i32.const
    get = lambda x: b"\x20" + uleb(x)
    put = lambda x: b"\x21" + uleb(x)
    code = (
        get(0) + c(i) + b"\x6c" + put(1)
        + get(1) + c(0x5BD1E995) + b"\x73" + put(1)
        + get(1) + get(0) + c(13) + b"\x77" + b"\x6a" + put(1)
        + get(1) + c(0x27D4EB2D) + b"\x6c" + put(1)
        + get(1) + get(1) + c(15) + b"\x76" + b"\x6a"
    )
    return body([uleb(1) + b"\x7f"], code)


def main():
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    types = vec([b"\x60\x01\x7f\x01\x7f", b"\x60\x02\x7f\x7f\x01\x7f"])
    funcs = vec([uleb(0), uleb(1)] + [uleb(0)] * n)
    memory = vec([b"\x00\x01"])
    exports = vec([
        name("memory") + b"\x02" + uleb(0),
        name("switchyard_alloc") + b"\x00" + uleb(0),
        name("switchyard_handle") + b"\x00" + uleb(1),
    ])
    code = vec([body([], b"\x41" + sleb(1024)), body([], b"\x41\x00")] + [extra(i) for i in range(n)])
    module = (b"\x00asm\x01\x00\x00\x00" + section(1, types) + section(3, funcs)
              + section(5, memory) + section(7, exports) + section(10, code))
    with open(out, "wb") as f:
        f.write(module)
    print(f"{out}: {len(module)} bytes, {n + 2} functions")


if __name__ == "__main__":
    main()
