"""The seam between the SDK and the component world's generated bindings.

Inside a component, ``wit_world`` is the module componentize-py generates
from ``plugin-sdk/wit/switchyard.wit`` at build time: its ``imports.host``
calls the daemon, and the class ``WitWorld`` made here is what the
component exports (componentize-py instantiates the app module's
``WitWorld`` and calls its ``configure`` and ``handle``). Outside one
(CPython, for unit tests), there is no ``wit_world``: ``switchyard.testing``
installs a host of its own with :func:`install`.

The host, either way, has two methods, in the SDK's own terms:

- ``log(level: str, message: str) -> None`` with level ``"trace"`` ..
  ``"error"``;
- ``emit(name, data_text, meta_text | None, version | None)`` returning
  ``None`` when accepted, else ``(kind, detail)`` with kind
  ``"malformed"``, ``"too-many"`` or ``"too-large"``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

try:
    import wit_world as _wit
except ModuleNotFoundError as e:  # not inside a component: only switchyard.testing can host
    if e.name != "wit_world":
        raise
    _wit = None
else:
    from componentize_py_types import Err as _Err
    from wit_world.imports import host as _wit_host
    from wit_world.imports import types as _wit_types

Refusal = Optional[Tuple[str, str]]


class _ComponentHost:
    """The world's ``host`` interface, translated to and from the SDK's terms."""

    def __init__(self) -> None:
        t = _wit_types
        self._levels = {
            "trace": t.Level.TRACE,
            "debug": t.Level.DEBUG,
            "info": t.Level.INFO,
            "warn": t.Level.WARN,
            "error": t.Level.ERROR,
        }

    def log(self, level: str, message: str) -> None:
        _wit_host.log(self._levels[level], message)

    def emit(self, name: str, data: str, meta: Optional[str], version: Optional[str]) -> Refusal:
        try:
            _wit_host.emit(_wit_types.NewEvent(name=name, data=data, meta=meta, version=version))
        except _Err as e:
            refusal = e.value
            if isinstance(refusal, _wit_types.EmitError_Malformed):
                return ("malformed", refusal.value)
            if isinstance(refusal, _wit_types.EmitError_TooMany):
                return ("too-many", "")
            return ("too-large", "")
        return None


class Refused(Exception):
    """Outside a component, what ``WitWorld`` raises where a component returns ``Err``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.value = message


_host: Any = _ComponentHost() if _wit is not None else None


def host() -> Any:
    """The host this SDK talks to; a ``RuntimeError`` outside a component and outside tests."""
    if _host is None:
        raise RuntimeError(
            "switchyard runs inside a component (plugins/build.sh python); "
            "in unit tests use switchyard.testing"
        )
    return _host


def install(test_host: Any) -> Any:
    """Replaces the host (``switchyard.testing`` only); returns the previous one."""
    global _host
    previous, _host = _host, test_host
    return previous


def world(
    configure: Callable[[str], Optional[str]],
    handle: Callable[[Any], Optional[str]],
) -> type:
    """The class componentize-py exports: each call's ``None`` is ``Ok``, a message ``Err``."""

    def fail(message: Optional[str]) -> None:
        if message is not None:
            raise (_Err(message) if _wit is not None else Refused(message))

    class WitWorld:
        """The world ``handler``'s exports: ``configure`` and ``handle``."""

        def configure(self, config: str) -> None:
            fail(configure(config))

        def handle(self, event: Any) -> None:
            fail(handle(event))

    return WitWorld
