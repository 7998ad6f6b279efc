package cmdrun

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
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
