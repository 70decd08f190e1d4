//go:build !wasip1

package switchyard

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The fast envelope reader agrees with encoding/json on what the host
// sends and on what it does not.
func TestDecodeEventAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		click,
		`{}`,
		` { "name" : "a.B" , "data" : [ 1 , {"x":"}]\"["} ] , "meta" : {} } `,
		`{"name":"a.B","id":"x\"y\u00e9\ud83d\ude00","time":"t\\n","extra":{"deep":[[[]]]},"data":null}`,
		`{"name":"a.B","data":"text, with } and ]","meta":{"k":[true,false,null,-1.5e3]}}`,
		`{"name":"a.B","version":null,"data":7}`,
		`{"name":"a.B","data":{"a":1}}` + "\n",
		`{"name":5}`,
		`{"name":"a.B",}`,
		`{"name":"a.B"} x`,
		`[1]`,
		`{"name":"a.B","data":{"a":1}`,
		`{"name`,
		``,
	}
	for _, in := range inputs {
		var fast, slow Event
		errFast := decodeEvent([]byte(in), &fast)
		errSlow := json.Unmarshal([]byte(in), &slow)
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("%s: fast %v, encoding/json %v", in, errFast, errSlow)
		}
		if errSlow == nil && !reflect.DeepEqual(compact(t, fast), compact(t, slow)) {
			t.Fatalf("%s:\nfast %+v\nslow %+v", in, fast, slow)
		}
	}
}

// compact makes raw fields comparable whatever their white space.
func compact(t *testing.T, ev Event) Event {
	t.Helper()
	for _, raw := range []*json.RawMessage{&ev.Meta, &ev.Data} {
		if *raw == nil {
			continue
		}
		var v any
		if err := json.Unmarshal(*raw, &v); err != nil {
			t.Fatalf("raw field %q: %v", *raw, err)
		}
		*raw, _ = json.Marshal(v)
	}
	return ev
}

func BenchmarkDecodeEvent(b *testing.B) {
	input := []byte(click)
	for i := 0; i < b.N; i++ {
		var ev Event
		if err := decodeEvent(input, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalEvent(b *testing.B) {
	input := []byte(click)
	for i := 0; i < b.N; i++ {
		var ev Event
		if err := json.Unmarshal(input, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
