package loopback

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestOnlyLoopbackIsReachable: inside Main, loopback works and any other
// address fails at once (no route), instead of reaching the network.
func TestOnlyLoopbackIsReachable(t *testing.T) {
	if err := Isolated(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	resp.Body.Close()
	// 192.0.2.1 (TEST-NET-1) and the metadata service: with a network they
	// would be routed (and time out); here there is no route at all.
	for _, addr := range []string{"192.0.2.1:443", "169.254.169.254:80", "[2001:db8::1]:443"} {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s reachable", addr)
			continue
		}
		if !errors.Is(err, syscall.ENETUNREACH) || time.Since(start) > time.Second {
			t.Errorf("%s: %v after %s, want an immediate ENETUNREACH", addr, err, time.Since(start))
		}
	}
	if _, err := net.LookupHost("packages.microsoft.com"); err == nil {
		t.Error("packages.microsoft.com resolved")
	}
}

// namespaceTiers build their own isolated networks (test/sandbox) and need
// the machine's network to build the image; every other package with tests
// runs them through Main.
var namespaceTiers = []string{"test/bench", "test/demo", "test/e2e", "test/faults", "test/sandbox"}

// TestEveryUnitPackageIsGuarded: a package with tests outside the
// namespace tiers has a TestMain that calls loopback.Main, so no new test
// can reach the network either.
func TestEveryUnitPackageIsGuarded(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	testDirs := map[string]bool{}
	guarded := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		testDirs[rel] = true
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "TestMain" || fn.Recv != nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch f := call.Fun.(type) {
				case *ast.SelectorExpr:
					if x, ok := f.X.(*ast.Ident); ok && x.Name == "loopback" && f.Sel.Name == "Main" {
						guarded[rel] = true
					}
				case *ast.Ident:
					if rel == "test/loopback" && f.Name == "Main" {
						guarded[rel] = true
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(testDirs) < 10 {
		t.Fatalf("only %d packages with tests found under %s", len(testDirs), root)
	}
	for dir := range testDirs {
		tier := slices.Contains(namespaceTiers, filepath.ToSlash(dir))
		switch {
		case tier && guarded[dir]:
			t.Errorf("%s builds its own networks but calls loopback.Main", dir)
		case !tier && !guarded[dir]:
			t.Errorf("%s has tests but no TestMain calling loopback.Main (add main_test.go: func TestMain(m *testing.M) { os.Exit(loopback.Main(m)) })", dir)
		}
	}
}
