// Conformance plugin of the Go binding, for the host's test suite: it does
// what the event's name asks (see plugins/README.md, "Conformance").
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	sy "switchyard"
)

func init() { sy.Handle(handle) }

// main is never called in a c-shared (reactor) build, but package main
// needs one.
func main() {}

func handle(ev *sy.Event) error {
	switch ev.Name {
	case "conf.Emit":
		return sy.Emit("conf.Emitted", map[string]string{"lang": "go", "from": ev.ID})
	case "conf.Log":
		sy.Log(sy.LevelInfo, "conformance go")
	case "conf.Fail":
		return errors.New("conformance go failed on purpose")
	case "conf.Config":
		return sy.Emit("conf.ConfigSeen", sy.Config())
	case "conf.Trap":
		sy.Trap()
	case "conf.Panic":
		// The SDK logs it with its stack, sets it as the failure message,
		// and traps.
		panic("conformance go panicked on purpose")
	case "conf.Sandbox":
		// What WASI grants a Go plugin: no files, no environment, its
		// name as the only argument; stdout becomes log lines.
		_, err := os.Open("/etc/passwd")
		sy.Logf(sy.LevelInfo, "open: %v; environ: %d; args: %q", err, len(os.Environ()), os.Args)
		fmt.Println("conformance go on stdout")
	case "conf.Timeout":
		// Waits in the Go scheduler (poll_oneoff), far past any deadline.
		time.Sleep(time.Hour)
	}
	return nil
}
