"""The Python SDK under CPython, through switchyard.testing (the same exports
a component has, a recording host instead of the daemon); and the example
plugins of plugins/python. Run: python3 -m unittest discover -s plugin-sdk/python/tests"""

import importlib
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[2] / "plugins" / "python")]

import switchyard as sy  # noqa: E402
from switchyard.testing import invoke  # noqa: E402


def load(module: str):
    """Imports an example plugin afresh, so that its handler is the registered one."""
    sy._handler = None
    sy._configure_hook = None
    sys.modules.pop(module, None)
    return importlib.import_module(module)


class Conformance(unittest.TestCase):
    def setUp(self):
        load("conformance")

    def test_emit_carries_the_event_id(self):
        r = invoke({"name": "conf.Emit", "id": "E1"})
        self.assertEqual(r.outcome, "ok")
        self.assertEqual(
            r.emits, [{"name": "conf.Emitted", "data": {"lang": "python", "from": "E1"}, "meta": None, "version": None}]
        )

    def test_log_fail_config_and_trap(self):
        self.assertEqual(invoke({"name": "conf.Log"}).logs, [("info", "conformance python")])
        fail = invoke({"name": "conf.Fail"})
        self.assertEqual((fail.outcome, fail.message), ("handler_error", "conformance python failed on purpose"))
        config = {"lang": "python", "answer": 42, "nested": {"list": [1, 2]}}
        self.assertEqual(invoke({"name": "conf.Config"}, config).emits[0]["data"], config)
        trap = invoke({"name": "conf.Trap"})
        self.assertEqual(trap.outcome, "trap")
        self.assertEqual(trap.logs, [("error", "conformance python traps on purpose")])
        self.assertEqual(invoke({"name": "conf.Other"}), sy.testing.Result("ok"))


class Sdk(unittest.TestCase):
    def setUp(self):
        sy._handler = None
        sy._configure_hook = None

    def test_other_exceptions_fail_with_their_type_and_log_the_traceback(self):
        sy.handler(lambda ev: ev.data["deal_id"])
        r = invoke({"name": "x.Y", "data": {}})
        self.assertEqual((r.outcome, r.message), ("handler_error", "KeyError: 'deal_id'"))
        self.assertEqual(r.logs[0][0], "debug")
        self.assertIn("Traceback", r.logs[0][1])

    def test_trap_is_not_caught_by_except_exception(self):
        def handle(ev):
            try:
                sy.trap("stuck")
            except Exception:
                pass

        sy.handler(handle)
        self.assertEqual(invoke({"name": "x.Y"}).outcome, "trap")

    def test_emit_refusals_raise_and_fail_the_invocation(self):
        def handle(ev):
            sy.emit("a.B", 1)
            try:
                sy.emit("a.C", 2)
            except sy.EmitTooMany as e:
                sy.warn(str(e))
            sy.emit("", 3)

        sy.handler(handle)
        r = invoke({"name": "x.Y"}, max_emits=1)
        self.assertEqual(r.outcome, "handler_error")
        self.assertIn("the event has no name", r.message)
        self.assertEqual(r.emits, [], "a failed invocation emits nothing")
        self.assertEqual(r.logs, [("warn", "emit 'a.C' refused: too many events")])

    def test_emit_writes_meta_and_version_and_refuses_what_is_not_json(self):
        def handle(ev):
            sy.emit("a.B", {"k": [1]}, meta={"m": 1}, version="1.2")
            sy.emit("a.C", float("nan"))

        sy.handler(handle)
        r = invoke({"name": "x.Y"})
        self.assertEqual(r.outcome, "handler_error")
        self.assertTrue(r.message.startswith("ValueError"), r.message)

        sy._handler = None
        sy.handler(lambda ev: sy.emit("a.B", {"k": [1]}, meta={"m": 1}, version="1.2"))
        self.assertEqual(
            invoke({"name": "x.Y"}).emits, [{"name": "a.B", "data": {"k": [1]}, "meta": {"m": 1}, "version": "1.2"}]
        )

    def test_a_configure_hook_refuses_the_plugin(self):
        sy.handler(lambda ev: None)

        @sy.on_configure
        def check(config):
            if "channel" not in config:
                raise sy.Error('bad plugin config: "channel" is missing')

        r = invoke({"name": "x.Y"}, {})
        self.assertEqual((r.outcome, r.message), ("config_error", 'bad plugin config: "channel" is missing'))
        self.assertEqual(invoke({"name": "x.Y"}, {"channel": "email"}).outcome, "ok")

    def test_the_event_reaches_the_handler_parsed(self):
        seen = []
        sy.handler(seen.append)
        invoke({"name": "x.Y", "version": "2.0", "meta": {"host": "h"}, "data": [1, "a"]})
        ev = seen[0]
        self.assertEqual((ev.name, ev.version, ev.source, ev.meta, ev.data), ("x.Y", "2.0", "http", {"host": "h"}, [1, "a"]))

    def test_without_a_handler_every_event_fails_and_log_levels_are_checked(self):
        self.assertIn("no handler registered", invoke({"name": "x.Y"}).message)
        sy.handler(lambda ev: sy.log("loud", "x"))
        self.assertEqual(invoke({"name": "x.Y"}).message, "ValueError: unknown log level 'loud' (one of trace, debug, info, warn, error)")

    def test_outside_a_component_and_a_test_the_host_is_missing(self):
        with self.assertRaisesRegex(RuntimeError, "runs inside a component"):
            sy.info("x")


class Classify(unittest.TestCase):
    CONFIG = {"routes": ["/deals/{id}", "/users/{id}/profile"], "slow_ms": 250}

    def setUp(self):
        load("classify")

    def test_routes_status_class_and_slowness(self):
        r = invoke({"name": "web.Request", "data": {"path": "/deals/7?ref=x", "status": 200, "latency_ms": 412.5}}, self.CONFIG)
        self.assertEqual(r.outcome, "ok", r.message)
        self.assertEqual(
            r.emits,
            [
                {
                    "name": "web.Classified",
                    "data": {"route": "/deals/{id}", "path": "/deals/7?ref=x", "status_class": "2xx", "slow": True},
                    "meta": {"classified_by": "classify"},
                    "version": None,
                }
            ],
        )
        other = invoke({"name": "web.Request", "data": {"path": "/users/4/x", "status": 503}}, self.CONFIG)
        self.assertEqual((other.emits[0]["data"]["route"], other.emits[0]["data"]["status_class"]), ("other", "5xx"))
        self.assertFalse(other.emits[0]["data"]["slow"])

    def test_bad_events_and_bad_config(self):
        r = invoke({"name": "web.Request", "id": "E9", "data": {"path": "/", "status": "200"}}, self.CONFIG)
        self.assertEqual((r.outcome, r.message), ("handler_error", "web.Request E9: no numeric data.status"))
        self.assertEqual(invoke({"name": "web.Request"}, {"routes": "/x"}).outcome, "config_error")
        self.assertEqual(invoke({"name": "web.Request"}, {"routes": [], "slow_ms": 0}).outcome, "config_error")


if __name__ == "__main__":
    unittest.main()
