"""Unit-test a handler natively, under CPython, without building a component.

``invoke`` runs ``configure`` then ``handle`` through the same exports the
component has, against a recording host instead of the daemon::

    import app                      # registers the handler
    from switchyard.testing import invoke

    r = invoke({"name": "web.Request", "data": {"path": "/deals/7", "status": 200}},
               config={"routes": ["/deals/{id}"]})
    assert r.outcome == "ok" and r.emits[0]["name"] == "web.Classified"

What it does not model: fuel, memory caps and deadlines (the daemon's), and
instance lifetime (module state persists across calls here). Run
``switchyard plugin run`` on the built component for those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, List, Optional, Tuple

from . import _binding
from . import _Trap, WitWorld


@dataclass
class Result:
    """What one invocation did.

    ``outcome`` is ``"ok"``, ``"config_error"`` (``configure`` refused: the
    plugin would not load), ``"handler_error"`` or ``"trap"``; ``message``
    the failure message (``None`` when ok); ``emits`` the accepted events as
    dicts (``name``, ``data`` and ``meta`` parsed, ``version``); ``logs``
    ``(level, message)`` pairs in order.
    """

    outcome: str
    message: Optional[str] = None
    emits: List[dict] = field(default_factory=list)
    logs: List[Tuple[str, str]] = field(default_factory=list)


class _RecordingHost:
    def __init__(self, max_emits: Optional[int]) -> None:
        self.max_emits = max_emits
        self.emits: List[dict] = []
        self.logs: List[Tuple[str, str]] = []

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def emit(self, name: str, data: str, meta: Optional[str], version: Optional[str]):
        if not name:
            return ("malformed", "the event has no name")
        parsed_meta = None if meta is None else json.loads(meta)
        if parsed_meta is not None and not isinstance(parsed_meta, dict):
            return ("malformed", "meta must be a JSON object")
        if self.max_emits is not None and len(self.emits) >= self.max_emits:
            return ("too-many", "")
        self.emits.append(
            {"name": name, "data": json.loads(data), "meta": parsed_meta, "version": version}
        )
        return None


def invoke(event: dict, config: Any = None, *, max_emits: Optional[int] = None) -> Result:
    """Runs the registered handler once on ``event`` with ``config``.

    ``event`` is the envelope as a dict; only ``name`` is required (``id``,
    ``source``, ``time``, ``meta``, ``data`` and ``version`` get defaults).
    ``config`` is what ``router.toml``'s ``config`` table would hold
    (``None``: ``{}``). ``max_emits`` makes the host refuse emits past that
    many with ``too-many``.
    """
    recorder = _RecordingHost(max_emits)
    previous = _binding.install(recorder)
    world = WitWorld()
    try:
        try:
            world.configure(json.dumps({} if config is None else config))
        except _binding.Refused as e:
            return Result("config_error", e.value, recorder.emits, recorder.logs)
        record = SimpleNamespace(
            id=event.get("id", "01JDX8Q5B6Z9K3M2N4P7R8S9T0"),
            name=event["name"],
            version=event.get("version"),
            source=event.get("source", "http"),
            time=event.get("time", "2026-11-26T10:00:00.000Z"),
            meta=json.dumps(event.get("meta", {})),
            data=json.dumps(event.get("data", {})),
        )
        try:
            world.handle(record)
        except _binding.Refused as e:
            return Result("handler_error", e.value, [], recorder.logs)
        except _Trap as e:
            return Result("trap", str(e), [], recorder.logs)
        return Result("ok", None, recorder.emits, recorder.logs)
    finally:
        _binding.install(previous)
