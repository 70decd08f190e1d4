//go:build !wasip1

// Outside wasm (go test on the build machine) the host functions record
// what the plugin does, and Invoke runs the registered functions as the
// host runs switchyard_init and switchyard_handle: for unit tests of a
// plugin, with no wasm runtime involved.

package switchyard

import (
	"encoding/json"
	"fmt"
)

// maxEmits is the host's default max_emits, which Invoke applies too.
const maxEmits = 100

// LogLine is one line a plugin logged.
type LogLine struct {
	Level   Level
	Message string
}

// Result is what one invocation under Invoke did.
type Result struct {
	// Failure is the failure message ("" when the invocation succeeded),
	// as the host would report it for handler_error.
	Failure string
	// Trapped says the plugin trapped (Trap, or a panic).
	Trapped bool
	// Emitted holds the emitted events as the JSON the host received;
	// empty when the invocation failed, as the host drops them then.
	Emitted []json.RawMessage
	Logs    []LogLine
}

// OK says the invocation succeeded.
func (r Result) OK() bool { return r.Failure == "" && !r.Trapped }

// recorder is what Invoke records into while it runs.
type recorder struct {
	result *Result
	// failMessage is the last message passed to fail; it becomes the
	// failure message only if the call then fails.
	failMessage string
}

// current is the recorder of the Invoke running, if any.
var current *recorder

func hostLog(level Level, message string) {
	if current != nil {
		current.result.Logs = append(current.result.Logs, LogLine{level, message})
	}
}

// hostEmit checks what the host checks first (a JSON object with a
// non-empty string name, at most maxEmits per invocation).
func hostEmit(event []byte) int32 {
	var e struct {
		Name *string `json:"name"`
	}
	if json.Unmarshal(event, &e) != nil || e.Name == nil || *e.Name == "" {
		return -1
	}
	if current == nil {
		return 0
	}
	r := current.result
	if len(r.Emitted) >= maxEmits {
		return -2
	}
	r.Emitted = append(r.Emitted, append(json.RawMessage(nil), event...))
	return 0
}

func hostFail(message string) {
	if current != nil {
		current.failMessage = message
	}
}

func trap() { panic(trapSignal{}) }

// Invoke runs the registered functions on one event as a fresh instance
// would: the config function (if any) with config, then the handler with
// event (an envelope as JSON, as the host passes it). config nil means
// {}. When the plugin traps, Failure holds the message it passed to fail
// before (a panic's). Not available in wasm.
func Invoke(config, event []byte) (result Result) {
	if config == nil {
		config = []byte("{}")
	}
	rec := &recorder{result: &result}
	current = rec
	defer func() {
		current = nil
		if r := recover(); r != nil {
			if _, ok := r.(trapSignal); !ok {
				panic(r)
			}
			result.Trapped = true
			result.Failure = rec.failMessage
		}
		if !result.OK() {
			result.Emitted = nil
		}
	}()
	for _, call := range []struct {
		export string
		run    func([]byte) int32
		input  []byte
	}{{"switchyard_init", runInit, config}, {"switchyard_handle", runHandle, event}} {
		if rc := call.run(call.input); rc != 0 {
			result.Failure = rec.failMessage
			if result.Failure == "" {
				result.Failure = fmt.Sprintf("%s returned %d", call.export, rc)
			}
			return result
		}
	}
	return result
}
