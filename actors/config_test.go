package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// Zero settings take their defaults; negative ones are refused, never
// replaced by a default (issue 12).
func TestConfigRefusesNegatives(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	base := func() Config {
		return Config{Pipeline: load(t, `return { parse = eddy.lines() }`), Source: &memio.Source{}, Store: store}
	}
	tests := []struct {
		name        string
		set         func(*Config)
		errContains string
	}{
		{"trigger", func(c *Config) { c.TriggerInterval = -time.Second }, "Config.TriggerInterval is -1s: want a positive value, or 0 for the default"},
		{"checkpoint", func(c *Config) { c.CheckpointInterval = -5 * time.Second }, "Config.CheckpointInterval is -5s"},
		{"shards", func(c *Config) { c.Shards = -1 }, "Config.Shards is -1"},
		{"workers", func(c *Config) { c.Workers = -3 }, "Config.Workers is -3"},
		{"standby", func(c *Config) { c.Standby = -1 }, "Config.Standby is -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.set(&c)
			if err := c.validate(); err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
	c := base()
	if err := c.validate(); err != nil || c.TriggerInterval != time.Second || c.CheckpointInterval != 5*time.Second || c.Workers < 1 || c.Shards < 1 {
		t.Fatalf("defaults: %v %+v", err, c)
	}
}
