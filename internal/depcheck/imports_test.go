// Package depcheck holds the import policy of the module as a test, in the
// manner of go/build's deps_test.go: the dependency direction is the
// architecture, so a change that breaks it fails here.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/networkcluster/networkcluster"

// allowed lists, for each package of the module, the only non-standard
// packages it may import directly (prefix match). Packages of the module not
// listed here may import anything but must be listed to be checked.
var allowed = map[string][]string{
	"frame":          {},
	"internal/proto": {},
	"compress":       {"github.com/klauspost/compress/", "github.com/gobwas/httphead"},
	"poller":         {mod + "/frame", "github.com/cloudwego/netpoll"},
	"provider": {
		mod + "/frame", mod + "/compress", mod + "/poller", mod + "/internal/",
		"github.com/gobwas/ws", "github.com/gobwas/httphead", "github.com/google/uuid",
	},
	"consumer": {
		mod + "/frame", mod + "/compress", mod + "/internal/",
		"github.com/gobwas/ws", "github.com/gobwas/httphead",
	},
	// The cluster layer builds on the Provider's public API and imports no
	// broker implementation (NATS lives in the nested module
	// cluster/natsbroker).
	"cluster": {mod + "/provider"},
	// The harness uses only the public API.
	"loadtest": {mod + "/provider", mod + "/consumer", mod + "/frame", mod + "/compress"},
}

// stdlibOnly lists packages whose whole dependency graph must be the
// standard library.
var stdlibOnly = []string{"frame", "internal/proto"}

type pkg struct {
	path    string
	imports []string
	deps    []string
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-f",
		"{{.ImportPath}}|{{join .Imports \",\"}}|{{join .Deps \",\"}}", mod+"/...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("unexpected go list line %q", line)
		}
		pkgs[f[0]] = pkg{path: f[0], imports: split(f[1]), deps: split(f[2])}
	}
	return pkgs
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".") && p != "C"
}

func TestImportPolicy(t *testing.T) {
	pkgs := list(t)
	for rel, allow := range allowed {
		p, ok := pkgs[mod+"/"+rel]
		if !ok {
			continue // not written yet
		}
		for _, imp := range p.imports {
			if isStd(imp) {
				continue
			}
			ok := false
			for _, a := range allow {
				if imp == strings.TrimSuffix(a, "/") || strings.HasPrefix(imp, a) ||
					strings.HasPrefix(imp, a+"/") {
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("%s imports %s, which the architecture does not allow", rel, imp)
			}
		}
	}
	for _, rel := range stdlibOnly {
		p, ok := pkgs[mod+"/"+rel]
		if !ok {
			continue
		}
		for _, d := range p.deps {
			if !isStd(d) {
				t.Errorf("%s depends on %s; it must use only the standard library", rel, d)
			}
		}
	}
	// provider and consumer never import each other, directly or not.
	for _, pair := range [][2]string{{"provider", "consumer"}, {"consumer", "provider"}, {"poller", "provider"},
		{"provider", "cluster"}, {"consumer", "cluster"}, {"poller", "cluster"}} {
		p, ok := pkgs[mod+"/"+pair[0]]
		if !ok {
			continue
		}
		for _, d := range p.deps {
			if d == mod+"/"+pair[1] {
				t.Errorf("%s depends on %s", pair[0], pair[1])
			}
		}
	}
}

// TestEveryPackageHasAPolicy fails when a package is added to the module
// without a line in allowed, so the policy cannot silently fall behind.
func TestEveryPackageHasAPolicy(t *testing.T) {
	for path := range list(t) {
		rel := strings.TrimPrefix(path, mod+"/")
		if rel == path || strings.HasPrefix(rel, "internal/") || strings.HasPrefix(rel, "examples/") {
			continue
		}
		if _, ok := allowed[rel]; !ok {
			t.Errorf("package %s has no import policy in allowed", rel)
		}
	}
}

// TestNoBrokerInMainModule: users who do not cluster never download a
// broker client. The main module requires no nats-io module (the NATS
// broker is the nested module cluster/natsbroker), and nothing in it
// depends on one.
func TestNoBrokerInMainModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "all").Output()
	if err != nil {
		t.Fatalf("go list -m all: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "nats-io/") {
			t.Errorf("the main module requires %s", line)
		}
	}
	for path, p := range list(t) {
		for _, d := range p.deps {
			if strings.Contains(d, "nats-io/") {
				t.Errorf("%s depends on %s", path, d)
			}
		}
	}
}
