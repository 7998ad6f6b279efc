package agentsim

import (
	"archive/zip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testName = "Test.Publisher.FakeHandler"

// fakeScript records every call (version, verb, cwd; argv; environment)
// under REC and exits with the code in REC/exit.<version>.<verb>; enable
// writes a success status for ConfigSequenceNumber and mrseq (relative to
// its cwd). REC/out.* and REC/err.* are copied to stdout/stderr.
const fakeScript = `#!/bin/sh
REC='@REC@'
VER='@VER@'
verb="$1"
n=$(( $(cat "$REC/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$REC/count"
printf '%s %s %s\n' "$VER" "$verb" "$(pwd)" >> "$REC/calls"
printf '%s\n' "$0" "$@" > "$REC/$n.argv"
env -0 > "$REC/$n.env"
if [ "$verb" = enable ]; then
  printf '[{"version":1,"status":{"operation":"Enable","status":"success","formattedMessage":{"lang":"en","message":"%s"}}}]' "$VER" > "status/$ConfigSequenceNumber.status"
  echo "$ConfigSequenceNumber" > mrseq
fi
[ -f "$REC/out.$VER.$verb" ] && cat "$REC/out.$VER.$verb"
[ -f "$REC/err.$VER.$verb" ] && cat "$REC/err.$VER.$verb" >&2
code=0
[ -f "$REC/exit.$VER.$verb" ] && code=$(cat "$REC/exit.$VER.$verb")
exit "$code"
`

type fixture struct {
	t   *testing.T
	a   *Agent
	rec string
	tmp string
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tmp := t.TempDir()
	f := &fixture{t: t, tmp: tmp, rec: filepath.Join(tmp, "rec")}
	for _, d := range []string{f.rec, filepath.Join(tmp, "lib"), filepath.Join(tmp, "log"), filepath.Join(tmp, "zips")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.a = &Agent{LibDir: filepath.Join(tmp, "lib"), LogDir: filepath.Join(tmp, "log"), Log: testLog{t}}
	return f
}

type manifestOpts struct {
	updateMode string // "" = absent
	cont       string // continueOnUpdateFailure JSON value, "" = absent
	bom        bool
	extra      string // extra handlerManifest members, e.g. `"reportHeartbeat": "TRUE",`
	enableCmd  string
}

func manifestJSON(o manifestOpts) string {
	var b strings.Builder
	if o.bom {
		b.WriteString("\ufeff")
	}
	enable := o.enableCmd
	if enable == "" {
		enable = "/handler.sh enable" // leading "/" must be stripped
	}
	b.WriteString(`[{"version": 1.0, "handlerManifest": {`)
	b.WriteString(`"installCommand": "./handler.sh install", "uninstallCommand": "handler.sh uninstall", `)
	b.WriteString(`"updateCommand": "handler.sh update", "enableCommand": "` + enable + `", "disableCommand": "handler.sh disable", `)
	b.WriteString(o.extra)
	if o.updateMode != "" {
		b.WriteString(`"updateMode": "` + o.updateMode + `", `)
	}
	if o.cont != "" {
		b.WriteString(`"continueOnUpdateFailure": ` + o.cont + `, `)
	}
	b.WriteString(`"rebootAfterInstall": false}}]`)
	return b.String()
}

type zipEntry struct {
	name    string
	body    string
	mode    fs.FileMode
	symlink bool
}

// zip writes <tmp>/zips/<Name>-<version>.zip with the fake script and the
// manifest, plus extra entries.
func (f *fixture) zip(version string, o manifestOpts, extra ...zipEntry) string {
	f.t.Helper()
	script := strings.ReplaceAll(strings.ReplaceAll(fakeScript, "@REC@", f.rec), "@VER@", version)
	entries := append([]zipEntry{
		{name: "HandlerManifest.json", body: manifestJSON(o), mode: 0o644},
		{name: "handler.sh", body: script, mode: 0o755},
	}, extra...)
	return f.writeZip(fmt.Sprintf("%s-%s.zip", testName, version), entries)
}

func (f *fixture) writeZip(name string, entries []zipEntry) string {
	f.t.Helper()
	p := filepath.Join(f.tmp, "zips", name)
	out, err := os.Create(p)
	if err != nil {
		f.t.Fatal(err)
	}
	zw := zip.NewWriter(out)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Now()}
		mode := e.mode
		if e.symlink {
			mode = fs.ModeSymlink | 0o777
		}
		if strings.HasSuffix(e.name, "/") {
			mode = fs.ModeDir | 0o755
		}
		hdr.SetMode(mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		f.t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) setFile(name, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.rec, name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) setExit(version string, verb Verb, code int) {
	f.setFile(fmt.Sprintf("exit.%s.%s", version, verb), strconv.Itoa(code))
}

func (f *fixture) clearExit(version string, verb Verb) {
	_ = os.Remove(filepath.Join(f.rec, fmt.Sprintf("exit.%s.%s", version, verb)))
}

// calls returns the recorded "<version> <verb> <cwd>" lines.
func (f *fixture) calls() []string {
	b, err := os.ReadFile(filepath.Join(f.rec, "calls"))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (f *fixture) resetCalls() {
	for _, n := range []string{"calls", "count"} {
		_ = os.Remove(filepath.Join(f.rec, n))
	}
}

// env returns the environment of the n-th recorded call without the
// variables the shell adds itself.
func (f *fixture) env(n int) map[string]string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.rec, strconv.Itoa(n)+".env"))
	if err != nil {
		f.t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PWD", "OLDPWD", "SHLVL", "_":
			continue
		}
		m[k] = v
	}
	return m
}

func (f *fixture) argv(n int) []string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.rec, strconv.Itoa(n)+".argv"))
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func (f *fixture) dir(version string) string {
	return filepath.Join(f.a.LibDir, testName+"-"+version)
}

// wantEnv is the exact environment of a command (agent variables plus the
// default BaseEnv), with extra variables.
func (f *fixture) wantEnv(version string, seq int, extra map[string]string) map[string]string {
	m := map[string]string{
		EnvExtensionPath:     f.dir(version),
		EnvExtensionVersion:  version,
		EnvSeqNo:             strconv.Itoa(seq),
		EnvWireServer:        "168.63.129.16",
		EnvSupportedFeatures: SupportedFeatures,
		"PATH":               "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func assertCalls(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n got: %q\nwant: %q", got, want)
	}
}

func assertEnv(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			t.Errorf("%s: %s = %q (present %v), want %q", what, k, gv, ok, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected variable %s=%q", what, k, v)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
