package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchReport is a typical successful install report: a message and the
// substatus entries a real install writes.
func benchReport() Report {
	return Report{
		Operation: "Install",
		Status:    Success,
		Message:   "SSH login with Microsoft Entra ID is configured: aadsshlogin 1.0.031050001 is installed and wired into sshd, NSS and PAM.",
		Substatus: []Substatus{
			{Name: "Repository", Status: Success, Message: "https://packages.microsoft.com/repos/microsoft-debian-bookworm-prod bookworm main; signing key BC528686B50D79E339D3721CEB3E94ADBE1229CF"},
			{Name: "PasswordAuthentication", Status: Warning, Message: "sshd_config sets PasswordAuthentication no in a Match block; Entra ID logins with certificates are unaffected."},
		},
	}
}

var benchSettings = []byte(`{"runtimeSettings": [{"handlerSettings": {"publicSettings": {"signingKeyFingerprints": ["BC528686B50D79E339D3721CEB3E94ADBE1229CF"]}, "protectedSettings": null, "protectedSettingsCertThumbprint": null}}]}`)

var benchEnvironment = []byte(`[{"name": "Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux", "version": 1.0, "handlerEnvironment": {"logFolder": "/var/log/azure/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux", "configFolder": "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.3000.1/config", "statusFolder": "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.3000.1/status", "heartbeatFile": "/var/lib/waagent/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.3000.1/heartbeat.log", "eventsFolder": "/var/log/azure/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux/events"}}]`)

func BenchmarkEncodeStatus(b *testing.B) {
	r, now := benchReport(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeStatus(r, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteStatus includes the atomic write (temporary file, fsync,
// rename) that every verb ends with.
func BenchmarkWriteStatus(b *testing.B) {
	dir := b.TempDir()
	r, now := benchReport(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteStatus(dir, 0, r, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadStatus is what the no-op enable does to confirm the status.
func BenchmarkReadStatus(b *testing.B) {
	dir := b.TempDir()
	if err := WriteStatus(dir, 0, benchReport(), time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadStatus(dir, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSettings(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSettings(benchSettings, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEnvironment(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEnvironment(benchEnvironment); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMrseqRoundTrip(b *testing.B) {
	dir := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteMrseq(dir, 7); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := ReadMrseq(dir); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkEventsWrite writes one event file as a finished verb does (a
// fresh writer each time, the folder emptied now and then like the agent's
// collector, outside the timing).
func BenchmarkEventsWrite(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "events")
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		ev := NewEvents(dir, "1.0.3000.1", time.Now)
		if err := ev.Write(LevelInformational, "enable", "enable succeeded: SSH login with Microsoft Entra ID is configured.", "enable-0"); err != nil {
			b.Fatal(err)
		}
		if n++; n%200 == 0 {
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
}
