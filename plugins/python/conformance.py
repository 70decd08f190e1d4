"""Conformance plugin of the Python SDK, for the host's test suite: it does
what the event's name asks (see plugins/README.md, "Conformance")."""

import switchyard as sy
from switchyard import WitWorld  # noqa: F401  (the exports componentize-py looks for)


@sy.handler
def handle(ev: sy.Event) -> None:
    if ev.name == "conf.Emit":
        sy.emit("conf.Emitted", {"lang": "python", "from": ev.id})
    elif ev.name == "conf.Log":
        sy.info("conformance python")
    elif ev.name == "conf.Fail":
        raise sy.Error("conformance python failed on purpose")
    elif ev.name == "conf.Config":
        sy.emit("conf.ConfigSeen", sy.config())
    elif ev.name == "conf.Trap":
        sy.trap("conformance python traps on purpose")
    elif ev.name == "conf.Timeout":
        while True:
            pass
