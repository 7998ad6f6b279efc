package checks

import (
	"context"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
)

func warningNames(ws []Warning) []string {
	var names []string
	for _, w := range ws {
		names = append(names, w.Name)
	}
	return names
}

const aadBlock = `
Match User *@*,????????-????-????-????-???????????? # Added by aadsshlogin installer
    AuthenticationMethods publickey
    PubkeyAuthentication yes
    AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k
    AuthorizedKeysCommandUser root
`

func TestSSHDConfigWarnings(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string
		where string
	}{
		{"clean", map[string]string{"/etc/ssh/sshd_config": "Port 22\nUsePAM yes\n" + aadBlock}, nil, ""},
		{"global AllowGroups", map[string]string{"/etc/ssh/sshd_config": "Port 22\nAllowGroups admins\n"},
			[]string{"SSHDGroupRestriction"}, "/etc/ssh/sshd_config:2"},
		{"lower case and =", map[string]string{"/etc/ssh/sshd_config": "  denygroups=nobody\n"},
			[]string{"SSHDGroupRestriction"}, "DenyGroups"},
		{"tab and = with spaces", map[string]string{"/etc/ssh/sshd_config": "AllowGroups\t = \"a b\"\n"},
			[]string{"SSHDGroupRestriction"}, ""},
		{"comment", map[string]string{"/etc/ssh/sshd_config": "#AllowGroups admins\n   # DenyGroups x\n"}, nil, ""},
		{"inside Match", map[string]string{"/etc/ssh/sshd_config": "Match User alice\n  AllowGroups admins\n"}, nil, ""},
		{"after Match all", map[string]string{"/etc/ssh/sshd_config": "Match User alice\n  X11Forwarding no\nMatch all\nAllowGroups admins\n"},
			[]string{"SSHDGroupRestriction"}, ""},
		{"included file", map[string]string{
			"/etc/ssh/sshd_config":                 "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n",
			"/etc/ssh/sshd_config.d/50-cis.conf":   "# CIS\nDenyGroups nogroup\n",
			"/etc/ssh/sshd_config.d/10-other.conf": "ClientAliveInterval 300\n",
		}, []string{"SSHDGroupRestriction"}, "/etc/ssh/sshd_config.d/50-cis.conf:2"},
		{"relative include", map[string]string{
			"/etc/ssh/sshd_config":         "include conf.d/*\n",
			"/etc/ssh/conf.d/hardening.cf": "PubkeyAuthentication no\n",
		}, []string{"SSHDPubkeyAuthentication"}, "/etc/ssh/conf.d/hardening.cf:1"},
		{"include inside Match", map[string]string{
			"/etc/ssh/sshd_config": "Match Group staff\n  Include /etc/ssh/staff.conf\n",
			"/etc/ssh/staff.conf":  "AllowGroups staff\n",
		}, nil, ""},
		{"Match in included file ends with it", map[string]string{
			"/etc/ssh/sshd_config": "Include /etc/ssh/m.conf\nAllowGroups admins\n",
			"/etc/ssh/m.conf":      "Match User bob\n  PasswordAuthentication no\n",
		}, []string{"SSHDGroupRestriction"}, "/etc/ssh/sshd_config:2"},
		{"Match all in a file included under Match", map[string]string{
			"/etc/ssh/sshd_config": "Match Group staff\n  Include /etc/ssh/staff.conf\n",
			"/etc/ssh/staff.conf":  "Match all\nAllowGroups staff\n",
		}, nil, ""},
		{"single-quoted value", map[string]string{"/etc/ssh/sshd_config": "PubkeyAuthentication 'no'\n"},
			[]string{"SSHDPubkeyAuthentication"}, ""},
		{"quotes inside a token", map[string]string{"/etc/ssh/sshd_config": "PubkeyAuthentication n\"o\"\n"},
			[]string{"SSHDPubkeyAuthentication"}, ""},
		{"self include bounded", map[string]string{"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config\nPort 22\n"}, nil, ""},
		{"pubkey no global", map[string]string{"/etc/ssh/sshd_config": "PUBKEYAUTHENTICATION No\n" + aadBlock},
			[]string{"SSHDPubkeyAuthentication"}, ""},
		{"pubkey first value wins", map[string]string{"/etc/ssh/sshd_config": "PubkeyAuthentication yes\nPubkeyAuthentication no\n"}, nil, ""},
		{"pubkey no in Match", map[string]string{"/etc/ssh/sshd_config": "Match User legacy\n PubkeyAuthentication no\n"}, nil, ""},
		{"both", map[string]string{"/etc/ssh/sshd_config": "AllowGroups a\nAllowGroups b\nPubkeyAuthentication no\n"},
			[]string{"SSHDGroupRestriction", "SSHDPubkeyAuthentication"}, ""},
		{"CRLF", map[string]string{"/etc/ssh/sshd_config": "AllowGroups admins\r\n"}, []string{"SSHDGroupRestriction"}, ""},
		{"missing config", map[string]string{}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeRoot(t, tc.files)
			ws := SSHDWarnings(context.Background(), &cmdrun.Fake{Strict: true}, root, "1:9.2p1-2+deb12u3")
			if got := strings.Join(warningNames(ws), ","); got != strings.Join(tc.want, ",") {
				t.Fatalf("warnings %v, want %v", ws, tc.want)
			}
			if tc.where != "" && !strings.Contains(ws[0].Message, tc.where) {
				t.Errorf("message %q does not name %q", ws[0].Message, tc.where)
			}
		})
	}
}

func TestGroupWarningText(t *testing.T) {
	root := writeRoot(t, map[string]string{"/etc/ssh/sshd_config": "AllowGroups admins\n"})
	ws := SSHDWarnings(context.Background(), &cmdrun.Fake{Strict: true}, root, "1:9.2p1-2+deb12u3")
	if len(ws) != 1 || !strings.Contains(ws[0].Message, "Match User *,!*@*") {
		t.Errorf("got %v", ws)
	}
}

func TestOpenSSHVersionWarning(t *testing.T) {
	old := "unknown option -- V\nOpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017\nusage: sshd [-46DdeiqTt]"
	cases := []struct {
		name    string
		pkg     string // the OpenSSH server package's version
		fake    *cmdrun.Fake
		want    bool
		calls   int
		version string // in the message
	}{
		// The package tells: no process.
		{"old package", "7.4p1-22.el7_9", &cmdrun.Fake{Strict: true}, true, 0, "OpenSSH 7.4"},
		{"new package", "1:9.2p1-2+deb12u3", &cmdrun.Fake{Strict: true}, false, 0, ""},
		{"7.8 package is fine", "7.8p1-1", &cmdrun.Fake{Strict: true}, false, 0, ""},
		// No package, or a version that does not read: sshd is asked.
		{"old sshd", "", &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
			"sshd -V": {Result: cmdrun.Result{Stderr: []byte(old), ExitCode: 1}}}}, true, 1, "OpenSSH 7.4"},
		{"unreadable package version", "snapshot", &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
			"sshd -V": {Result: cmdrun.Result{Stderr: []byte(old), ExitCode: 1}}}}, true, 1, "OpenSSH 7.4"},
		{"new sshd", "", &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
			"sshd -V": {Result: cmdrun.Result{Stderr: []byte("OpenSSH_8.9p1 Ubuntu-3ubuntu0.10, OpenSSL 3.0.2 15 Mar 2022")}}}}, false, 1, ""},
		{"7.8 is fine", "", &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
			"sshd -V": {Result: cmdrun.Result{Stderr: []byte("OpenSSH_7.8p1")}}}}, false, 1, ""},
		{"fallback to ssh", "", &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
			"ssh -V": {Result: cmdrun.Result{Stderr: []byte("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips")}}}}, true, 2, "OpenSSH 7.4"},
		{"nothing installed", "", &cmdrun.Fake{Strict: true}, false, 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := SSHDWarnings(context.Background(), tc.fake, writeRoot(t, nil), tc.pkg)
			got := len(ws) == 1 && ws[0].Name == "OpenSSHVersion"
			if got != tc.want || len(tc.fake.Calls) != tc.calls {
				t.Errorf("warnings %v, calls %v", ws, tc.fake.Lines())
			}
			if got && (!strings.Contains(ws[0].Message, "ssh-rsa-cert-v01@openssh.com") || !strings.Contains(ws[0].Message, tc.version)) {
				t.Errorf("message %q", ws[0].Message)
			}
		})
	}
}

func TestParsePackageOpenSSHVersion(t *testing.T) {
	cases := []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"1:9.2p1-2+deb12u3", 9, 2, true},
		{"1:7.2p2-4ubuntu2.10", 7, 2, true},
		{"8.7p1-38.el9", 8, 7, true},
		{"7.4p1-22.el7_9", 7, 4, true},
		{"9.6p1-150600.6.3.1", 9, 6, true},
		{"10.0p1", 10, 0, true},
		{"", 0, 0, false},
		{"1:", 0, 0, false},
		{"x:9.2p1", 0, 0, false},
		{"9", 0, 0, false},
		{"9.", 0, 0, false},
		{"snapshot", 0, 0, false},
	}
	for _, tc := range cases {
		major, minor, ok := ParsePackageOpenSSHVersion(tc.in)
		if major != tc.major || minor != tc.minor || ok != tc.ok {
			t.Errorf("ParsePackageOpenSSHVersion(%q) = %d, %d, %v", tc.in, major, minor, ok)
		}
	}
}

func TestParseOpenSSHVersion(t *testing.T) {
	cases := []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017", 7, 4, true},
		{"OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 30 Jan 2024", 9, 6, true},
		{"OpenSSH_8.0p1", 8, 0, true},
		{"OpenSSH_10.0", 10, 0, true},
		{"sshd: unknown option\nOpenSSH_X OpenSSH_8.7p1", 8, 7, true},
		{"OpenSSH_", 0, 0, false},
		{"OpenSSH_7", 0, 0, false},
		{"OpenSSH_7.", 0, 0, false},
		{"Dropbear v2022.83", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range cases {
		major, minor, ok := ParseOpenSSHVersion(tc.in)
		if major != tc.major || minor != tc.minor || ok != tc.ok {
			t.Errorf("ParseOpenSSHVersion(%q) = %d, %d, %v", tc.in, major, minor, ok)
		}
	}
}
