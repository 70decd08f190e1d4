//go:build !wasip1

package switchyard

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const click = `{"id":"01J","name":"deals.DealClick","version":"1.2","source":"http",` +
	`"time":"2026-11-26T10:00:00.123Z","meta":{"host":"web-3"},"data":{"deal_id":7}}`

// register installs h (and no config function) for one test.
func register(t *testing.T, h Handler) {
	t.Helper()
	Handle(h)
	HandleConfig(nil)
	t.Cleanup(func() { Handle(nil); HandleConfig(nil) })
}

func TestTheEnvelopeIsDecoded(t *testing.T) {
	var seen Event
	register(t, func(ev *Event) error { seen = *ev; return nil })
	if r := Invoke(nil, []byte(click)); !r.OK() {
		t.Fatalf("%+v", r)
	}
	if seen.ID != "01J" || seen.Name != "deals.DealClick" || seen.Version != "1.2" ||
		seen.Source != "http" || seen.Time != "2026-11-26T10:00:00.123Z" {
		t.Fatalf("%+v", seen)
	}
	var data struct {
		DealID int `json:"deal_id"`
	}
	if err := seen.DataAs(&data); err != nil || data.DealID != 7 {
		t.Fatalf("%v %+v", err, data)
	}
	var meta map[string]string
	if err := seen.MetaAs(&meta); err != nil || meta["host"] != "web-3" {
		t.Fatalf("%v %v", err, meta)
	}
	var wrong []int
	if err := seen.DataAs(&wrong); err == nil || !strings.HasPrefix(err.Error(), "deals.DealClick 01J: data:") {
		t.Fatalf("a payload of the wrong shape names the event: %v", err)
	}
}

func TestEmitsAreEncodedAndKeptOnlyOnSuccess(t *testing.T) {
	register(t, func(ev *Event) error {
		if err := Emit("deals.Seen", map[string]int{"deal_id": 7}); err != nil {
			return err
		}
		err := EmitEvent(NewEvent{Name: "deals.Tagged", Data: json.RawMessage(`[1]`),
			Meta: map[string]any{"by": "go"}, Version: "2.0"})
		if err != nil {
			return err
		}
		if ev.Name == "deals.Fail" {
			return errors.New("failed after emitting")
		}
		return nil
	})
	r := Invoke(nil, []byte(click))
	want := []string{
		`{"name":"deals.Seen","data":{"deal_id":7}}`,
		`{"name":"deals.Tagged","data":[1],"meta":{"by":"go"},"version":"2.0"}`,
	}
	if !r.OK() || len(r.Emitted) != 2 || string(r.Emitted[0]) != want[0] || string(r.Emitted[1]) != want[1] {
		t.Fatalf("%+v", r)
	}
	r = Invoke(nil, []byte(strings.Replace(click, "DealClick", "Fail", 1)))
	if r.Failure != "failed after emitting" || len(r.Emitted) != 0 {
		t.Fatalf("a failed invocation keeps no emits: %+v", r)
	}
}

func TestRefusedEmitsAreErrors(t *testing.T) {
	var errs []error
	register(t, func(ev *Event) error {
		errs = append(errs, Emit("", nil))
		for i := 0; i <= maxEmits; i++ {
			if err := Emit("deals.Many", nil); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	Invoke(nil, []byte(click))
	if len(errs) != 2 || !errors.Is(errs[0], ErrMalformed) || !errors.Is(errs[1], ErrTooMany) {
		t.Fatalf("%v", errs)
	}
	if !strings.Contains(errs[1].Error(), "deals.Many") {
		t.Fatalf("the error names the event: %v", errs[1])
	}
}

func TestConfigIsReadAndChecked(t *testing.T) {
	var channel string
	register(t, func(ev *Event) error {
		Logf(LevelInfo, "via %s", channel)
		return nil
	})
	HandleConfig(func(json.RawMessage) error {
		var c struct{ Channel string }
		if err := ConfigAs(&c); err != nil {
			return err
		}
		if c.Channel == "" {
			return errors.New("bad plugin config: \"channel\" must be a string")
		}
		channel = c.Channel
		return nil
	})
	r := Invoke([]byte(`{"channel":"email"}`), []byte(click))
	if !r.OK() || string(Config()) != `{"channel":"email"}` || len(r.Logs) != 1 ||
		r.Logs[0] != (LogLine{LevelInfo, "via email"}) {
		t.Fatalf("%+v", r)
	}
	if r := Invoke([]byte(`{}`), []byte(click)); r.Failure != `bad plugin config: "channel" must be a string` {
		t.Fatalf("%+v", r)
	}
	if r := Invoke([]byte(`{"channel":1}`), []byte(click)); !strings.HasPrefix(r.Failure, "bad plugin config: ") {
		t.Fatalf("%+v", r)
	}
	if r := Invoke([]byte(`{`), []byte(click)); r.Failure != "malformed plugin config JSON" {
		t.Fatalf("%+v", r)
	}
}

func TestAPanicIsLoggedAndTraps(t *testing.T) {
	register(t, func(ev *Event) error {
		var m map[string]int
		m["x"] = 1
		return nil
	})
	r := Invoke(nil, []byte(click))
	if !r.Trapped || !strings.HasPrefix(r.Failure, "panic: assignment to entry in nil map") {
		t.Fatalf("%+v", r)
	}
	if len(r.Logs) != 1 || r.Logs[0].Level != LevelError || r.Logs[0].Message != r.Failure {
		t.Fatalf("the panic is logged at error: %+v", r.Logs)
	}
}

func TestTrapAndBadInput(t *testing.T) {
	register(t, func(ev *Event) error { Trap(); return nil })
	if r := Invoke(nil, []byte(click)); !r.Trapped || r.Failure != "" || len(r.Logs) != 0 {
		t.Fatalf("%+v", r)
	}
	if r := Invoke(nil, []byte(`not json`)); !strings.HasPrefix(r.Failure, "malformed event JSON: ") {
		t.Fatalf("%+v", r)
	}
	Handle(nil)
	if r := Invoke(nil, []byte(click)); !strings.HasPrefix(r.Failure, "no handler registered") {
		t.Fatalf("%+v", r)
	}
}
