package cmdrun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestExecExitCodeIsNotAnError(t *testing.T) {
	res, err := Exec{}.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || strings.TrimSpace(string(res.Stdout)) != "out" || strings.TrimSpace(string(res.Stderr)) != "err" {
		t.Fatalf("got %+v", res)
	}
}

func TestExecNotFound(t *testing.T) {
	_, err := Exec{}.Run(context.Background(), Cmd{Name: "/nonexistent/prog"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	start := time.Now()
	_, err := Exec{}.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "sleep 30 & sleep 30"}, Timeout: 200 * time.Millisecond})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not enforced")
	}
}

func TestExecStdinIsDevNull(t *testing.T) {
	res, err := Exec{}.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "cat; echo done"}, Timeout: 5 * time.Second})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "done" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestFakeLongestPrefix(t *testing.T) {
	f := &Fake{Responses: map[string]FakeResponse{
		"apt-get":         {Result: Result{ExitCode: 1}},
		"apt-get install": {Result: Result{ExitCode: 100}},
	}}
	r, _ := f.Run(context.Background(), Cmd{Name: "apt-get", Args: []string{"install", "-y", "x"}})
	if r.ExitCode != 100 {
		t.Fatalf("exit %d", r.ExitCode)
	}
	if got := f.Lines(); len(got) != 1 || got[0] != "apt-get install -y x" {
		t.Fatalf("lines %v", got)
	}
}

// childEnv runs env(1) through Exec and returns what the child saw.
func childEnv(t *testing.T, e Exec, extra ...string) map[string]string {
	t.Helper()
	res, err := e.Run(context.Background(), Cmd{Name: "env", Env: extra, Timeout: 10 * time.Second})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("env: %v %+v", err, res)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	return got
}

// TestExecPassesOnlyTheAllowList: what changes how a program is loaded
// (LD_*, PYTHON*, PERL5*, BASH_ENV …) or what it prints (the agent's
// locale) never reaches a command; the search path, home and temporary
// directories and the proxies in both spellings do, and the caller's Env
// comes last.
func TestExecPassesOnlyTheAllowList(t *testing.T) {
	blocked := map[string]string{
		"LD_PRELOAD":       "/nonexistent/libinject.so",
		"LD_LIBRARY_PATH":  "/nonexistent/lib",
		"LD_AUDIT":         "/nonexistent/audit.so",
		"PYTHONPATH":       "/nonexistent/python",
		"PYTHONHOME":       "/nonexistent/pyhome",
		"PYTHONSTARTUP":    "/nonexistent/startup.py",
		"PERL5LIB":         "/nonexistent/perl",
		"PERL5OPT":         "-Mstrict",
		"BASH_ENV":         "/nonexistent/bashenv",
		"ENV":              "/nonexistent/env",
		"GCONV_PATH":       "/nonexistent/gconv",
		"LC_ALL":           "de_DE.UTF-8",
		"LANGUAGE":         "de",
		"LANG":             "de_DE.UTF-8",
		"DEBIAN_FRONTEND":  "dialog",
		"SSH_AUTH_SOCK":    "/tmp/agent.sock",
		"AZURE_GUEST_TEST": "x",
	}
	passed := map[string]string{
		"PATH":        "/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":        "/root",
		"TMPDIR":      "/var/tmp",
		"http_proxy":  "http://proxy.example:3128",
		"https_proxy": "http://proxy.example:3129",
		"no_proxy":    "localhost,169.254.169.254",
		"HTTP_PROXY":  "http://PROXY.example:3128",
		"HTTPS_PROXY": "http://PROXY.example:3129",
		"NO_PROXY":    "LOCALHOST",
	}
	for k, v := range blocked {
		t.Setenv(k, v)
	}
	for k, v := range passed {
		t.Setenv(k, v)
	}
	for name, e := range map[string]Exec{
		"os environment": {},
		"given getenv":   {Getenv: os.Getenv},
	} {
		got := childEnv(t, e, "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
		for k := range blocked {
			if v, ok := got[k]; ok && v == blocked[k] {
				t.Errorf("%s: %s=%s reached the command", name, k, v)
			}
		}
		for k, v := range passed {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, got[k], v)
			}
		}
		if got["LANG"] != "C" || got["DEBIAN_FRONTEND"] != "noninteractive" || got["LC_ALL"] != "C" {
			t.Errorf("%s: LANG=%q DEBIAN_FRONTEND=%q LC_ALL=%q", name, got["LANG"], got["DEBIAN_FRONTEND"], got["LC_ALL"])
		}
	}
}

// TestExecDefaultPath: without a PATH (an agent service started with an
// empty environment) commands still get the usual search path; unset
// proxies are not passed as empty values.
func TestExecDefaultPath(t *testing.T) {
	env := map[string]string{"PATH": ""}
	got := childEnv(t, Exec{Getenv: func(k string) string { return env[k] }})
	if got["PATH"] != DefaultPath {
		t.Errorf("PATH=%q", got["PATH"])
	}
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HOME", "TMPDIR"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s passed although unset", k)
		}
	}
}

// TestExecSensitiveOutputIsNotLogged: the output of a failing command
// marked Sensitive (openssl decrypting protected settings) never reaches
// the log; other failing commands keep their output there.
func TestExecSensitiveOutputIsNotLogged(t *testing.T) {
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.DebugLevel)
	// The secret comes on stdin, so that only the output can carry it.
	script := []string{"-c", `read -r l; echo "$l"; echo "near $l-err" >&2; exit 4`}
	secret := func() *strings.Reader { return strings.NewReader(`{"password":"s3cr3t"}` + "\n") }
	res, err := Exec{Log: log}.Run(context.Background(), Cmd{Name: "sh", Args: script, Stdin: secret(), Sensitive: true})
	if err != nil || res.ExitCode != 4 || !strings.Contains(string(res.Stdout), "s3cr3t") {
		t.Fatalf("%+v %v", res, err)
	}
	if out := buf.String(); strings.Contains(out, "s3cr3t") || !strings.Contains(out, "command failed") {
		t.Errorf("log of a sensitive command:\n%s", out)
	}
	buf.Reset()
	if _, err := (Exec{Log: log}).Run(context.Background(), Cmd{Name: "sh", Args: script, Stdin: secret()}); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "near ") || !strings.Contains(out, "s3cr3t") {
		t.Errorf("log of an ordinary failing command lacks its output:\n%s", out)
	}
}
