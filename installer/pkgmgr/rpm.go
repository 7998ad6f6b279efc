package pkgmgr

import (
	"context"
	"fmt"
	"strings"

	"github.com/aadsshlogin/handler/failure"
)

// This file holds what all rpm-based back ends share: the rpm database
// queries and the signing-key handling.

// rpmInstalled asks rpm for a package's version-release. rpm exits 1 with
// "package <name> is not installed" for unknown packages.
func (b *base) rpmInstalled(ctx context.Context, name string) (string, bool, error) {
	res, err := b.exec(ctx, nil, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", name)
	if err != nil {
		return "", false, err
	}
	if res.ExitCode != 0 {
		if res.ExitCode == 1 && strings.Contains(res.Combined(), "is not installed") {
			return "", false, nil
		}
		return "", false, commandCause("rpm -q "+name, res)
	}
	// Several versions can be installed at once (install-only packages);
	// rpm lists them oldest first, so the last line is the newest.
	lines := strings.Fields(strings.TrimSpace(string(res.Stdout)))
	if len(lines) == 0 {
		return "", false, nil
	}
	return lines[len(lines)-1], true, nil
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
	var out []string
	for _, n := range names {
		_, ok, err := b.rpmInstalled(ctx, n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}
