// classify: names the class of a request. It matches a string field of the
// event's data against the configured regular expressions, in order, and
// emits an event with the first class that matches (or "other"). Events
// without the field are left alone; a field that is not a string fails the
// invocation.
//
// Config (router.toml):
//
//	[plugin.classify]
//	config = { field = "path", emit = "web.Classified", classes = [
//	    { class = "deals", pattern = "^/deals/" },
//	    { class = "api", pattern = "^/api/" },
//	] }
//
// The expressions are compiled once per instance, when the config arrives,
// and kept while the host reuses the instance.
package main

import (
	"encoding/json"
	"fmt"
	"regexp"

	sy "switchyard"
)

type class struct {
	Class   string `json:"class"`
	Pattern string `json:"pattern"`
	re      *regexp.Regexp
}

type config struct {
	Field   string  `json:"field"`
	Emit    string  `json:"emit"`
	Classes []class `json:"classes"`
}

// settings is the config of this instance, checked and compiled.
var settings config

func init() {
	sy.HandleConfig(configure)
	sy.Handle(handle)
}

func main() {}

func configure(json.RawMessage) error {
	c := config{Field: "path", Emit: "web.Classified"}
	if err := sy.ConfigAs(&c); err != nil {
		return err
	}
	for i := range c.Classes {
		re, err := regexp.Compile(c.Classes[i].Pattern)
		if err != nil {
			return fmt.Errorf("bad plugin config: classes[%d].pattern: %w", i, err)
		}
		c.Classes[i].re = re
	}
	settings = c
	return nil
}

func handle(ev *sy.Event) error {
	var data map[string]json.RawMessage
	if err := ev.DataAs(&data); err != nil {
		return err
	}
	raw, ok := data[settings.Field]
	if !ok {
		sy.Logf(sy.LevelDebug, "%s %s: no data.%s", ev.Name, ev.ID, settings.Field)
		return nil
	}
	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return fmt.Errorf("%s %s: data.%s is not a string", ev.Name, ev.ID, settings.Field)
	}
	name := "other"
	for _, c := range settings.Classes {
		if c.re.MatchString(value) {
			name = c.Class
			break
		}
	}
	sy.Logf(sy.LevelDebug, "%s %s: %s is %s", ev.Name, ev.ID, value, name)
	return sy.Emit(settings.Emit, map[string]any{
		"class": name, settings.Field: value, "event": ev.Name, "event_id": ev.ID,
	})
}
