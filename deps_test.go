package junction_test

import (
	"bufio"
	"errors"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mod is this module's path; TestModulePath keeps it in step with go.mod.
const mod = "github.com/junction-broker/junction/"

// under reports whether package path p is dir (relative to the module) or
// below it.
func under(p, dir string) bool { return strings.HasPrefix(p+"/", mod+dir+"/") }

// adapter returns the protocol adapter package p belongs to, or "".
func adapter(p string) string {
	for _, a := range []string{"amqp", "mqtt", "stomp"} {
		if under(p, "protocols/"+a) {
			return a
		}
	}
	return ""
}

// codec reports whether p is a pure codec package.
func codec(p string) bool {
	return under(p, "protocols/amqp/frame") || under(p, "protocols/mqtt/packet") || under(p, "protocols/stomp/frame")
}

// stdlib reports whether import path imp is in the standard library.
func stdlib(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return imp != "C" && !strings.Contains(first, ".")
}

// testOnly are modules any package's tests may use (STYLE §6).
var testOnly = []string{"github.com/google/go-cmp/"}

// violation reports why package pkg may not import imp (test says the import
// is only in pkg's _test.go files), or "" if it may. It is the package map of
// STYLE.md §1 as code.
func violation(pkg, imp string, test bool) string {
	switch {
	case under(pkg, "router") && (under(imp, "protocols") || under(imp, "storage/pebblestore")):
		return "router knows no protocol and no storage engine"
	case adapter(pkg) != "" && adapter(imp) != "" && adapter(pkg) != adapter(imp):
		return "protocol adapters never import each other"
	case strings.HasPrefix(imp, "github.com/panjf2000/gnet") && !under(pkg, "protocols/transport"):
		return "only protocols/transport touches gnet"
	case strings.HasPrefix(imp, "github.com/cockroachdb/pebble") && !under(pkg, "storage/pebblestore"):
		return "only storage/pebblestore touches Pebble"
	case under(pkg, "protocols/transport") && (adapter(imp) != "" || under(imp, "router") || under(imp, "storage")):
		return "protocols/transport knows only the protocols contracts, not adapters, router or storage"
	}

	// Packages limited to the standard library (plus one named exception).
	var only, why string
	switch {
	case pkg == mod+"conf":
		only, why = "github.com/BurntSushi/toml", "conf imports only the standard library and its TOML decoder"
	case pkg == mod+"storage":
		why = "storage (the interfaces) imports only the standard library"
	case pkg == mod+"protocols":
		why = "protocols (the transport-adapter contracts) imports only the standard library"
	case under(pkg, "protocols/mqtt/packet"):
		only, why = "github.com/mochi-mqtt/server/v2/packets", "codecs import only the standard library (MQTT: and mochi's packets)"
	case under(pkg, "protocols/stomp/frame"):
		// DESIGN.md §7: go-stomp's frame types and constants, our own framer.
		only, why = "github.com/go-stomp/stomp/v3/frame", "codecs import only the standard library (STOMP: and go-stomp's frame types)"
	case codec(pkg):
		why = "codecs import only the standard library"
	default:
		return ""
	}
	switch {
	case stdlib(imp), only != "" && (imp == only || strings.HasPrefix(imp, only+"/")):
		return ""
	case test && (strings.HasPrefix(imp+"/", pkg+"/") || slices.ContainsFunc(testOnly, func(p string) bool { return strings.HasPrefix(imp, p) })):
		return "" // tests may import the package itself, its sub-packages and test libraries
	}
	return why
}

// TestViolation checks the checker on made-up imports, so that a broken rule
// cannot pass silently.
func TestViolation(t *testing.T) {
	const (
		router      = mod + "router"
		routerSub   = mod + "router/internal/trie"
		storage     = mod + "storage"
		storetest   = mod + "storage/storetest"
		pebblestore = mod + "storage/pebblestore"
		protocols   = mod + "protocols"
		transport   = mod + "protocols/transport"
		amqp        = mod + "protocols/amqp"
		amqpFrame   = mod + "protocols/amqp/frame"
		mqtt        = mod + "protocols/mqtt"
		mqttPacket  = mod + "protocols/mqtt/packet"
		stomp       = mod + "protocols/stomp"
		stompFrame  = mod + "protocols/stomp/frame"
		conf        = mod + "conf"
		cmd         = mod + "cmd/junction"
		pebble      = "github.com/cockroachdb/pebble/v2"
		pebbleVFS   = "github.com/cockroachdb/pebble/v2/vfs"
		gnet        = "github.com/panjf2000/gnet/v2"
		toml        = "github.com/BurntSushi/toml"
		mochi       = "github.com/mochi-mqtt/server/v2/packets"
		mochiServer = "github.com/mochi-mqtt/server/v2"
		goStomp     = "github.com/go-stomp/stomp/v3/frame"
		cmp         = "github.com/google/go-cmp/cmp"
	)
	for _, tc := range []struct {
		pkg, imp string
		test     bool
		bad      bool
	}{
		// router
		{router, storage, false, false},
		{router, "sync", false, false},
		{router, amqp, false, true},
		{router, protocols, false, true},
		{router, transport, true, true},
		{router, pebblestore, false, true},
		{router, pebblestore, true, true},
		{router, pebble, false, true},
		{routerSub, mqttPacket, false, true},
		{router, storetest, true, false},
		{mod + "routerx", amqp, false, false}, // a prefix of a name is not under it
		// adapters
		{amqp, mqtt, false, true},
		{mqtt, stomp + "/internal/x", true, true},
		{stompFrame, amqpFrame, false, true},
		{amqp, amqpFrame, false, false},
		{amqp, router, false, false},
		{amqp, storage, false, false},
		{amqp, protocols, false, false},
		{amqp, gnet, false, true},
		{amqp, pebble, true, true},
		// transport
		{transport, gnet, false, false},
		{transport + "/internal/loop", gnet, false, false},
		{transport, protocols, false, false},
		{transport, amqp, false, true},
		{transport, router, false, true},
		{transport, storage, false, true},
		{protocols, gnet, false, true},
		{cmd, gnet, false, true},
		// storage
		{pebblestore, pebble, false, false},
		{pebblestore, pebbleVFS, true, false},
		{pebblestore, storage, false, false},
		{storage, pebble, false, true},
		{storage, "errors", false, false},
		{storage, toml, false, true},
		{storage, storetest, false, true},
		{storage, storetest, true, false},
		{storage, cmp, true, false},
		{storage, cmp, false, true},
		{storetest, storage, false, false},
		{storage, "C", false, true},
		// conf
		{conf, toml, false, false},
		{conf, toml + "/internal", false, false},
		{conf, "log/slog", false, false},
		{conf, router, false, true},
		{conf, "github.com/spf13/pflag", false, true},
		{conf, pebble, false, true},
		// codecs
		{amqpFrame, "encoding/binary", false, false},
		{amqpFrame, router, false, true},
		{amqpFrame, amqp, false, true},
		{amqpFrame, amqpFrame + "/internal", true, false},
		{mqttPacket, mochi, false, false},
		{mqttPacket, mochiServer, false, true},
		{amqpFrame, mochi, false, true},
		{stompFrame, goStomp, false, false},
		{stompFrame, "github.com/go-stomp/stomp/v3", false, true},
		{stompFrame, cmp, true, false},
		{protocols, "net", false, false},
		{protocols, router, false, true},
		// cmd wires everything
		{cmd, pebblestore, false, false},
		{cmd, router, false, false},
		{cmd, amqp, false, false},
		{cmd, conf, false, false},
	} {
		why := violation(tc.pkg, tc.imp, tc.test)
		if (why != "") != tc.bad {
			t.Errorf("violation(%q, %q, test=%v) = %q, want bad=%v", strings.TrimPrefix(tc.pkg, mod), tc.imp, tc.test, why, tc.bad)
		}
	}
}

// TestModulePath keeps mod in step with go.mod.
func TestModulePath(t *testing.T) {
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "module "); ok {
			if strings.TrimSpace(p)+"/" != mod {
				t.Fatalf("go.mod says module %s; deps_test.go has %s", p, mod)
			}
			return
		}
	}
	t.Fatal("go.mod has no module line")
}

// packageDirs returns the directories of this module that may hold Go
// packages: everything but hidden and underscore directories, testdata, and
// nested modules (interop/, bench/).
func packageDirs(t testing.TB) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." {
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		dirs = append(dirs, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestPackageMap applies violation to every import of every package in the
// module, test imports included, under the default build context and with
// the invariants tag.
func TestPackageMap(t *testing.T) {
	ctxs := []build.Context{build.Default, build.Default}
	ctxs[1].BuildTags = append(slices.Clone(ctxs[1].BuildTags), "invariants")
	pkgs := 0
	reported := map[string]bool{}
	for _, dir := range packageDirs(t) {
		pkg := strings.TrimSuffix(mod+filepath.ToSlash(dir), "/.")
		for _, ctx := range ctxs {
			p, err := ctx.ImportDir(dir, 0)
			var noGo *build.NoGoError
			if errors.As(err, &noGo) {
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", dir, err)
				continue
			}
			pkgs++
			check := func(imps []string, test bool) {
				for _, imp := range imps {
					why := violation(pkg, imp, test)
					if msg := pkg + " imports " + imp + ": " + why; why != "" && !reported[msg] {
						reported[msg] = true
						t.Error(msg)
					}
				}
			}
			check(p.Imports, false)
			check(p.TestImports, true)
			check(p.XTestImports, true)
		}
	}
	if pkgs < 3 {
		t.Fatalf("checked only %d packages: the walk is broken", pkgs)
	}
}
