package pkgmgr

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aadsshlogin/handler/failure"
)

// This file holds what all rpm-based back ends share: the rpm database
// queries and the signing-key handling.

// rpmInstalled asks rpm for the version-release of every name in one run
// (each start of rpm opens the whole database). rpm prints "package <name>
// is not installed" for each unknown name and exits with their number.
// Several versions can be installed at once (install-only packages); rpm
// lists them oldest first, so the last line of a name wins.
func (b *base) rpmInstalled(ctx context.Context, names ...string) (map[string]string, error) {
	versions := map[string]string{}
	if len(names) == 0 {
		return versions, nil
	}
	res, err := b.exec(ctx, nil, "rpm", append([]string{"-q", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"}, names...)...)
	if err != nil {
		return nil, err
	}
	missing := 0
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		line = strings.TrimSpace(line)
		if name, version, ok := strings.Cut(line, "\t"); ok {
			if slices.Contains(names, name) && version != "" {
				versions[name] = version
			}
		} else if strings.HasPrefix(line, "package ") && strings.HasSuffix(line, " is not installed") {
			missing++
		}
	}
	// rpm reports a broken database on stderr ("error: rpmdb: ...") and
	// may then call every package missing: that is not an answer.
	if res.ExitCode != 0 && (missing == 0 || strings.Contains(string(res.Stderr), "error:")) {
		return nil, commandCause("rpm -q "+strings.Join(names, " "), res)
	}
	return versions, nil
}

// rpmImportKey imports an armored public key into the rpm database, which
// dnf, yum, tdnf and zypper all consult for package signatures.
func (b *base) rpmImportKey(ctx context.Context, path string) error {
	res, err := b.exec(ctx, nil, "rpm", "--import", path)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return failure.New(failure.UntrustedKey, commandCause("rpm --import "+path, res),
			"Could not import the repository signing key %s into the rpm database: %s. Run 'sudo rpm --import %s' on the VM to see the full error.",
			path, strings.TrimSuffix(orDefault(decisiveLine(res.Combined()), "no output"), "."), path)
	}
	return nil
}

// normalizeFingerprint returns the fingerprint as lower-case hex without
// spaces or colons, or an error when it cannot be one.
func normalizeFingerprint(fp string) (string, error) {
	var sb strings.Builder
	for _, r := range strings.ToLower(fp) {
		switch {
		case r == ' ' || r == ':':
		case (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f'):
			sb.WriteRune(r)
		default:
			return "", fmt.Errorf("fingerprint %q is not hexadecimal", fp)
		}
	}
	if sb.Len() < 8 {
		return "", fmt.Errorf("fingerprint %q is too short", fp)
	}
	return sb.String(), nil
}

// rpmRemoveKey erases the gpg-pubkey pseudo-packages of one key. rpm names
// them gpg-pubkey-<key id>-<creation time>, where the key id is the last 8
// hex digits of the fingerprint (rpm ≥ 6 uses the whole fingerprint), so a
// version that is a suffix of the fingerprint identifies our key.
func (b *base) rpmRemoveKey(ctx context.Context, fingerprint string) error {
	fp, err := normalizeFingerprint(fingerprint)
	if err != nil {
		return fmt.Errorf("removing rpm key: %w", err)
	}
	res, err := b.exec(ctx, nil, "rpm", "-q", "gpg-pubkey", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		if strings.Contains(res.Combined(), "is not installed") {
			return nil // no keys at all
		}
		return commandCause("rpm -q gpg-pubkey", res)
	}
	for _, nvr := range strings.Fields(string(res.Stdout)) {
		rest, ok := strings.CutPrefix(nvr, "gpg-pubkey-")
		if !ok {
			continue
		}
		version, _, _ := strings.Cut(rest, "-")
		version = strings.ToLower(version)
		if len(version) < 8 || !strings.HasSuffix(fp, version) {
			continue
		}
		res, err := b.exec(ctx, nil, "rpm", "-e", nvr)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return failure.New(failure.PackageManagerFailed, commandCause("rpm -e "+nvr, res),
				"Could not remove the repository signing key %s from the rpm database: %s. Run 'sudo rpm -e %s' on the VM to see the full error.",
				nvr, strings.TrimSuffix(orDefault(decisiveLine(res.Combined()), "no output"), "."), nvr)
		}
		b.log.WithField("key", nvr).Info("removed repository signing key from the rpm database")
	}
	return nil
}

// installedOnly returns those names that rpm reports installed.
func (b *base) installedOnly(ctx context.Context, names []string) ([]string, error) {
	versions, err := b.rpmInstalled(ctx, names...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if _, ok := versions[n]; ok {
			out = append(out, n)
		}
	}
	return out, nil
}
