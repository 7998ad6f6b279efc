package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// microsoftKeys are the public keys packages.microsoft.com serves, as the
// handler's unit tests keep them.
func microsoftKeys(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{"microsoft.asc", "microsoft-2025.asc"} {
		data, err := os.ReadFile("../../installer/keys/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		out["/keys/"+f] = data
	}
	return out
}

// TestMicrosoftKeysTrustedByDefault runs the built handler with no settings
// against a repository host that serves Microsoft's real public keys (the
// repositories themselves are signed by the fixture keys, since Microsoft's
// private keys are not ours). The handler must take the key the release's
// repository is signed with, accept it because its fingerprint is compiled
// in, write it, and then fail on the repository's signature (exit 25) — not
// on the key's fingerprint — and leave nothing behind: no keyring, no
// repository file, no key in the rpm database.
func TestMicrosoftKeysTrustedByDefault(t *testing.T) {
	cases := []struct {
		distro, want, notWant string
	}{
		{"ubuntu-22.04", "/keys/microsoft.asc", "/keys/microsoft-2025.asc"},
		{"rhel-9.4", "/keys/microsoft.asc", "/keys/microsoft-2025.asc"},
		{"rhel-10.1", "/keys/microsoft-2025.asc", "/keys/microsoft.asc"},
		// Newer than the table: the key is not known, both are asked for.
		{"debian-13", "/keys/microsoft-2025.asc", ""},
	}
	for _, c := range cases {
		t.Run(c.distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, c.distro, sandbox.NetworkOptions{Repo: sandbox.RepoOptions{Files: microsoftKeys(t)}})
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				before := w.Baseline()
				res, err := w.Apply(h, 0, nil)
				if err == nil {
					t.Fatal("install succeeded against repositories signed by keys Microsoft does not own")
				}
				if got := lastExit(t, res, agentsim.Install); got != 25 {
					t.Fatalf("install exit %d, want 25", got)
				}
				st := w.WantStatus(h, 0, "error", 25)
				if strings.Contains(st.Message, "not a trusted fingerprint") || !strings.Contains(st.Message, "signature") {
					t.Errorf("the key should have been accepted and the repository's signature refused: %q", st.Message)
				}
				reqs := w.Net.Repo.Requests()
				if !slices.Contains(reqs, c.want) || c.notWant != "" && slices.Contains(reqs, c.notWant) {
					t.Errorf("key requests %v: want %s and not %q", reqs, c.want, c.notWant)
				}
				if c.notWant == "" && !slices.Contains(reqs, "/keys/microsoft.asc") {
					t.Errorf("a release newer than the table should ask for every published key: %v", reqs)
				}
				w.WantUnchangedSince(before)
				for _, p := range []string{harness.AptKeyring, "/etc/pki/rpm-gpg/microsoft-aadsshlogin.asc", aptList, yumRepo} {
					if w.Root.Exists(p) {
						t.Errorf("%s left behind after the rollback", p)
					}
				}
				if w.Root.Spec.Family == "rpm" {
					for _, fp := range []string{"BC528686B50D79E339D3721CEB3E94ADBE1229CF", "AA86F75E427A19DD33346403EE4D7792F748182B"} {
						if w.RPMTrusts(fp) {
							t.Errorf("Microsoft key %s left in the rpm database after the rollback", fp)
						}
					}
				}
			})
		})
	}
}

// TestUninstallRemovesEveryImportedKey: on RHEL 10 both pinned keys are
// imported into the rpm database; the administrator had already imported
// one of them (the stand-in for microsoft.asc) and a key of their own.
// The state records only the key the handler imported, and uninstall
// removes exactly that one: the administrator's keys stay.
func TestUninstallRemovesEveryImportedKey(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-10.1", sandbox.NetworkOptions{})
		ctx := context.Background()
		for name, data := range map[string][]byte{"/root/ms.asc": w.Fx.KeyArmored, "/root/own.asc": w.Fx.OtherKeyArmored} {
			w.Root.WriteFile(name, string(data), 0o644)
			w.Root.MustExec(t, nil, "rpm", "--import", name)
		}
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		w.WantStatus(h, 0, "success", 0)
		for _, fp := range []string{w.Fx.KeyFingerprint, w.Fx.Key2025Fingerprint, w.Fx.OtherKeyFingerprint} {
			if !w.RPMTrusts(fp) {
				t.Fatalf("key %s not trusted after the install", fp)
			}
		}
		state := w.Root.ReadFile("/var/lib/aadsshlogin-handler/state.json")
		if !strings.Contains(state, w.Fx.Key2025Fingerprint) || strings.Contains(state, w.Fx.KeyFingerprint) {
			t.Errorf("the state should record the imported key %s and not the administrator's %s:\n%s", w.Fx.Key2025Fingerprint, w.Fx.KeyFingerprint, state)
		}

		res, err := w.Agent.Uninstall(ctx, h, 0)
		w.LogResults(res)
		if err != nil || lastExit(t, res, agentsim.Uninstall) != 0 {
			t.Fatalf("uninstall: %v %v", err, verbs(res))
		}
		if w.RPMTrusts(w.Fx.Key2025Fingerprint) {
			t.Error("the key the handler imported is still trusted after uninstall")
		}
		for _, fp := range []string{w.Fx.KeyFingerprint, w.Fx.OtherKeyFingerprint} {
			if !w.RPMTrusts(fp) {
				t.Errorf("uninstall removed the administrator's key %s", fp)
			}
		}
	})
}

// TestUninstallKeepsWhatWasNotOurs: the administrator installed aadsshlogin
// before the extension (no version marker yet), and after the install set
// up another Microsoft repository (say dotnet's) that names the key the
// handler imported. Uninstall keeps aadsshlogin and that key, removes the
// other key it imported and its own repository file, and says what it kept.
func TestUninstallKeepsWhatWasNotOurs(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-10.1", sandbox.NetworkOptions{})
		ctx := context.Background()
		w.Root.InstallLocalPackage(t, w.Fx.RPM("aadsshlogin", w.Fx.Versions.Old))
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		w.WantStatus(h, 0, "success", 0)
		if !w.RPMTrusts(w.Fx.KeyFingerprint) || !w.RPMTrusts(w.Fx.Key2025Fingerprint) {
			t.Fatal("the install did not import both pinned keys")
		}
		w.Root.WriteFile("/etc/pki/rpm-gpg/dotnet.asc", string(w.Fx.Key2025Armored), 0o644)
		w.Root.WriteFile("/etc/yum.repos.d/dotnet.repo", "[dotnet]\nbaseurl=https://packages.microsoft.com/rhel/10/prod/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/dotnet.asc\n", 0o644)

		res, err := w.Agent.Uninstall(ctx, h, 0)
		w.LogResults(res)
		if err != nil || lastExit(t, res, agentsim.Uninstall) != 0 {
			t.Fatalf("uninstall: %v %v", err, verbs(res))
		}
		if w.Installed("aadsshlogin") == "" {
			t.Error("uninstall removed the aadsshlogin the administrator had installed before the extension")
		}
		if !w.RPMTrusts(w.Fx.Key2025Fingerprint) {
			t.Error("uninstall removed the key dotnet.repo uses")
		}
		if w.RPMTrusts(w.Fx.KeyFingerprint) {
			t.Error("the other key the handler imported is still trusted")
		}
		if w.Root.Exists(yumRepo) {
			t.Error("the extension's repository file is left")
		}
		// The agent removes the handler's folder (and its status) after
		// uninstall: what the handler said is what the agent captured.
		if out := res[len(res)-1].Output; !strings.Contains(out, "stays installed") || !strings.Contains(out, "dotnet.repo") {
			t.Errorf("the uninstall does not say what was kept: %q", out)
		}
	})
}
