package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

// realEnvironment has the shape the agent writes (and the real file of
// AADSSHLoginForLinux 1.0.2385.1).
const realEnvironment = `[{"name": "Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux", "version": 1.0, "handlerEnvironment": {"logFolder": "/var/log/azure/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux", "configFolder": "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.2385.1/config", "statusFolder": "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.2385.1/status", "heartbeatFile": "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.2385.1/heartbeat.log", "eventsFolder": "/var/log/azure/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux/events", "eventsFolder_preview": "/var/log/azure/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux/events"}}]`

func TestParseEnvironmentReal(t *testing.T) {
	for name, data := range map[string]string{
		"plain": realEnvironment,
		"bom":   "\ufeff" + realEnvironment,
		"space": "\n  " + realEnvironment + "\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			env, err := ParseEnvironment([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			base := "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.2385.1"
			want := Environment{
				LogFolder:     "/var/log/azure/" + HandlerName,
				ConfigFolder:  base + "/config",
				StatusFolder:  base + "/status",
				HeartbeatFile: base + "/heartbeat.log",
				EventsFolder:  "/var/log/azure/" + HandlerName + "/events",
			}
			if *env != want {
				t.Fatalf("got %+v\nwant %+v", *env, want)
			}
		})
	}
}

func TestParseEnvironmentEventsFallback(t *testing.T) {
	tests := []struct {
		name, env, want string
	}{
		{"preview only", `"eventsFolder_preview": "/ev/p"`, "/ev/p"},
		{"both", `"eventsFolder": "/ev/main", "eventsFolder_preview": "/ev/p"`, "/ev/main"},
		{"empty main", `"eventsFolder": "", "eventsFolder_preview": "/ev/p"`, "/ev/p"},
		{"null main", `"eventsFolder": null, "eventsFolder_preview": "/ev/p"`, "/ev/p"},
		{"none", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.env != "" {
				extra = ", " + tt.env
			}
			data := `[{"handlerEnvironment": {"logFolder": "/l", "configFolder": "/c", "statusFolder": "/s"` + extra + `}}]`
			env, err := ParseEnvironment([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			if env.EventsFolder != tt.want {
				t.Fatalf("EventsFolder = %q, want %q", env.EventsFolder, tt.want)
			}
			if env.HandlerDir != "" || env.LibDir() != "" {
				t.Fatalf("HandlerDir/LibDir set by ParseEnvironment: %+v", env)
			}
		})
	}
}

func TestParseEnvironmentBad(t *testing.T) {
	fields := func(s string) string { return `[{"handlerEnvironment": {` + s + `}}]` }
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "empty"},
		{"bom only", "\ufeff", "empty"},
		{"not json", "{{", "not a JSON array"},
		{"object", `{"handlerEnvironment": {}}`, "not a JSON array"},
		{"empty array", `[]`, "array is empty"},
		{"null", `null`, "array is empty"},
		{"element string", `["x"]`, "first element is not a JSON object"},
		{"element null", `[null]`, "first element is not a JSON object"},
		{"no handlerEnvironment", `[{"name": "x"}]`, "handlerEnvironment is missing"},
		{"handlerEnvironment array", `[{"handlerEnvironment": []}]`, "handlerEnvironment is not a JSON object"},
		{"handlerEnvironment null", `[{"handlerEnvironment": null}]`, "handlerEnvironment is not a JSON object"},
		{"missing config", fields(`"logFolder": "/l", "statusFolder": "/s"`), "configFolder is missing"},
		{"missing status", fields(`"logFolder": "/l", "configFolder": "/c"`), "statusFolder is missing"},
		{"missing log", fields(`"configFolder": "/c", "statusFolder": "/s"`), "logFolder is missing"},
		{"empty config", fields(`"logFolder": "/l", "configFolder": "", "statusFolder": "/s"`), "configFolder is missing"},
		{"config number", fields(`"logFolder": "/l", "configFolder": 5, "statusFolder": "/s"`), "configFolder is not a string"},
		{"status object", fields(`"logFolder": "/l", "configFolder": "/c", "statusFolder": {}`), "statusFolder is not a string"},
		{"log bool", fields(`"logFolder": true, "configFolder": "/c", "statusFolder": "/s"`), "logFolder is not a string"},
		{"events number", fields(`"logFolder": "/l", "configFolder": "/c", "statusFolder": "/s", "eventsFolder": 1`), "eventsFolder is not a string"},
		{"relative", fields(`"logFolder": "/l", "configFolder": "config", "statusFolder": "/s"`), "configFolder is not an absolute path"},
		{"nul", fields(`"logFolder": "/l", "configFolder": "/c\u0000x", "statusFolder": "/s"`), "configFolder is not an absolute path"},
		{"trailing garbage", realEnvironment + "x", "not a JSON array"},
		{"huge", `[{"handlerEnvironment": {"logFolder": "/` + strings.Repeat("a", 1<<20) + `"}}]`, "larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := ParseEnvironment([]byte(tt.data))
			if err == nil {
				t.Fatalf("no error, got %+v", env)
			}
			wantFailure(t, err, failure.BadEnvironment, "HandlerEnvironment.json", tt.want)
		})
	}
}

func TestFindEnvironment(t *testing.T) {
	lib := t.TempDir()
	base := filepath.Join(lib, HandlerName+"-2.0.0")
	bin := filepath.Join(base, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(base, EnvironmentFile), []byte(realEnvironment))

	for _, dir := range []string{base, bin} {
		env, err := FindEnvironment(dir)
		if err != nil {
			t.Fatalf("FindEnvironment(%s): %v", dir, err)
		}
		if env.HandlerDir != base {
			t.Errorf("HandlerDir = %q, want %q", env.HandlerDir, base)
		}
		if env.LibDir() != lib {
			t.Errorf("LibDir = %q, want %q", env.LibDir(), lib)
		}
		if env.ConfigFolder == "" {
			t.Errorf("not parsed: %+v", env)
		}
	}
}

func TestFindEnvironmentBad(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"missing", func(t *testing.T, dir string) {}, "was not found"},
		{"malformed", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, EnvironmentFile), []byte(`[{"handlerEnvironment": `))
		}, "not a JSON array"},
		{"huge", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, EnvironmentFile), make([]byte, 1<<20+1))
		}, "larger than 1 MiB"},
		{"directory instead of file", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, EnvironmentFile), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "could not be read"},
		{"unreadable does not fall back to parent", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(filepath.Dir(dir), EnvironmentFile), []byte(realEnvironment))
			if err := os.MkdirAll(filepath.Join(dir, EnvironmentFile), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "could not be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "base", "bin")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			_, err := FindEnvironment(dir)
			wantFailure(t, err, failure.BadEnvironment, tt.want)
		})
	}
}
