package verify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

const matchBlock = `
Match User *@*,????????-????-????-????-????????????    # Added by aadsshlogin installer
    AuthenticationMethods publickey
    PubkeyAuthentication yes
    AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k
    AuthorizedKeysCommandUser root
`

const baseSSHD = `Include /etc/ssh/sshd_config.d/*.conf
KbdInteractiveAuthentication no
UsePAM yes
Subsystem sftp /usr/lib/openssh/sftp-server
`

// wiredRoot returns a root as the package leaves it on Debian.
func wiredRoot(t *testing.T) sysroot.Root {
	t.Helper()
	root := sysroot.Root(t.TempDir())
	write(t, root, "/usr/sbin/aad_certhandler", "#!/bin/sh\n")
	write(t, root, "/etc/nsswitch.conf", "# comment\npasswd:         files systemd aad\ngroup:          files systemd aad\nhosts: files dns\n")
	write(t, root, "/etc/pam.d/common-auth", "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\n")
	write(t, root, "/etc/pam.d/sshd", "@include common-auth\naccount [success=ok default=ignore] pam_aad.so\n")
	write(t, root, "/etc/ssh/sshd_config", baseSSHD+matchBlock)
	write(t, root, "/usr/share/pam-configs/unix", "Name: Unix authentication\n")
	write(t, root, "/tmp/.keep", "")
	return root
}

func write(t *testing.T, root sysroot.Root, p, data string) {
	t.Helper()
	if err := root.WriteFileAtomic(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noSSHD is a runner on which sshd (and everything else) is missing, so
// the configuration files are parsed.
func noSSHD() *cmdrun.Fake { return &cmdrun.Fake{Strict: true} }

func problemsOf(t *testing.T, err error) (Problems, string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Code != failure.VerificationFailed {
		t.Fatalf("want VerificationFailed, got %v", err)
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("no Problems in %v", err)
	}
	if len([]rune(fe.Msg)) > maxMessage {
		t.Errorf("message has %d characters", len([]rune(fe.Msg)))
	}
	return ps, fe.Msg
}

func checks(ps Problems) string {
	var c []string
	for _, p := range ps {
		c = append(c, p.Check)
	}
	return strings.Join(c, ",")
}

func TestVerifyWiredWithEffectiveConfig(t *testing.T) {
	root := wiredRoot(t)
	f := &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
		"sshd -T":     {Result: cmdrun.Result{Stdout: []byte("port 22\nauthorizedkeyscommand /usr/sbin/aad_certhandler %u %k\nauthorizedkeyscommanduser root\n")}},
		"semodule -l": {Result: cmdrun.Result{Stdout: []byte("aad_permissions\t1.0\nabrt\t1.4.1\n")}},
	}}
	if err := Verify(context.Background(), Options{Runner: f, Root: root, SELinux: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{"sshd -T -C user=entra-probe@contoso.com,host=localhost,addr=127.0.0.1", "semodule -l"}
	if got := f.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands %q", got)
	}
	// /usr/sbin/sshd is preferred when it exists.
	write(t, root, "/usr/sbin/sshd", "")
	f.Responses["/usr/sbin/sshd -T"] = f.Responses["sshd -T"]
	if err := Verify(context.Background(), Options{Runner: f, Root: root}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyEffectiveConfigWithoutCertHandler(t *testing.T) {
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"sshd -T": {Result: cmdrun.Result{Stdout: []byte("port 22\nauthorizedkeyscommand none\n")}},
	}}
	ps, msg := problemsOf(t, Verify(context.Background(), Options{Runner: f, Root: wiredRoot(t)}))
	if checks(ps) != "sshd" || !strings.Contains(msg, "AuthorizedKeysCommand none instead of /usr/sbin/aad_certhandler") ||
		!strings.Contains(msg, "sshd_config was probably rewritten by a hardening tool after the package added its Match block") {
		t.Errorf("%s: %s", checks(ps), msg)
	}
}

func TestVerifyThrowawayHostKey(t *testing.T) {
	root := wiredRoot(t)
	calls := 0
	var keyArg string
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"sshd -T": {Func: func(c cmdrun.Cmd) (cmdrun.Result, error) {
			calls++
			if calls == 1 {
				return cmdrun.Result{Stderr: []byte("sshd: no hostkeys available -- exiting.\n"), ExitCode: 1}, nil
			}
			keyArg = c.Args[len(c.Args)-1]
			return cmdrun.Result{Stdout: []byte("authorizedkeyscommand /usr/sbin/aad_certhandler %u %k\n")}, nil
		}},
	}}
	if err := Verify(context.Background(), Options{Runner: f, Root: root}); err != nil {
		t.Fatal(err)
	}
	lines := f.Lines()
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "ssh-keygen -q -t ed25519 -N  -f /tmp/aadsshlogin-verify-") ||
		!strings.HasPrefix(keyArg, "/tmp/aadsshlogin-verify-") || !strings.HasSuffix(lines[2], " -h "+keyArg) {
		t.Errorf("commands %q", lines)
	}
	if left, _ := root.Glob("/tmp/aadsshlogin-verify-*"); len(left) != 0 {
		t.Errorf("left behind %v", left)
	}
}

func TestVerifyFallsBackToConfigFiles(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		wantOK bool
		frag   string
	}{
		{"package block", nil, true, ""},
		{"block in Include file", map[string]string{
			"/etc/ssh/sshd_config":               baseSSHD,
			"/etc/ssh/sshd_config.d/50-aad.conf": matchBlock,
		}, true, ""},
		{"global command", map[string]string{
			"/etc/ssh/sshd_config": "AuthorizedKeysCommand=/usr/sbin/aad_certhandler %u %k\n",
		}, true, ""},
		{"global none overridden by Match", map[string]string{
			"/etc/ssh/sshd_config": "AuthorizedKeysCommand none\n" + matchBlock,
		}, true, ""},
		{"hardened: block removed", map[string]string{
			"/etc/ssh/sshd_config": baseSSHD + "PasswordAuthentication no\n",
		}, false, "sshd_config has no AuthorizedKeysCommand with aad_certhandler for Entra ID users"},
		{"block for other users only", map[string]string{
			"/etc/ssh/sshd_config": "Match User admin,!*@*\n  AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n",
		}, false, "no AuthorizedKeysCommand"},
		{"earlier Match overrides", map[string]string{
			"/etc/ssh/sshd_config": "Match All\n  AuthorizedKeysCommand /usr/local/bin/keys %u\n" + matchBlock,
		}, false, "AuthorizedKeysCommand for Entra ID users is '/usr/local/bin/keys %u' (set in /etc/ssh/sshd_config)"},
		{"Match in Include file ends with it", map[string]string{
			"/etc/ssh/sshd_config":                 "Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n",
			"/etc/ssh/sshd_config.d/10-admin.conf": "Match User admin\n  X11Forwarding no\n",
		}, true, ""},
		{"quoted Match pattern", map[string]string{
			"/etc/ssh/sshd_config": "Match User \"*@*\" # quoted\n  AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n",
		}, true, ""},
		{"quoted command reported without quotes", map[string]string{
			"/etc/ssh/sshd_config": "AuthorizedKeysCommand \"/usr/local/bin/keys\" %u\n",
		}, false, "AuthorizedKeysCommand for Entra ID users is '/usr/local/bin/keys %u'"},
		{"commented out", map[string]string{
			"/etc/ssh/sshd_config": "#Match User *@*\n#  AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n",
		}, false, "no AuthorizedKeysCommand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := wiredRoot(t)
			for p, d := range c.files {
				write(t, root, p, d)
			}
			err := Verify(context.Background(), Options{Runner: noSSHD(), Root: root})
			if c.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ps, msg := problemsOf(t, err)
			if checks(ps) != "sshd" || !strings.Contains(msg, c.frag) || !strings.Contains(msg, "hardening tool") {
				t.Errorf("%s: %s", checks(ps), msg)
			}
		})
	}
	// sshd -T failing for another reason also falls back.
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"sshd -T": {Result: cmdrun.Result{Stderr: []byte("Missing privilege separation directory: /run/sshd\n"), ExitCode: 255}},
	}}
	if err := Verify(context.Background(), Options{Runner: f, Root: wiredRoot(t)}); err != nil {
		t.Fatal(err)
	}
	// No sshd_config at all.
	root := wiredRoot(t)
	if err := root.RemoveIfExists("/etc/ssh/sshd_config"); err != nil {
		t.Fatal(err)
	}
	ps, msg := problemsOf(t, Verify(context.Background(), Options{Runner: noSSHD(), Root: root}))
	if checks(ps) != "sshd" || !strings.Contains(msg, "could not be read") {
		t.Error(msg)
	}
}

func TestVerifyNSS(t *testing.T) {
	for name, content := range map[string]string{
		"no aad":         "passwd: files systemd\ngroup: files aad\n",
		"commented":      "#passwd: files aad\npasswd: files\n",
		"aad as comment": "passwd: files # aad\n",
	} {
		root := wiredRoot(t)
		write(t, root, "/etc/nsswitch.conf", content)
		ps, msg := problemsOf(t, Verify(context.Background(), Options{Runner: noSSHD(), Root: root}))
		if checks(ps) != "nss" || !strings.Contains(msg, "/etc/nsswitch.conf has no aad source on its passwd line (") {
			t.Errorf("%s: %s", name, msg)
		}
	}
	root := wiredRoot(t)
	write(t, root, "/etc/nsswitch.conf", "passwd:files aad\n")
	if err := Verify(context.Background(), Options{Runner: noSSHD(), Root: root}); err != nil {
		t.Errorf("no space after colon: %v", err)
	}
	_ = root.RemoveIfExists("/etc/nsswitch.conf")
	_, msg := problemsOf(t, Verify(context.Background(), Options{Runner: noSSHD(), Root: root}))
	if !strings.Contains(msg, "/etc/nsswitch.conf is missing") {
		t.Error(msg)
	}
}

func TestVerifyPAM(t *testing.T) {
	root := wiredRoot(t)
	write(t, root, "/etc/pam.d/sshd", "@include common-auth\n# account required pam_aad.so\n")
	ps, msg := problemsOf(t, Verify(context.Background(), Options{Runner: noSSHD(), Root: root}))
	want := "aadsshlogin was installed but SSH login with Entra ID is not wired: PAM has no pam_aad entry in /etc/pam.d (on Debian/Ubuntu, pam-auth-update refuses to update locally modified /etc/pam.d/common-* files: run 'sudo pam-auth-update --force' or undo the local edits, then re-apply the extension)."
	if checks(ps) != "pam" || msg != want {
		t.Errorf("got  %s\nwant %s", msg, want)
	}
	// Without pam-auth-update the hint is about other tools.
	_ = root.RemoveIfExists("/usr/share/pam-configs/unix")
	_ = root.RemoveIfExists("/usr/share/pam-configs")
	_, msg = problemsOf(t, Verify(context.Background(), Options{Runner: noSSHD(), Root: root}))
	if !strings.Contains(msg, "authselect") {
		t.Error(msg)
	}
}

func TestVerifySELinux(t *testing.T) {
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"sshd -T":     {Result: cmdrun.Result{Stdout: []byte("authorizedkeyscommand /usr/sbin/aad_certhandler %u %k\n")}},
		"semodule -l": {Result: cmdrun.Result{Stdout: []byte("abrt\t1.4.1\naad_permissions_old\n")}},
	}}
	ps, msg := problemsOf(t, Verify(context.Background(), Options{Runner: f, Root: wiredRoot(t), SELinux: true}))
	if checks(ps) != "selinux" || !strings.Contains(msg, "the SELinux module aad_permissions is not loaded") {
		t.Error(msg)
	}
	// semodule that runs but cannot read the store.
	f.Responses["semodule -l"] = cmdrun.FakeResponse{Result: cmdrun.Result{ExitCode: 1, Stderr: []byte("semodule:  Failed!\n")}}
	ps, msg = problemsOf(t, Verify(context.Background(), Options{Runner: f, Root: wiredRoot(t), SELinux: true}))
	if checks(ps) != "selinux" || !strings.Contains(msg, "'semodule -l' could not list") {
		t.Error(msg)
	}
	delete(f.Responses, "semodule -l")
	f.Strict = true
	ps, msg = problemsOf(t, Verify(context.Background(), Options{Runner: f, Root: wiredRoot(t), SELinux: true}))
	if checks(ps) != "selinux" || !strings.Contains(msg, "'semodule -l' could not list") {
		t.Error(msg)
	}
	// Not asked for: not run.
	if err := Verify(context.Background(), Options{Runner: f, Root: wiredRoot(t)}); err != nil {
		t.Error(err)
	}
}

func TestVerifyEverythingBrokenFitsMessage(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	write(t, root, "/usr/share/pam-configs/unix", "x")
	ps, msg := problemsOf(t, Verify(context.Background(), Options{Runner: noSSHD(), Root: root, SELinux: true}))
	if checks(ps) != "nss,pam,sshd,selinux" {
		t.Errorf("checks %s", checks(ps))
	}
	for _, frag := range []string{"nsswitch.conf", "pam_aad", "sshd_config", "aad_permissions"} {
		if !strings.Contains(msg, frag) {
			t.Errorf("message lacks %q: %s", frag, msg)
		}
	}
	t.Log(len(msg), msg)
}

func TestMessageTruncation(t *testing.T) {
	var ps Problems
	for i := 0; i < 30; i++ {
		ps = append(ps, Problem{Check: "x", Detail: "a fairly long detail about something", Hint: strings.Repeat("h", 50)})
	}
	if msg := message(ps); len([]rune(msg)) != maxMessage || !strings.HasSuffix(msg, "…") {
		t.Errorf("len %d: %s", len([]rune(msg)), msg)
	}
}

func TestQuick(t *testing.T) {
	root := wiredRoot(t)
	if err := Quick(root); err != nil {
		t.Fatal(err)
	}
	_ = root.RemoveIfExists("/usr/sbin/aad_certhandler")
	write(t, root, "/etc/ssh/sshd_config", baseSSHD)
	ps, msg := problemsOf(t, Quick(root))
	if checks(ps) != "package,sshd" || !strings.Contains(msg, "/usr/sbin/aad_certhandler is missing") ||
		!strings.Contains(msg, "/etc/ssh/sshd_config does not mention aad_certhandler") {
		t.Errorf("%s: %s", checks(ps), msg)
	}
	// An Include file counts.
	write(t, root, "/usr/sbin/aad_certhandler", "")
	write(t, root, "/etc/ssh/sshd_config.d/aad.conf", matchBlock)
	if err := Quick(root); err != nil {
		t.Error(err)
	}
}
