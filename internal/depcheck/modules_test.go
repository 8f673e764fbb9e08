package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// heavyModules are required only by nested modules (metrics/prom), never
// by the main module: a user of the core does not download them.
var heavyModules = []string{"github.com/prometheus/"}

func TestMainModuleRequirements(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "all").Output()
	if err != nil {
		t.Fatalf("go list -m all: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, h := range heavyModules {
			if strings.HasPrefix(line, h) {
				t.Errorf("the main module requires %s: only a nested module may", line)
			}
		}
	}
}
