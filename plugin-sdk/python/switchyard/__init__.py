"""switchyard handlers in Python, as WebAssembly components.

What a handler author imports. The contract is the component world
``switchyard:handler@1.0.0`` in ``plugin-sdk/wit/switchyard.wit`` (the same
semantics as the core ABI in ``plugin-sdk/ABI.md``); ``componentize-py``
builds the app module and this package into one component
(``plugins/build.sh python``)::

    import switchyard
    from switchyard import WitWorld  # the exports componentize-py looks for

    @switchyard.handler
    def handle(event: switchyard.Event) -> None:
        if "deal_id" not in event.data:
            raise switchyard.Error("no data.deal_id")  # handler_error, this message
        switchyard.info(f"deal {event.data['deal_id']} from {event.source}")
        switchyard.emit("deals.Seen", {"deal_id": event.data["deal_id"]})

How an invocation ends, as the host reports it:

- the handler returns: ``ok``;
- it raises :class:`Error` (or any other ``Exception``): ``handler_error``
  with the error's text as the message (other exceptions are prefixed with
  their type, ``KeyError: 'deal_id'``, and their traceback is logged at
  debug level);
- it calls :func:`trap`, loops past its deadline, runs out of fuel or of
  memory: ``trap``, ``timeout``, ``out_of_fuel``, ``memory_limit``. Any of
  these discards the instance; the next event gets a fresh one.

The plugin's ``config`` table from ``router.toml`` arrives once per
instance, before the first event, as JSON (``{}`` when there is none):
:func:`config` returns it parsed, and a function decorated with
:func:`on_configure` can check it: raising there refuses the plugin at
load (``switchyard check`` and the daemon's log show the message).

Instances are reused across events by default, so module-level state
survives from one event to the next until a failure or a reload discards
the instance; it is a cache, never a store.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import _binding

__all__ = [
    "Event",
    "Error",
    "EmitError",
    "EmitMalformed",
    "EmitTooMany",
    "EmitTooLarge",
    "handler",
    "on_configure",
    "config",
    "emit",
    "log",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "trap",
    "WitWorld",
    "TRACE",
    "DEBUG",
    "INFO",
    "WARN",
    "ERROR",
]

#: Log levels, the world's ``level`` enum by name.
TRACE, DEBUG, INFO, WARN, ERROR = "trace", "debug", "info", "warn", "error"
_LEVELS = (TRACE, DEBUG, INFO, WARN, ERROR)


@dataclass(frozen=True)
class Event:
    """One event, as the router hands it to a handler.

    ``meta`` is the facility layer (a dict) and ``data`` the application
    payload (any JSON value, parsed); the other fields are the envelope's
    strings (``version`` is ``None`` when the event has none; ``time`` is
    RFC 3339 with milliseconds, UTC).
    """

    id: str
    name: str
    version: Optional[str]
    source: str
    time: str
    meta: dict
    data: Any


class Error(Exception):
    """Fails the invocation as ``handler_error`` with ``str(error)`` as the message."""


class EmitError(Error):
    """The host refused an emitted event; nothing was emitted.

    Raised by :func:`emit`. Left uncaught it fails the invocation like any
    :class:`Error`.
    """


class EmitMalformed(EmitError):
    """The event was not acceptable (bad name, meta not an object, ...): ``str()`` says why."""


class EmitTooMany(EmitError):
    """This invocation, or the root event's cascade, already emitted as many events as allowed."""


class EmitTooLarge(EmitError):
    """The event, or the cascade's emitted bytes in all, is larger than allowed."""


class _Trap(BaseException):
    """Raised by :func:`trap`: a ``BaseException`` so that no ``except Exception`` stops it."""


_handler: Optional[Callable[[Event], None]] = None
_configure_hook: Optional[Callable[[Any], None]] = None
_config: Any = {}


def handler(fn: Callable[[Event], None]) -> Callable[[Event], None]:
    """Registers ``fn(event)`` as the plugin's handler (one per plugin); returns ``fn``."""
    global _handler
    if _handler is not None and _handler is not fn:
        raise RuntimeError(f"a handler is registered already: {_handler.__qualname__}")
    _handler = fn
    return fn


def on_configure(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Registers ``fn(config)``, called with the parsed config once per instance.

    Raising in it refuses the plugin at load, with the exception's text as
    the message. Returns ``fn``.
    """
    global _configure_hook
    _configure_hook = fn
    return fn


def config() -> Any:
    """The plugin's ``config`` table from ``router.toml``, parsed (``{}`` when there is none)."""
    return _config


def log(level: str, message: str) -> None:
    """Logs ``message`` at ``level`` (``"trace"`` .. ``"error"``), tagged with plugin and event.

    The host rate-limits log lines per plugin; past the limit lines are
    dropped and counted, never blocking.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(_LEVELS)})")
    _binding.host().log(level, str(message))


def trace(message: str) -> None:
    """``log("trace", message)``."""
    log(TRACE, message)


def debug(message: str) -> None:
    """``log("debug", message)``."""
    log(DEBUG, message)


def info(message: str) -> None:
    """``log("info", message)``."""
    log(INFO, message)


def warn(message: str) -> None:
    """``log("warn", message)``."""
    log(WARN, message)


def error(message: str) -> None:
    """``log("error", message)``."""
    log(ERROR, message)


def emit(
    name: str,
    data: Any = None,
    *,
    meta: Optional[dict] = None,
    version: Optional[str] = None,
) -> None:
    """Emits a new event ``name`` with ``data`` (any JSON-serializable value).

    ``meta`` (a dict) gets the host's own facility fields added
    (``parent_id``, ``root_id``, ``hops``, ``trail``); ``version`` is the
    schema version. The
    event enters routing with source ``plugin:<this plugin>`` once the
    invocation succeeds; a failed invocation's emits are dropped.

    Raises :class:`EmitMalformed`, :class:`EmitTooMany` or
    :class:`EmitTooLarge` when the host refuses it, and ``TypeError`` when
    ``data`` or ``meta`` cannot be written as JSON.
    """
    data_text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    meta_text = None if meta is None else json.dumps(meta, separators=(",", ":"), allow_nan=False)
    refusal = _binding.host().emit(name, data_text, meta_text, version)
    if refusal is None:
        return
    kind, detail = refusal
    if kind == "too-many":
        raise EmitTooMany(f"emit {name!r} refused: too many events")
    if kind == "too-large":
        raise EmitTooLarge(f"emit {name!r} refused: too large")
    raise EmitMalformed(f"emit {name!r} refused: {detail}")


def trap(message: str = "trap") -> None:
    """Ends the invocation as a ``trap`` (the instance is discarded), logging ``message`` at error.

    For a state the handler cannot go on from. It does not return, and
    ``except Exception`` does not catch it.
    """
    error(message)
    raise _Trap(message)


def _run_configure(text: str) -> Optional[str]:
    """Parses and stores the config, runs the hook; the refusal message, or ``None``."""
    global _config
    try:
        _config = json.loads(text) if text.strip() else {}
    except ValueError as e:
        return f"the plugin config is not JSON: {e}"
    if _configure_hook is None:
        return None
    try:
        _configure_hook(_config)
    except Exception as e:  # noqa: BLE001 - any refusal is the plugin's message
        return _describe(e)
    return None


def _run_handle(ev: Any) -> Optional[str]:
    """Runs the handler on the world's event record; the failure message, or ``None``.

    Exceptions become messages; :func:`trap` (and anything else that is not
    an ``Exception``) propagates, which componentize-py turns into a trap.
    """
    if _handler is None:
        return "no handler registered: decorate a function with @switchyard.handler"
    try:
        event = Event(
            id=ev.id,
            name=ev.name,
            version=ev.version,
            source=ev.source,
            time=ev.time,
            meta=json.loads(ev.meta),
            data=json.loads(ev.data),
        )
    except ValueError as e:
        return f"malformed event from the host: {e}"
    try:
        _handler(event)
    except Error as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - the handler's failure, reported as such
        debug("".join(traceback.format_exception(e)).rstrip())
        return _describe(e)
    return None


def _describe(e: BaseException) -> str:
    if isinstance(e, Error):
        return str(e)
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


WitWorld = _binding.world(_run_configure, _run_handle)
