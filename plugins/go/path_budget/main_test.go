//go:build !wasip1

package main

import (
	"encoding/json"
	"strings"
	"testing"

	sy "switchyard"
)

const conf = `{"emit":"alerts.Slow","budgets":[{"pattern":"^/deals/","ms":300},{"pattern":"^/api/","ms":100}]}`

func request(path, latency string) []byte {
	return []byte(`{"id":"01J","name":"web.Request","source":"http","time":"2026-11-26T10:00:00.000Z",` +
		`"meta":{},"data":{"path":` + path + `,"latency_ms":` + latency + `}}`)
}

func TestTheFirstMatchingBudgetDecides(t *testing.T) {
	for _, c := range []struct {
		path, latency string
		alert         bool
	}{
		{`"/deals/7"`, `412.5`, true},
		{`"/deals/7"`, `120`, false},
		{`"/api/x"`, `120`, true},
		{`"/other"`, `5000`, false},
	} {
		r := sy.Invoke([]byte(conf), request(c.path, c.latency))
		if !r.OK() || len(r.Emitted) != map[bool]int{true: 1, false: 0}[c.alert] {
			t.Fatalf("%+v: %+v", c, r)
		}
		if !c.alert {
			continue
		}
		var e struct {
			Name string
			Data map[string]any
		}
		if err := json.Unmarshal(r.Emitted[0], &e); err != nil {
			t.Fatal(err)
		}
		if e.Name != "alerts.Slow" || e.Data["event_id"] != "01J" || e.Data["latency_ms"] == nil {
			t.Fatalf("%+v: %+v", c, e)
		}
	}
}

func TestBadInputFails(t *testing.T) {
	if r := sy.Invoke([]byte(conf), request(`7`, `1`)); r.Failure != "web.Request 01J: data.path is not a string" {
		t.Fatalf("%+v", r)
	}
	if r := sy.Invoke([]byte(conf), request(`"/"`, `"slow"`)); r.Failure != "web.Request 01J: data.latency_ms is not a number" {
		t.Fatalf("%+v", r)
	}
	r := sy.Invoke([]byte(`{"budgets":[{"pattern":"(","ms":1}]}`), request(`"/"`, `1`))
	if !strings.HasPrefix(r.Failure, "bad plugin config: budgets[0].pattern: ") {
		t.Fatalf("%+v", r)
	}
	if r := sy.Invoke(nil, request(`"/"`, `1`)); !strings.HasPrefix(r.Failure, `bad plugin config: "budgets"`) {
		t.Fatalf("%+v", r)
	}
	if r := sy.Invoke([]byte(conf), []byte(`{"id":"1","name":"web.Request","data":{}}`)); !r.OK() || len(r.Emitted) != 0 {
		t.Fatalf("no fields, no alert: %+v", r)
	}
}
