package switchyard

import (
	"encoding/json"
	"errors"
)

// decodeEvent reads an envelope as the host writes it (ABI.md: one JSON
// object; id, name, source, time strings, meta an object, data any value,
// version a string when present; unknown fields ignored). It does what
// json.Unmarshal into Event does, at a fraction of the instructions (no
// reflection, one pass, one copy of the input that the strings without
// escapes share): other strings and anything unexpected go through
// encoding/json.
func decodeEvent(input []byte, ev *Event) error {
	whole := string(input)
	d := scanner{b: input}
	if !d.byte('{') {
		return json.Unmarshal(input, ev)
	}
	if d.byte('}') {
		return nil
	}
	for {
		key, ok := d.plainKey()
		if !ok || !d.byte(':') {
			return json.Unmarshal(input, ev)
		}
		start := d.skipSpace()
		if !d.value() {
			return json.Unmarshal(input, ev)
		}
		raw, str := input[start:d.i], whole[start:d.i]
		var err error
		switch string(key) { // compared in place, not copied
		case "id":
			err = text(raw, str, &ev.ID)
		case "name":
			err = text(raw, str, &ev.Name)
		case "version":
			err = text(raw, str, &ev.Version)
		case "source":
			err = text(raw, str, &ev.Source)
		case "time":
			err = text(raw, str, &ev.Time)
		case "meta":
			ev.Meta = json.RawMessage(raw)
		case "data":
			ev.Data = json.RawMessage(raw)
		}
		if err != nil {
			return err
		}
		if d.byte('}') {
			break
		}
		if !d.byte(',') {
			return json.Unmarshal(input, ev)
		}
	}
	if d.skipSpace() != len(input) {
		return errors.New("invalid character after top-level value")
	}
	return nil
}

// text sets *s from a JSON string token, raw, which is str in the copy
// (null leaves *s as it is, as json.Unmarshal does).
func text(raw []byte, str string, s *string) error {
	if len(raw) >= 2 && raw[0] == '"' && !hasEscape(raw[1:len(raw)-1]) {
		*s = str[1 : len(str)-1]
		return nil
	}
	return json.Unmarshal(raw, s)
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 {
			return true
		}
	}
	return false
}

// scanner walks JSON text; it finds where values end, and leaves checking
// what is inside them to the caller (or to encoding/json).
type scanner struct {
	b []byte
	i int
}

func (d *scanner) skipSpace() int {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return d.i
		}
	}
	return d.i
}

// byte consumes c (after white space) if it is next.
func (d *scanner) byte(c byte) bool {
	if d.skipSpace() < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// plainKey reads a string with no escapes (every envelope key).
func (d *scanner) plainKey() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		d.i++
	}
	return nil, false
}

// value moves past one JSON value: a string, an object or array (by
// nesting depth, strings skipped whole), or a literal or number.
func (d *scanner) value() bool {
	if d.skipSpace() >= len(d.b) {
		return false
	}
	switch d.b[d.i] {
	case '"':
		return d.str()
	case '{', '[':
		depth := 0
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case '"':
				if !d.str() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			d.i++
			if depth == 0 {
				return true
			}
		}
		return false
	default:
		start := d.i
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return d.i > start
			}
			d.i++
		}
		return d.i > start
	}
}

// str moves past a string token, escapes included.
func (d *scanner) str() bool {
	d.i++ // the opening quote
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case '\\':
			d.i += 2
			continue
		case '"':
			d.i++
			return true
		}
		d.i++
	}
	return false
}
