package junction_test

import (
	"bytes"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goFiles returns every .go file in the module's package directories.
func goFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, dir := range packageDirs(t) {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no Go files found: the walk is broken")
	}
	return files
}

// TestGofmt is `gofmt -l` over the module: every file is formatted.
func TestGofmt(t *testing.T) {
	for _, name := range goFiles(t) {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out, err := format.Source(src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(src, out) {
			t.Errorf("%s is not gofmt-formatted; run gofmt -w %s", name, name)
		}
	}
}

// forbidden reports why the call sel (package path pkg, function fn) may not
// appear in a file, or "".
func forbidden(pkg, fn string, test bool) string {
	switch {
	case pkg == "log":
		return "use the *slog.Logger passed in, not the standard log package"
	case pkg == "fmt" && strings.HasPrefix(fn, "Print") && !test: // Example tests print
		return "no fmt.Print*: write to an io.Writer or log through slog"
	case pkg == "log/slog" && !test && (fn == "Default" || fn == "SetDefault" ||
		fn == "Debug" || fn == "Info" || fn == "Warn" || fn == "Error" || fn == "Log" || fn == "LogAttrs" ||
		fn == "DebugContext" || fn == "InfoContext" || fn == "WarnContext" || fn == "ErrorContext"):
		return "no slog.Default: use the *slog.Logger passed in"
	case pkg == "sync/atomic" && !strings.HasPrefix(fn, "Pointer") && !isAtomicType(fn):
		return "no raw atomics: use the sync/atomic types (atomic.Int64, ...)"
	}
	return ""
}

func isAtomicType(name string) bool {
	switch name {
	case "Bool", "Int32", "Int64", "Uint32", "Uint64", "Uintptr", "Value":
		return true
	}
	return false
}

// TestLint scans every file outside cmd/ for calls STYLE.md forbids in
// library code: the standard log package, fmt.Print*, the default slog
// logger, print/println, and raw atomic functions.
func TestLint(t *testing.T) {
	fset := token.NewFileSet()
	for _, name := range goFiles(t) {
		if strings.HasPrefix(filepath.ToSlash(name), "cmd/") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		test := strings.HasSuffix(name, "_test.go")
		imports := map[string]string{} // local name -> path
		for _, is := range f.Imports {
			path, _ := strconv.Unquote(is.Path.Value)
			local := path[strings.LastIndex(path, "/")+1:]
			if is.Name != nil {
				local = is.Name.Name
			}
			imports[local] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				id, ok := n.X.(*ast.Ident)
				if !ok {
					return true
				}
				if path, ok := imports[id.Name]; ok {
					if why := forbidden(path, n.Sel.Name, test); why != "" {
						t.Errorf("%s: %s.%s: %s", fset.Position(n.Pos()), id.Name, n.Sel.Name, why)
					}
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "print" || id.Name == "println") {
					t.Errorf("%s: %s: builtin print is for debugging only", fset.Position(n.Pos()), id.Name)
				}
			}
			return true
		})
	}
}

// TestForbidden checks the lint rules on made-up calls.
func TestForbidden(t *testing.T) {
	for _, tc := range []struct {
		pkg, fn string
		test    bool
		bad     bool
	}{
		{"log", "Printf", false, true},
		{"log", "Fatal", true, true},
		{"fmt", "Println", false, true},
		{"fmt", "Printf", false, true},
		{"fmt", "Println", true, false},
		{"fmt", "Fprintf", false, false},
		{"fmt", "Errorf", false, false},
		{"log/slog", "Info", false, true},
		{"log/slog", "Default", false, true},
		{"log/slog", "New", false, false},
		{"log/slog", "String", false, false},
		{"log/slog", "Info", true, false},
		{"sync/atomic", "AddInt64", false, true},
		{"sync/atomic", "LoadUint32", true, true},
		{"sync/atomic", "Int64", false, false},
		{"sync/atomic", "Pointer", false, false},
	} {
		if why := forbidden(tc.pkg, tc.fn, tc.test); (why != "") != tc.bad {
			t.Errorf("forbidden(%s.%s, test=%v) = %q, want bad=%v", tc.pkg, tc.fn, tc.test, why, tc.bad)
		}
	}
}
