// Package switchyard is the Go binding of the switchyard plugin ABI v1
// (plugin-sdk/ABI.md): a handler plugin built as a WASI reactor with
// GOOS=wasip1, GOARCH=wasm and -buildmode=c-shared (Go 1.24 or later).
//
// A plugin is a main package that registers its handler in an init
// function (c-shared never calls main):
//
//	package main
//
//	import sy "switchyard"
//
//	func init() { sy.Handle(handle) }
//
//	func main() {}
//
//	func handle(ev *sy.Event) error {
//		sy.Logf(sy.LevelInfo, "got %s %s", ev.Name, ev.ID)
//		return sy.Emit("app.Seen", map[string]string{"from": ev.ID})
//	}
//
// Build:
//
//	GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared \
//	    -ldflags='-s -w -buildid=' -trimpath -o plugin.wasm .
//
// The package exports the ABI's switchyard_alloc, switchyard_init and
// switchyard_handle; Go adds _initialize (the runtime and the init
// functions), which the host runs first in every instance, under the
// plugin's fuel and deadline.
//
// Outcomes: a handler that returns nil handled the event; a non-nil error
// fails the invocation as handler_error with err.Error() as its message;
// a panic is logged (at error, with its stack), becomes the failure
// message, and then traps (kind trap), as a Rust plugin's panic does.
// [Trap] traps on purpose.
//
// Instances may be reused for many events (ABI.md, "Instance lifetime"):
// package-level state may survive from one event to the next or not, so
// use it only as a cache. Outside wasip1 (go test on the build machine)
// the host functions are recorded in memory and [Invoke] runs the
// registered handler as the host would, for unit tests of a plugin.
package switchyard

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
)

// ABIVersion is the version of plugin-sdk/ABI.md this package implements.
const ABIVersion = 1

// Level is the level of a log line (the `log` import's first argument).
type Level int32

// The log levels, as ABI.md numbers them.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Event is one event envelope (ABI.md, "switchyard_handle").
type Event struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Version is "" when the producer gave none.
	Version string `json:"version,omitempty"`
	// Source says how the event entered the router: "http",
	// "tail:<path>", "plugin:<name>".
	Source string `json:"source"`
	// Time is RFC 3339 with milliseconds, UTC.
	Time string `json:"time"`
	// Meta is a JSON object (the facility layer), as text.
	Meta json.RawMessage `json:"meta"`
	// Data is any JSON value (the payload, {} when none was sent), as text.
	Data json.RawMessage `json:"data"`
}

// DataAs decodes the event's data into v (a pointer, as for
// json.Unmarshal); the error names the event.
func (ev *Event) DataAs(v any) error {
	if err := json.Unmarshal(ev.Data, v); err != nil {
		return fmt.Errorf("%s %s: data: %w", ev.Name, ev.ID, err)
	}
	return nil
}

// MetaAs decodes the event's meta object into v; the error names the event.
func (ev *Event) MetaAs(v any) error {
	if err := json.Unmarshal(ev.Meta, v); err != nil {
		return fmt.Errorf("%s %s: meta: %w", ev.Name, ev.ID, err)
	}
	return nil
}

// Handler handles one event: nil when handled, else the failure whose
// Error() is the invocation's message.
type Handler func(ev *Event) error

// The registered functions and the plugin's config: set by Handle and
// HandleConfig in init functions, and by switchyard_init per instance.
var (
	handler   Handler
	configure func(config json.RawMessage) error
	config    = json.RawMessage("{}")
)

// Handle registers the plugin's handler; call it from an init function.
func Handle(h Handler) { handler = h }

// HandleConfig registers a function that checks (or prepares from) the
// plugin's config once per instance, before its first event; an error
// fails that invocation as handler_error. Optional: [Config] and
// [ConfigAs] read the config at any time.
func HandleConfig(f func(config json.RawMessage) error) { configure = f }

// Config is the plugin's `config` table from router.toml as a JSON
// object ({} when there is none).
func Config() json.RawMessage { return config }

// ConfigAs decodes the plugin's config into v; the error says it is the
// plugin config that is bad.
func ConfigAs(v any) error {
	if err := json.Unmarshal(config, v); err != nil {
		return fmt.Errorf("bad plugin config: %w", err)
	}
	return nil
}

// Log writes a log line of the plugin; the host adds the plugin name and
// the event id, and cuts lines longer than 16 KiB.
func Log(level Level, message string) { hostLog(level, message) }

// Logf writes a log line formatted as fmt.Sprintf does.
func Logf(level Level, format string, args ...any) {
	hostLog(level, fmt.Sprintf(format, args...))
}

// NewEvent is an event to emit (ABI.md, "emit"). The host assigns id and
// time, sets source to plugin:<name> and adds the causation trail to meta.
type NewEvent struct {
	// Name is required: 1 to 256 bytes, no whitespace or control characters.
	Name string `json:"name"`
	// Data is any value encoding/json can encode; nil means {}.
	Data any `json:"data,omitempty"`
	// Meta is a JSON object; nil means {}.
	Meta map[string]any `json:"meta,omitempty"`
	// Version is omitted when "".
	Version string `json:"version,omitempty"`
}

// Why the host refused an emit (the `emit` return codes). Emit wraps
// them: test with errors.Is.
var (
	// ErrMalformed: not a JSON object, or a missing or invalid name (-1).
	ErrMalformed = errors.New("malformed event")
	// ErrTooMany: over the per-invocation event limit, max_emits (-2).
	ErrTooMany = errors.New("too many events emitted in one invocation")
	// ErrTooLarge: over the per-invocation byte limit, max_emit_bytes (-3).
	ErrTooLarge = errors.New("too many bytes emitted in one invocation")
	// ErrCascadeLimit: over the root event's cascade budget (-4, ABI 1.1).
	ErrCascadeLimit = errors.New("over the root event's cascade budget")
)

// Emit routes a new event named name with data (any value encoding/json
// encodes; a json.RawMessage goes as it is). The event is routed once
// this invocation succeeds, and dropped if it fails.
func Emit(name string, data any) error {
	return EmitEvent(NewEvent{Name: name, Data: data})
}

// EmitEvent routes a new event with meta and version as well.
func EmitEvent(e NewEvent) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("emit %s: %w", e.Name, err)
	}
	if err := EmitJSON(b); err != nil {
		return fmt.Errorf("emit %s: %w", e.Name, err)
	}
	return nil
}

// EmitJSON routes a new event given as the JSON object the `emit` import
// takes ({"name": ..., "data": ..., "meta": ..., "version": ...}).
func EmitJSON(event []byte) error {
	switch code := hostEmit(event); code {
	case 0:
		return nil
	case -1:
		return ErrMalformed
	case -2:
		return ErrTooMany
	case -3:
		return ErrTooLarge
	case -4:
		return ErrCascadeLimit
	default:
		return fmt.Errorf("emit refused with code %d", code)
	}
}

// Trap ends the invocation at once with a WebAssembly trap (failure kind
// trap): for a state the plugin cannot go on from. Nothing it emitted in
// this invocation is routed, and the instance is discarded.
func Trap() {
	trap()
	panic("unreachable: the trap returned")
}

// runInit is switchyard_init once its input is taken: keeps the config
// and runs the HandleConfig function. Returns the ABI result.
func runInit(input []byte) int32 {
	if !json.Valid(input) {
		hostFail("malformed plugin config JSON")
		return 1
	}
	config = json.RawMessage(input)
	if configure == nil {
		return 0
	}
	return outcome(guard(func() error { return configure(config) }))
}

// runHandle is switchyard_handle once its input is taken: decodes the
// event and runs the handler. Returns the ABI result.
func runHandle(input []byte) int32 {
	if handler == nil {
		hostFail("no handler registered: call switchyard.Handle in an init function")
		return 1
	}
	var ev Event
	if err := decodeEvent(input, &ev); err != nil {
		hostFail("malformed event JSON: " + err.Error())
		return 1
	}
	return outcome(guard(func() error { return handler(&ev) }))
}

// outcome reports err to the host and returns the ABI result.
func outcome(err error) int32 {
	if err == nil {
		return 0
	}
	hostFail(err.Error())
	return 1
}

// guard runs f; a panic is logged with its stack, becomes the failure
// message, and traps.
func guard(f func() error) error {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if _, ok := r.(trapSignal); ok {
			panic(r) // natively, Trap's panic goes on to Invoke
		}
		message := fmt.Sprintf("panic: %v\n\n%s", r, debug.Stack())
		hostLog(LevelError, message)
		hostFail(message)
		trap()
	}()
	return f()
}

// trapSignal is what trap panics with outside wasm, for Invoke to catch.
type trapSignal struct{}
