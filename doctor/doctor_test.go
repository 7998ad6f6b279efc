package doctor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/installer"
	"github.com/aadsshlogin/handler/sysroot"
)

// noNetwork fails every lookup at once: unit tests never leave the process
// except for the loopback IMDS.
type noNetwork struct{}

func (noNetwork) LookupHost(context.Context, string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
}

func (noNetwork) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no network in unit tests")
}

func write(t *testing.T, root sysroot.Root, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(root.Path(path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Path(path), []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// healthyRoot lays out an installed, wired Debian 12 machine.
func healthyRoot(t *testing.T) sysroot.Root {
	root := sysroot.Root(t.TempDir())
	write(t, root, "/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", 0o644)
	write(t, root, "/usr/sbin/aad_certhandler", "#!/bin/sh\n", 0o755)
	write(t, root, "/etc/nsswitch.conf", "passwd: files aad\n", 0o644)
	write(t, root, "/etc/pam.d/sshd", "account required pam_aad.so\n", 0o644)
	write(t, root, "/etc/ssh/sshd_config", "Match User *@*\n  AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n", 0o644)
	write(t, root, "/etc/sudoers.d/aad_admins", "%aad_admins ALL=(ALL) NOPASSWD:ALL\n", 0o440)
	write(t, root, "/run/utmp", "", 0o644)
	if err := os.MkdirAll(root.Path("/proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := installer.SaveState(root, &installer.State{HandlerVersion: "1.0.3000.1", Distro: "debian 12", PackageManager: "apt",
		Packages: map[string]string{"aadsshlogin": "1.0.031620001"}, CompletedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return root
}

func token(mirid string) string {
	enc := base64.RawURLEncoding.EncodeToString
	p, _ := json.Marshal(map[string]string{"xms_mirid": mirid})
	b, _ := json.Marshal(map[string]string{"access_token": enc([]byte(`{}`)) + "." + enc(p) + ".s"})
	return string(b)
}

type fakeIMDS struct {
	tokenStatus int
	tokenBody   string
	hang        bool
	date        time.Time
}

func (f fakeIMDS) start(t *testing.T) *imds.Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.hang {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
			return
		}
		if !f.date.IsZero() {
			w.Header().Set("Date", f.date.UTC().Format(http.TimeFormat))
		}
		if strings.HasSuffix(r.URL.Path, "/token") {
			w.WriteHeader(f.tokenStatus)
			w.Write([]byte(f.tokenBody))
			return
		}
		w.Write([]byte("AzurePublicCloud"))
	}))
	t.Cleanup(srv.Close)
	c := imds.New(nil)
	c.BaseURL = srv.URL
	c.HTTP = httpclient.New(httpclient.Options{RetryMax: -1, RequestTimeout: 3 * time.Second})
	return c
}

const vm = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"

func runner() *cmdrun.Fake {
	return &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"dpkg-query": {Result: cmdrun.Result{ExitCode: 1, Stdout: []byte("aadsshlogin\tinstall ok installed\t1.0.031620001\nopenssh-server\tinstall ok installed\t1:9.2p1-2\n")}},
		"sshd -T":    {Result: cmdrun.Result{Stdout: []byte("authorizedkeyscommand /usr/sbin/aad_certhandler %u %k\n")}},
	}}
}

func find(t *testing.T, rep Report, name string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, rep.Checks)
	return Check{}
}

func run(t *testing.T, root sysroot.Root, im fakeIMDS, o Options) Report {
	t.Helper()
	o.Root, o.IMDS, o.Dialer, o.Arch, o.Version = root, im.start(t), noNetwork{}, "amd64", "test"
	if o.Runner == nil {
		o.Runner = runner()
	}
	return Run(context.Background(), o)
}

func TestHealthyMachine(t *testing.T) {
	root := healthyRoot(t)
	now := time.Now()
	rep := run(t, root, fakeIMDS{tokenStatus: 200, tokenBody: token(vm), date: now}, Options{Now: func() time.Time { return now }})
	for name, want := range map[string]Status{
		"imds": Pass, "identity": Pass, "cloud": Pass, "clock": Pass, "package": Pass, "obsolete-aadlogin": Pass,
		"authorized-keys-command": Pass, "sshd-config": Pass, "sshd-groups": Pass, "openssh-version": Pass,
		"nss": Pass, "pam": Pass, "sudo": Pass, "entra-sessions": Pass, "handler-state": Pass,
		"last-status": Skip, "endpoint-signin": Fail,
	} {
		if c := find(t, rep, name); c.Status != want {
			t.Errorf("%s: %s (%s), want %s", name, c.Status, c.Message, want)
		}
	}
	if c := find(t, rep, "identity"); !strings.Contains(c.Message, vm) {
		t.Errorf("identity message %q does not name the VM", c.Message)
	}
	if c := find(t, rep, "endpoint-signin"); !strings.Contains(c.Message, "login.microsoftonline.com") || !strings.Contains(c.Message, "DNS lookup") || c.Fix == "" {
		t.Errorf("endpoint-signin: %+v", c)
	}
	for _, c := range rep.Checks {
		if (c.Status == Warn || c.Status == Fail) && c.Fix == "" {
			t.Errorf("%s is %s without a fix", c.Name, c.Status)
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Checks []map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || len(doc.Checks) != len(rep.Checks) {
		t.Fatalf("JSON %s: %v", buf.String(), err)
	}
	for _, k := range []string{"name", "status", "message", "fix"} {
		if _, ok := doc.Checks[0][k]; !ok {
			t.Errorf("JSON check lacks %q", k)
		}
	}
	buf.Reset()
	if err := rep.WriteText(&buf); err != nil || !strings.Contains(buf.String(), "PASS  identity") {
		t.Errorf("text report:\n%s", buf.String())
	}
}

func TestBrokenStates(t *testing.T) {
	now := time.Now()
	uai := "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ci"
	for _, c := range []struct {
		name   string
		imds   fakeIMDS
		change func(t *testing.T, root sysroot.Root)
		check  string
		status Status
		text   string
	}{
		{"identity removed", fakeIMDS{tokenStatus: 400, tokenBody: `{"error":"invalid_request","error_description":"Identity not found"}`}, nil, "identity", Fail, "no system-assigned managed identity"},
		{"user-assigned only", fakeIMDS{tokenStatus: 200, tokenBody: token(uai)}, nil, "identity", Fail, `user-assigned identity "ci"`},
		{"IMDS failing", fakeIMDS{tokenStatus: 500, tokenBody: "{}"}, nil, "identity", Skip, "Not determined"},
		{"clock off", fakeIMDS{tokenStatus: 200, tokenBody: token(vm), date: now.Add(-2 * time.Hour)}, nil, "clock", Fail, "ahead of"},
		{"clock a bit off", fakeIMDS{tokenStatus: 200, tokenBody: token(vm), date: now.Add(7 * time.Minute)}, nil, "clock", Warn, "behind"},
		{"AllowGroups", fakeIMDS{tokenStatus: 200, tokenBody: token(vm)}, func(t *testing.T, root sysroot.Root) {
			write(t, root, "/etc/ssh/sshd_config", "AllowGroups admins\nMatch User *@*\n  AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n", 0o644)
		}, "sshd-groups", Fail, "AllowGroups"},
		{"NSS unwired", fakeIMDS{tokenStatus: 200, tokenBody: token(vm)}, func(t *testing.T, root sysroot.Root) {
			write(t, root, "/etc/nsswitch.conf", "passwd: files\n", 0o644)
		}, "nss", Fail, "no aad source"},
		{"cert handler gone", fakeIMDS{tokenStatus: 200, tokenBody: token(vm)}, func(t *testing.T, root sysroot.Root) {
			os.Remove(root.Path("/usr/sbin/aad_certhandler"))
		}, "authorized-keys-command", Fail, "missing"},
		{"Entra user logged in", fakeIMDS{tokenStatus: 200, tokenBody: token(vm)}, func(t *testing.T, root sysroot.Root) {
			os.MkdirAll(root.Path("/proc/1"), 0o755)
			rec := append(UtmpRecord(Session{User: "alice@contoso.com", Line: "pts/0", Host: "10.0.0.4", PID: 1}, now),
				UtmpRecord(Session{User: "bob@contoso.com", Line: "pts/1", PID: 4242}, now)...) // bob's process is gone
			rec = append(rec, UtmpRecord(Session{User: "localadmin", Line: "pts/2", PID: 1}, now)...)
			write(t, root, "/run/utmp", string(rec), 0o644)
		}, "entra-sessions", Pass, "alice@contoso.com."},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := healthyRoot(t)
			if c.change != nil {
				c.change(t, root)
			}
			rep := run(t, root, c.imds, Options{Now: func() time.Time { return now }})
			got := find(t, rep, c.check)
			if got.Status != c.status || !strings.Contains(got.Message, c.text) {
				t.Errorf("%s: %s %q, want %s containing %q", c.check, got.Status, got.Message, c.status, c.text)
			}
			if (got.Status == Fail || got.Status == Warn) && got.Fix == "" {
				t.Errorf("no fix")
			}
			if c.status == Fail && !rep.Failed() {
				t.Errorf("Failed() = false with %s failing", c.check)
			}
		})
	}
}

// A metadata service that never answers costs at most the check timeout,
// not the install's identity window.
func TestHangingIMDSIsBounded(t *testing.T) {
	root := healthyRoot(t)
	start := time.Now()
	rep := run(t, root, fakeIMDS{hang: true}, Options{CheckTimeout: 2 * time.Second, Timeout: 4 * time.Second})
	if took := time.Since(start); took > 7*time.Second {
		t.Errorf("doctor took %s", took)
	}
	if c := find(t, rep, "identity"); c.Status == Fail || c.Status == Pass {
		t.Errorf("identity with a silent IMDS: %+v", c)
	}
}

func TestParseUtmpRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 0)
	data := append(UtmpRecord(Session{User: "a@b.c", Line: "pts/3", Host: "h", PID: 77}, at), make([]byte, utmpSize)...)
	got := ParseUtmp(append(data, 1, 2, 3)) // a torn last record is ignored
	if len(got) != 1 || got[0] != (Session{User: "a@b.c", Line: "pts/3", Host: "h", PID: 77}) {
		t.Errorf("got %+v", got)
	}
}
