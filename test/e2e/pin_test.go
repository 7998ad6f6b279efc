package e2e

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

const (
	aptPreferences   = "/etc/apt/preferences.d/microsoft-aadsshlogin.pref"
	harnessStateFile = harness.StateDir + "/state.json"
)

// withVersion returns the fixture-key settings plus aadsshloginVersion.
func withVersion(w *world, version string) map[string]any {
	s := w.Pinned()
	maps.Copy(s, map[string]any{"aadsshloginVersion": version})
	return s
}

// plainUpgrade runs what an administrator runs to update the machine.
func plainUpgrade(t *testing.T, w *world) {
	t.Helper()
	argv := map[string][]string{
		"apt":    {"apt-get", "-y", "upgrade"},
		"dnf":    {"dnf", "-y", "upgrade"},
		"yum":    {"yum", "-y", "update"},
		"zypper": {"zypper", "-n", "update"},
	}[w.Root.Spec.Manager]
	if argv == nil {
		t.Fatalf("no upgrade command for %s", w.Root.Spec.Manager)
	}
	stdout, stderr, code := w.Root.Exec(context.Background(), nil, argv...)
	t.Logf("%s: exit %d\n%s%s", strings.Join(argv, " "), code, stdout, stderr)
	if code != 0 {
		t.Fatalf("%s failed with exit %d", strings.Join(argv, " "), code)
	}
}

// zypperLocks is what `zypper locks` shows the administrator.
func zypperLocks(t *testing.T, w *world) string {
	t.Helper()
	return w.Root.MustExec(t, nil, "zypper", "-n", "locks")
}

// holdVisible reports whether the administrator can see aadsshlogin held
// at version with the package manager's own tools and files.
func holdVisible(t *testing.T, w *world, version string) bool {
	t.Helper()
	switch {
	case w.Root.Spec.Family == "deb":
		prefs := w.Root.ReadFile(aptPreferences)
		policy := w.Root.MustExec(t, nil, "apt-cache", "policy", "aadsshlogin")
		return strings.Contains(prefs, "Package: aadsshlogin\nPin: version "+version+"\n") &&
			strings.Contains(policy, "Candidate: "+version)
	case w.Root.Exists(zypRepo):
		return strings.Contains(zypperLocks(t, w), "| aadsshlogin ")
	default:
		// dnf: excludepkgs=; yum 3 (RHEL 7): exclude=, which dnf reads too.
		repo := w.Root.ReadFile(yumRepo)
		return strings.Contains(repo, "\nexcludepkgs=aadsshlogin\n") || strings.Contains(repo, "\nexclude=aadsshlogin\n")
	}
}

// newerOffered reports whether the package manager knows a newer version
// the hold keeps out (so that a plain upgrade that does not move the
// package proves the hold, not a stale package list).
func newerOffered(t *testing.T, w *world, version string) bool {
	t.Helper()
	var out string
	switch {
	case w.Root.Spec.Family == "deb":
		out = w.Root.MustExec(t, nil, "apt-cache", "madison", "aadsshlogin")
	case w.Root.Exists(zypRepo):
		out = w.Root.MustExec(t, nil, "zypper", "-n", "search", "-s", "-x", "aadsshlogin")
	default:
		out = w.Root.MustExec(t, nil, "dnf", "-q", "--cacheonly", "--disableexcludes=all", "list", "--available", "--showduplicates", "aadsshlogin")
	}
	return strings.Contains(out, version)
}

// noHoldLeft reports what still holds aadsshlogin.
func noHoldLeft(t *testing.T, w *world) []string {
	t.Helper()
	var left []string
	if w.Root.Exists(aptPreferences) {
		left = append(left, aptPreferences)
	}
	if strings.Contains(w.Root.ReadFile(yumRepo), "exclude") {
		left = append(left, yumRepo+" excludes aadsshlogin")
	}
	if w.Root.Exists(zypRepo) || w.Root.Exists("/etc/zypp/locks") {
		if l := zypperLocks(t, w); strings.Contains(l, "aadsshlogin") {
			left = append(left, "zypper lock:\n"+l)
		}
	}
	return left
}

// TestPinVersion: with aadsshloginVersion set to the repository's older
// version, that version is installed and held against the administrator's
// own upgrade (apt-get upgrade, dnf upgrade, zypper update); removing the
// setting releases it and converges to the newest; setting it again moves
// back down; uninstall leaves nothing holding the package.
func TestPinVersion(t *testing.T) {
	for _, distro := range []string{"ubuntu-22.04", "rhel-9.4", "rhel-7.9", "sles-15.6"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				ctx := context.Background()
				old, cur := w.Fx.Versions.Old, w.Fx.Versions.New

				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				w.MustApply(h, 0, withVersion(w, old))
				st := w.WantStatus(h, 0, "success", 0)
				if got := w.Installed("aadsshlogin"); got != old {
					t.Fatalf("aadsshlogin %q installed, want the setting's %s", got, old)
				}
				if !holdVisible(t, w, old) {
					t.Errorf("the hold at %s is not visible to the administrator", old)
				}
				if sub, _ := st.Find("Repository"); !strings.Contains(sub.Message, "aadsshloginVersion") {
					t.Errorf("the status does not say the version is held: %+v", st.Substatus)
				}

				if !newerOffered(t, w, cur) {
					t.Fatalf("the package manager does not know %s: the upgrade below would prove nothing", cur)
				}
				plainUpgrade(t, w)
				if got := w.Installed("aadsshlogin"); got != old {
					t.Fatalf("a plain upgrade moved aadsshlogin from %s to %q", old, got)
				}
				if !w.Wired() {
					t.Error("not wired after the upgrade")
				}
				if w.Root.Spec.Family == "deb" {
					// The quick check of enable notices the deleted
					// preferences file and puts it back.
					w.Root.Remove(aptPreferences)
					w.MustApply(h, 0, withVersion(w, old))
					if !holdVisible(t, w, old) {
						t.Error("enable did not repair the deleted preferences file")
					}
				}

				// The setting removed: the next enable notices (config
				// hash), releases the hold and takes the newest.
				w.MustApply(h, 1, w.Pinned())
				w.WantStatus(h, 1, "success", 0)
				if got := w.Installed("aadsshlogin"); got != cur {
					t.Errorf("aadsshlogin %q after the setting was removed, want the newest %s", got, cur)
				}
				if left := noHoldLeft(t, w); len(left) > 0 {
					t.Errorf("the hold outlived the setting: %v", left)
				}

				// Set again: down to the older version (apt needs the
				// priority above 1000, zypper --oldpackage, dnf install of
				// the version).
				w.MustApply(h, 2, withVersion(w, old))
				if got := w.Installed("aadsshlogin"); got != old || !holdVisible(t, w, old) {
					t.Errorf("after setting the version again: %q installed, held %v", got, holdVisible(t, w, old))
				}

				res, err := w.Agent.Uninstall(ctx, h, 2)
				w.LogResults(res)
				if err != nil || lastExit(t, res, agentsim.Uninstall) != 0 {
					t.Fatalf("uninstall: %v %v", err, verbs(res))
				}
				if v := w.Installed("aadsshlogin"); v != "" {
					t.Errorf("aadsshlogin %s still installed", v)
				}
				if left := noHoldLeft(t, w); len(left) > 0 {
					t.Errorf("uninstall left a hold behind: %v", left)
				}
			})
		})
	}
}

// TestPinSUSEBefore156: the built-in pin of SUSE 15.5 is a zypper lock the
// administrator sees with zypper locks; zypper update keeps 1.0.027980001;
// uninstall removes the lock with the package.
func TestPinSUSEBefore156(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "sles-15.5", sandbox.NetworkOptions{})
		ctx := context.Background()
		pinned := w.Fx.Versions.SUSEPinned
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		w.WantStatus(h, 0, "success", 0)
		if got := w.Installed("aadsshlogin"); got != pinned {
			t.Fatalf("aadsshlogin %q, want %s", got, pinned)
		}
		locks := zypperLocks(t, w)
		if !strings.Contains(locks, "| aadsshlogin ") {
			t.Fatalf("zypper locks does not show aadsshlogin:\n%s", locks)
		}
		if state := w.Root.ReadFile(harnessStateFile); !strings.Contains(state, `"locksAdded": [`) {
			t.Errorf("the state does not record the lock as ours:\n%s", state)
		}
		if !newerOffered(t, w, w.Fx.Versions.New) {
			t.Fatalf("the package manager does not know %s: the update below would prove nothing", w.Fx.Versions.New)
		}
		plainUpgrade(t, w)
		if got := w.Installed("aadsshlogin"); got != pinned {
			t.Fatalf("zypper update moved aadsshlogin from %s to %q", pinned, got)
		}

		res, err := w.Agent.Uninstall(ctx, h, 0)
		w.LogResults(res)
		if err != nil || lastExit(t, res, agentsim.Uninstall) != 0 {
			t.Fatalf("uninstall: %v %v", err, verbs(res))
		}
		if v := w.Installed("aadsshlogin"); v != "" {
			t.Errorf("aadsshlogin %s still installed", v)
		}
		if left := noHoldLeft(t, w); len(left) > 0 {
			t.Errorf("uninstall left the lock: %v", left)
		}
	})
}

// TestPinVersionNotOffered: a version the repository does not have fails
// with 51, names the setting and the versions on offer, and changes
// nothing.
func TestPinVersionNotOffered(t *testing.T) {
	for _, distro := range []string{"debian-12", "rhel-9.4"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				before := w.Baseline()
				res, err := w.Apply(h, 0, withVersion(w, "1.0.029999999"))
				if err == nil {
					t.Fatal("a version the repository does not offer was accepted")
				}
				if got := lastExit(t, res, agentsim.Install); got != 51 {
					t.Fatalf("install exit %d, want 51", got)
				}
				st := w.WantStatus(h, 0, "error", 51)
				for _, want := range []string{"does not offer aadsshlogin 1.0.029999999", "aadsshloginVersion", w.Fx.Versions.New, w.Fx.Versions.Old, "Nothing was left changed"} {
					if !strings.Contains(st.Message, want) {
						t.Errorf("message lacks %q: %q", want, st.Message)
					}
				}
				w.WantUnchangedSince(before)
			})
		})
	}
}

// TestPinRefusedOnTdnf: tdnf cannot hold a version without editing the
// image's own repository, so the setting is refused there with 53 before
// anything changes.
func TestPinRefusedOnTdnf(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "azurelinux-3.0", sandbox.NetworkOptions{})
		w.Root.AddDistroRepo(t)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, withVersion(w, w.Fx.Versions.Old))
		if err == nil {
			t.Fatal("aadsshloginVersion accepted on tdnf")
		}
		if got := lastExit(t, res, agentsim.Install); got != 53 {
			t.Fatalf("install exit %d, want 53", got)
		}
		st := w.WantStatus(h, 0, "error", 53)
		if !strings.Contains(st.Message, "aadsshloginVersion") || !strings.Contains(st.Message, "tdnf") {
			t.Errorf("message %q", st.Message)
		}
		w.WantUnchangedSince(before)
	})
}

// TestPinSUSEAdminLock: an administrator who followed the documented
// manual fix (aadsshlogin 1.0.027980001 installed and locked) keeps the
// lock: the install leaves it alone and does not claim it, and the
// uninstall keeps the package (installed before the extension, so not the
// extension's to remove) and the lock, and says so.
func TestPinSUSEAdminLock(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "sles-15.5", sandbox.NetworkOptions{})
		ctx := context.Background()
		pinned := w.Fx.Versions.SUSEPinned
		w.Root.InstallLocalPackage(t, w.Fx.RPM("aadsshlogin", pinned))
		w.Root.MustExec(t, nil, "zypper", "-n", "addlock", "aadsshlogin")
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		st := w.WantStatus(h, 0, "success", 0)
		if got := w.Installed("aadsshlogin"); got != pinned {
			t.Errorf("aadsshlogin %q, want %s", got, pinned)
		}
		if sub, _ := st.Find("Repository"); !strings.Contains(sub.Message, "your own zypper package lock") {
			t.Errorf("status: %q", sub.Message)
		}
		if state := w.Root.ReadFile(harnessStateFile); strings.Contains(state, "locksAdded") {
			t.Errorf("the administrator's lock is recorded as ours:\n%s", state)
		}
		res, _ := w.Agent.Uninstall(ctx, h, 0)
		w.LogResults(res)
		if got := lastExit(t, res, agentsim.Uninstall); got != 0 {
			t.Errorf("uninstall exit %d, want 0", got)
		}
		if out := res[len(res)-1].Output; !strings.Contains(out, "aadsshlogin stays installed") {
			t.Errorf("the uninstall does not say it kept the administrator's aadsshlogin:\n%s", out)
		}
		if !strings.Contains(zypperLocks(t, w), "| aadsshlogin ") {
			t.Error("uninstall removed the administrator's lock")
		}
		if w.Installed("aadsshlogin") != pinned {
			t.Error("aadsshlogin is gone although its lock stays")
		}
	})
}
