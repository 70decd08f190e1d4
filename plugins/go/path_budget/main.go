// path_budget: latency budgets per path. It matches a string field of the
// event's data (the request path) against the configured regular
// expressions, in order; when the first that matches has a budget the
// event's latency exceeds, it emits an alert. Events whose path matches no
// pattern, or that lack the fields, are left alone; fields of the wrong
// type fail the invocation.
//
// Config (router.toml):
//
//	[plugin.path_budget]
//	config = { emit = "alerts.PathOverBudget", budgets = [
//	    { pattern = "^/deals/", ms = 300 },
//	    { pattern = "^/api/", ms = 100 },
//	] }
//
// `path` and `latency` name the data fields ("path" and "latency_ms" by
// default). The expressions are compiled once per instance, when the
// config arrives, and kept while the host reuses the instance.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	sy "switchyard"
)

type budget struct {
	Pattern string  `json:"pattern"`
	MS      float64 `json:"ms"`
	re      *regexp.Regexp
}

type config struct {
	Path    string   `json:"path"`
	Latency string   `json:"latency"`
	Emit    string   `json:"emit"`
	Budgets []budget `json:"budgets"`
}

// settings is the config of this instance, checked and compiled.
var settings config

func init() {
	sy.HandleConfig(configure)
	sy.Handle(handle)
}

// main is never called in a c-shared (reactor) build, but package main
// needs one.
func main() {}

func configure(json.RawMessage) error {
	c := config{Path: "path", Latency: "latency_ms", Emit: "alerts.PathOverBudget"}
	if err := sy.ConfigAs(&c); err != nil {
		return err
	}
	if len(c.Budgets) == 0 {
		return errors.New(`bad plugin config: "budgets" must list at least one {pattern, ms}`)
	}
	for i := range c.Budgets {
		re, err := regexp.Compile(c.Budgets[i].Pattern)
		if err != nil {
			return fmt.Errorf("bad plugin config: budgets[%d].pattern: %w", i, err)
		}
		c.Budgets[i].re = re
	}
	settings = c
	return nil
}

func handle(ev *sy.Event) error {
	var data map[string]json.RawMessage
	if err := ev.DataAs(&data); err != nil {
		return err
	}
	rawPath, hasPath := data[settings.Path]
	rawLatency, hasLatency := data[settings.Latency]
	if !hasPath || !hasLatency {
		sy.Logf(sy.LevelDebug, "%s %s: no data.%s or data.%s", ev.Name, ev.ID, settings.Path, settings.Latency)
		return nil
	}
	var path string
	if err := json.Unmarshal(rawPath, &path); err != nil {
		return fmt.Errorf("%s %s: data.%s is not a string", ev.Name, ev.ID, settings.Path)
	}
	var latency float64
	if err := json.Unmarshal(rawLatency, &latency); err != nil {
		return fmt.Errorf("%s %s: data.%s is not a number", ev.Name, ev.ID, settings.Latency)
	}
	for _, b := range settings.Budgets {
		if !b.re.MatchString(path) {
			continue
		}
		if latency <= b.MS {
			return nil
		}
		sy.Logf(sy.LevelWarn, "%s %s: %s took %g ms, over its budget of %g ms", ev.Name, ev.ID, path, latency, b.MS)
		return sy.Emit(settings.Emit, map[string]any{
			"path": path, "latency_ms": latency, "budget_ms": b.MS, "pattern": b.Pattern,
			"event": ev.Name, "event_id": ev.ID,
		})
	}
	return nil
}
