//go:build !wasip1

package main

import (
	"encoding/json"
	"strings"
	"testing"

	sy "switchyard"
)

const conf = `{"field":"path","emit":"web.Classified","classes":[` +
	`{"class":"deals","pattern":"^/deals/"},{"class":"api","pattern":"^/api/"}]}`

func request(path string) []byte {
	return []byte(`{"id":"01J","name":"web.Request","source":"http","time":"2026-11-26T10:00:00.000Z",` +
		`"meta":{},"data":{"path":` + path + `,"status":200}}`)
}

func TestTheFirstMatchingClassIsEmitted(t *testing.T) {
	for path, want := range map[string]string{`"/deals/7"`: "deals", `"/api/x"`: "api", `"/"`: "other"} {
		r := sy.Invoke([]byte(conf), request(path))
		if !r.OK() || len(r.Emitted) != 1 {
			t.Fatalf("%s: %+v", path, r)
		}
		var e struct {
			Name string
			Data map[string]string
		}
		if err := json.Unmarshal(r.Emitted[0], &e); err != nil {
			t.Fatal(err)
		}
		if e.Name != "web.Classified" || e.Data["class"] != want || e.Data["event_id"] != "01J" {
			t.Fatalf("%s: %+v", path, e)
		}
	}
}

func TestBadInputFails(t *testing.T) {
	if r := sy.Invoke([]byte(conf), request(`7`)); r.Failure != "web.Request 01J: data.path is not a string" {
		t.Fatalf("%+v", r)
	}
	r := sy.Invoke([]byte(`{"classes":[{"class":"x","pattern":"("}]}`), request(`"/"`))
	if r.OK() || !strings.HasPrefix(r.Failure, "bad plugin config: classes[0].pattern: ") {
		t.Fatalf("%+v", r)
	}
	if r := sy.Invoke([]byte(conf), []byte(`{"id":"1","name":"web.Request","data":{}}`)); !r.OK() || len(r.Emitted) != 0 {
		t.Fatalf("no field, no emit: %+v", r)
	}
}
