package e2e

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestProxyWithoutEditingTheAgent: the proxy the machine is configured
// with is used without the agent's unit file passing any variable: the
// agent's own HttpProxy in /etc/waagent.conf, or the httpProxy setting
// (which wins). Downloads and the package manager go through it (the proxy
// sees CONNECT packages.microsoft.com:443), IMDS never does, and the
// status says which proxy and where it came from.
func TestProxyWithoutEditingTheAgent(t *testing.T) {
	cases := []struct {
		name, distro string
		setting      bool
		from         string
	}{
		{"waagent.conf-apt", "ubuntu-22.04", false, "/etc/waagent.conf"},
		{"waagent.conf-dnf", "rhel-9.4", false, "/etc/waagent.conf"},
		{"setting-wins-zypper", "sles-15.6", true, "the httpProxy setting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, c.distro, sandbox.NetworkOptions{})
				// The proxy runs in this process: show it the root's
				// /etc/hosts, which names the fake repository (only in this
				// child's mount namespace).
				if err := unix.Mount(w.Root.Path("/etc/hosts"), "/etc/hosts", "", unix.MS_BIND, ""); err != nil {
					t.Fatalf("showing the root's /etc/hosts to the proxy: %v", err)
				}
				t.Cleanup(func() { _ = unix.Unmount("/etc/hosts", unix.MNT_DETACH) })
				p := sandbox.StartProxy(t, "127.0.0.1:0")
				host, port, _ := strings.Cut(p.Addr, ":")
				settings := w.Pinned()
				if c.setting {
					// waagent.conf names a dead proxy: the setting must win.
					w.Root.WriteFile("/etc/waagent.conf", "HttpProxy.Host=127.0.0.1\nHttpProxy.Port=9\n", 0o644)
					settings["httpProxy"] = p.URL
				} else {
					w.Root.WriteFile("/etc/waagent.conf", "# the agent's configuration\nHttpProxy.Host="+host+"\nHttpProxy.Port="+port+"\n", 0o644)
				}
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				res := w.MustApply(h, 0, settings)
				if lastExit(t, res, agentsim.Install) != 0 {
					t.Fatal("install through the proxy failed")
				}
				st := w.WantStatus(h, 0, "success", 0)
				sub, ok := st.Find("Proxy")
				if !ok || !strings.Contains(sub.Message, p.URL) || !strings.Contains(sub.Message, c.from) {
					t.Errorf("the status does not name the proxy %s and its source %q: %+v", p.URL, c.from, st.Substatus)
				}
				if !slices.Contains(p.Targets(), pmc[len("https://"):]+":443") {
					t.Errorf("the proxy did not see CONNECT packages.microsoft.com:443: %v", p.Targets())
				}
				for _, tg := range append(p.Targets(), p.Requests()...) {
					if strings.Contains(tg, "169.254.169.254") {
						t.Errorf("the metadata service went through the proxy: %s", tg)
					}
				}
				for _, r := range w.Net.IMDS.Requests() {
					if r.Proxied {
						t.Errorf("IMDS request %s arrived proxied", r.Path)
					}
				}
			})
		})
	}
}
