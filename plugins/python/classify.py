"""Classifies web requests: which route template a path matches, its status
class and whether it was slow; emits the result as ``web.Classified``.

Config (router.toml ``[plugin.classify]``)::

    routes  = ["/deals/{id}", "/users/{id}/profile"]   # templates, {x} = one path segment
    slow_ms = 250                                       # optional, default 1000
    emit    = "web.Classified"                          # optional

A path no template matches is classified as route ``"other"``. An event
without ``data.path`` or a numeric ``data.status`` fails with a message.
"""

import re

import switchyard as sy
from switchyard import WitWorld  # noqa: F401  (the exports componentize-py looks for)

# Compiled once per instance, from the config (instances are reused).
_routes: list = []
_slow_ms: float = 1000.0
_emit_name: str = "web.Classified"


@sy.on_configure
def configure(config: dict) -> None:
    global _routes, _slow_ms, _emit_name
    templates = config.get("routes")
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        raise sy.Error('bad plugin config: "routes" must be a list of path templates')
    _routes = [(t, re.compile(_pattern(t))) for t in templates]
    slow = config.get("slow_ms", 1000)
    if isinstance(slow, bool) or not isinstance(slow, (int, float)) or slow <= 0:
        raise sy.Error('bad plugin config: "slow_ms" must be a positive number')
    _slow_ms = float(slow)
    _emit_name = config.get("emit", "web.Classified")


def _pattern(template: str) -> str:
    """``/deals/{id}`` -> ``^/deals/[^/]+$``: literal text, ``{name}`` one segment."""
    parts = re.split(r"\{[^/{}]+\}", template)
    return "^" + "[^/]+".join(re.escape(p) for p in parts) + "/?$"


@sy.handler
def handle(ev: sy.Event) -> None:
    data = ev.data if isinstance(ev.data, dict) else {}
    path, status = data.get("path"), data.get("status")
    if not isinstance(path, str):
        raise sy.Error(f"{ev.name} {ev.id}: no data.path")
    if isinstance(status, bool) or not isinstance(status, int):
        raise sy.Error(f"{ev.name} {ev.id}: no numeric data.status")
    route = next((t for t, rx in _routes if rx.match(path.split("?", 1)[0])), "other")
    latency = data.get("latency_ms")
    slow = isinstance(latency, (int, float)) and latency >= _slow_ms
    sy.debug(f"{path} -> {route} ({status})")
    sy.emit(
        _emit_name,
        {"route": route, "path": path, "status_class": f"{status // 100}xx", "slow": slow},
        meta={"classified_by": "classify"},
    )
