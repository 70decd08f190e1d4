#!/usr/bin/env python3
"""Issue 16 attacker case: a self-routed handler emitting 10 events of
104,000 bytes per call; two roots posted at once, a trivial handler on
another route probed meanwhile. Prints dead-letter bytes, time, the
slowest probe and the daemon's VmHWM.

usage: bench/cascade_bytes.py path/to/switchyard [port]"""
import json, os, subprocess, sys, tempfile, threading, time, urllib.request

BIN, PORT = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 7691
HANDLER = """(module
  (import "switchyard" "emit" (func $emit (param i32 i32) (result i32)))
  (import "switchyard" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 5)
  (func (export "switchyard_alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "switchyard_handle") (param $ptr i32) (param $len i32) (result i32) %s)
  %s)"""
head = '{"name":"loop.Tick","data":"'
ev = head + "x" * (104_000 - len(head) - 2) + '"}'
fanout = HANDLER % ("""(local $i i32)
  (block $done (loop $again (br_if $done (i32.ge_u (local.get $i) (i32.const 10)))
    (drop (call $emit (i32.const 196608) (i32.const 104000)))
    (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $again))) (i32.const 0)""",
    '(data (i32.const 196608) "%s")' % ev.replace('"', '\\"'))
quick = HANDLER % ("(call $log (i32.const 2) (local.get $ptr) (local.get $len)) (i32.const 0)", "")
d = tempfile.mkdtemp()
os.mkdir(f"{d}/plugins")
open(f"{d}/plugins/fanout.wat", "w").write(fanout)
open(f"{d}/plugins/quick.wat", "w").write(quick)
open(f"{d}/router.toml", "w").write(f"""[server]
listen = "127.0.0.1:{PORT}"
workers = 2
[plugins]
dir = "plugins"
[dead_letter]
path = "dead.ndjson"
[[route]]
name = "loop"
match = {{ name = "loop.*" }}
handlers = ["fanout"]
[[route]]
name = "fast"
match = {{ name = "fast.*" }}
handlers = ["quick"]
""")
p = subprocess.Popen([BIN, "run", "--config", f"{d}/router.toml"], stderr=subprocess.DEVNULL)
def post(name):
    r = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/events?wait=true",
        data=json.dumps({"name": name}).encode(), headers={"content-type": "application/json"})
    return urllib.request.urlopen(r, timeout=120).read()
for _ in range(300):
    try:
        post("fast.Go"); break
    except Exception:
        time.sleep(0.1)
t = time.time()
roots = [threading.Thread(target=post, args=("loop.Tick",)) for _ in range(2)]
for r in roots: r.start()
slowest = 0.0
while any(r.is_alive() for r in roots):
    s = time.time(); post("fast.Go"); slowest = max(slowest, time.time() - s)
    time.sleep(0.02)
took = time.time() - t
hwm = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM")][0].split()[1]
size = os.path.getsize(f"{d}/dead.ndjson") if os.path.exists(f"{d}/dead.ndjson") else 0
letters = sum(1 for _ in open(f"{d}/dead.ndjson")) if size else 0
p.terminate(); p.wait()
subprocess.run(["rm", "-rf", d])
print(f"2 roots: {took:.2f} s; dead letters {letters} lines, {size} bytes; slowest good event {slowest*1000:.0f} ms; VmHWM {hwm} kB")
