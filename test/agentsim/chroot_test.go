package agentsim

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/require"
)

// TestChrootRun drives a handler inside a minimal root (static busybox as
// /bin/sh). It needs root and busybox-static and is skipped otherwise.
func TestChrootRun(t *testing.T) {
	t.Parallel()
	require.Root(t, "chroot")
	require.Tools(t, "busybox")
	bb, _ := exec.LookPath("busybox")
	if out, err := exec.Command("ldd", bb).CombinedOutput(); err == nil && !strings.Contains(string(out), "not a dynamic") {
		require.SkipOrFail(t, "busybox is not static (apt-get install busybox-static)")
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "elsewhere", "var/log"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(bb, filepath.Join(root, "bin", "busybox"), 0o755, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink inside the root must resolve inside the root.
	if err := os.Symlink("/elsewhere", filepath.Join(root, "var", "log", "azure")); err != nil {
		t.Fatal(err)
	}

	f := newFixture(t)
	f.a = &Agent{Root: root, Log: testLog{t}, Timeouts: map[Verb]time.Duration{Disable: 300 * time.Millisecond}}
	script := "#!/bin/sh\n" +
		"echo \"$1 $(pwd) $AZURE_GUEST_AGENT_EXTENSION_PATH $ConfigSequenceNumber\" >> /calls\n" +
		"if [ \"$1\" = disable ]; then busybox sleep 1000; fi\n" +
		"if [ \"$1\" = enable ]; then echo '[{\"status\":{\"status\":\"success\"}}]' > status/$ConfigSequenceNumber.status; fi\n"
	zp := f.writeZip(testName+"-1.0.zip", []zipEntry{
		{name: "HandlerManifest.json", body: manifestJSON(manifestOpts{})},
		{name: "handler.sh", body: script},
	})
	h, err := f.a.Deploy(zp, "", "")
	if err != nil {
		t.Fatal(err)
	}
	dir := "/var/lib/waagent/" + testName + "-1.0"
	if h.Dir != dir || h.HostDir(f.a) != filepath.Join(root, dir) {
		t.Fatalf("dir %s host %s", h.Dir, h.HostDir(f.a))
	}
	if !exists(filepath.Join(root, "elsewhere", testName, "events")) {
		t.Error("log folder not created through the in-root symlink")
	}
	ctx := context.Background()
	if _, err := f.a.Apply(ctx, h, 7, nil); err != nil {
		t.Fatal(err)
	}
	want := "install " + dir + " " + dir + " 7\nenable " + dir + " " + dir + " 7\n"
	if got := readFile(t, filepath.Join(root, "calls")); got != want {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if st := f.a.ReadStatus(h, 7); st.Status != "success" {
		t.Errorf("status = %+v", st)
	}
	r, err := f.a.Disable(ctx, h, 7)
	if err == nil || !r.TimedOut || !strings.HasPrefix(r.AgentMessage, "[ExtensionError] Timeout(0.3): "+dir+"/handler.sh disable\n") {
		t.Fatalf("disable: %v %+v", err, r)
	}
}
