package sandbox

import (
	"fmt"
	"strings"
)

// DistroSpec describes a distribution look-alike built on the Debian image,
// or (Suite set) a real Debian root.
type DistroSpec struct {
	Name string // "ubuntu-22.04", "rhel-9.4", "debian-13-real", ...
	// Suite, when set, means a real Debian root of this suite ("bullseye",
	// "bookworm", "trixie"), built with mmdebstrap (RealImage), instead of
	// the look-alike: its own os-release and identity files are kept (NewRoot
	// checks that they match OSRelease), and its apt, dpkg and OpenSSH are
	// that release's.
	Suite string
	// OSRelease is the full /etc/os-release content written into a
	// look-alike, or the content expected of a real root.
	OSRelease string
	Family    string // "deb" or "rpm"
	// Manager is the package manager the real distribution uses: "apt",
	// "dnf", "yum", "tdnf" or "zypper" (yum and tdnf are dnf symlinks here).
	Manager string
	// ReleaseVer is the rpm system-release(releasever) registered by the
	// fakebase rpm in rpm-family roots ("9", "2.0", ...).
	ReleaseVer string
	// ReleaseFiles are extra identity files written into the root
	// (/etc/lsb-release, /etc/redhat-release, ...).
	ReleaseFiles map[string]string
	// Extra is optional extra preparation, run last by NewRoot.
	Extra func(r *Root) error
}

// Field returns an os-release field of the spec (unquoted), or "".
func (d DistroSpec) Field(key string) string {
	for _, line := range strings.Split(d.OSRelease, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && k == key {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func osRelease(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", kv[i], kv[i+1])
	}
	return b.String()
}

func ubuntu(version, point, codename, nick string) DistroSpec {
	kv := []string{
		"NAME", `"Ubuntu"`,
		"VERSION", fmt.Sprintf(`"%s LTS (%s)"`, point, nick),
		"ID", "ubuntu",
		"ID_LIKE", "debian",
		"PRETTY_NAME", fmt.Sprintf(`"Ubuntu %s LTS"`, point),
		"VERSION_ID", `"` + version + `"`,
		"HOME_URL", `"https://www.ubuntu.com/"`,
		"SUPPORT_URL", `"https://help.ubuntu.com/"`,
		"BUG_REPORT_URL", `"https://bugs.launchpad.net/ubuntu/"`,
	}
	if codename != "" {
		kv = append(kv, "VERSION_CODENAME", codename, "UBUNTU_CODENAME", codename)
	} else {
		// 14.04 has no VERSION_CODENAME.
		kv[3] = fmt.Sprintf(`"%s LTS, %s"`, point, nick)
	}
	return DistroSpec{
		Name: "ubuntu-" + version, Family: "deb", Manager: "apt", OSRelease: osRelease(kv...),
		ReleaseFiles: map[string]string{
			"/etc/lsb-release": fmt.Sprintf("DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=%s\nDISTRIB_CODENAME=%s\nDISTRIB_DESCRIPTION=\"Ubuntu %s LTS\"\n",
				version, codename, point),
		},
	}
}

func debian(version, codename string) DistroSpec {
	return DistroSpec{
		Name: "debian-" + version, Family: "deb", Manager: "apt",
		OSRelease: osRelease(
			"PRETTY_NAME", fmt.Sprintf(`"Debian GNU/Linux %s (%s)"`, version, codename),
			"NAME", `"Debian GNU/Linux"`,
			"VERSION_ID", `"`+version+`"`,
			"VERSION", fmt.Sprintf(`"%s (%s)"`, version, codename),
			"VERSION_CODENAME", codename,
			"ID", "debian",
			"HOME_URL", `"https://www.debian.org/"`,
			"SUPPORT_URL", `"https://www.debian.org/support"`,
			"BUG_REPORT_URL", `"https://bugs.debian.org/"`,
		),
		ReleaseFiles: map[string]string{"/etc/debian_version": version + ".0\n"},
	}
}

func rhelLike(name, manager, releasever, redhatRelease string, kv ...string) DistroSpec {
	return DistroSpec{
		Name: name, Family: "rpm", Manager: manager, ReleaseVer: releasever, OSRelease: osRelease(kv...),
		ReleaseFiles: map[string]string{
			"/etc/redhat-release": redhatRelease + "\n",
			"/etc/system-release": redhatRelease + "\n",
		},
	}
}

func suse(name, releasever string, kv ...string) DistroSpec {
	return DistroSpec{Name: name, Family: "rpm", Manager: "zypper", ReleaseVer: releasever, OSRelease: osRelease(kv...)}
}

// realDebian is a real Debian root of the suite, named debian-<version>-real.
func realDebian(version, codename string) DistroSpec {
	d := debian(version, codename)
	d.Name += "-real"
	d.Suite = codename
	d.ReleaseFiles = nil
	return d
}

// Distros are the look-alikes and real roots tests can ask for (read-only).
var Distros = map[string]DistroSpec{
	"ubuntu-14.04": ubuntu("14.04", "14.04.6", "", "Trusty Tahr"),
	"ubuntu-16.04": ubuntu("16.04", "16.04.7", "xenial", "Xenial Xerus"),
	"ubuntu-18.04": ubuntu("18.04", "18.04.6", "bionic", "Bionic Beaver"),
	"ubuntu-20.04": ubuntu("20.04", "20.04.6", "focal", "Focal Fossa"),
	"ubuntu-22.04": ubuntu("22.04", "22.04.4", "jammy", "Jammy Jellyfish"),
	"ubuntu-24.04": ubuntu("24.04", "24.04.1", "noble", "Noble Numbat"),
	"ubuntu-25.10": ubuntu("25.10", "25.10", "questing", "Questing Quokka"),
	"ubuntu-26.04": ubuntu("26.04", "26.04", "resolute", "Resolute Raccoon"),
	"debian-9":     debian("9", "stretch"),
	"debian-11":    debian("11", "bullseye"),
	"debian-12":    debian("12", "bookworm"),
	"debian-13":    debian("13", "trixie"),
	// Real Debian roots (their own apt 2.2, 2.6 and 3.0).
	"debian-11-real": realDebian("11", "bullseye"),
	"debian-12-real": realDebian("12", "bookworm"),
	"debian-13-real": realDebian("13", "trixie"),
	"rhel-7.9": rhelLike("rhel-7.9", "yum", "7", "Red Hat Enterprise Linux Server release 7.9 (Maipo)",
		"NAME", `"Red Hat Enterprise Linux Server"`, "VERSION", `"7.9 (Maipo)"`, "ID", `"rhel"`, "ID_LIKE", `"fedora"`,
		"VARIANT", `"Server"`, "VARIANT_ID", `"server"`, "VERSION_ID", `"7.9"`,
		"PRETTY_NAME", `"Red Hat Enterprise Linux Server 7.9 (Maipo)"`, "CPE_NAME", `"cpe:/o:redhat:enterprise_linux:7.9:GA:server"`),
	"rhel-8.10": rhelLike("rhel-8.10", "dnf", "8", "Red Hat Enterprise Linux release 8.10 (Ootpa)",
		"NAME", `"Red Hat Enterprise Linux"`, "VERSION", `"8.10 (Ootpa)"`, "ID", `"rhel"`, "ID_LIKE", `"fedora"`,
		"VERSION_ID", `"8.10"`, "PLATFORM_ID", `"platform:el8"`, "PRETTY_NAME", `"Red Hat Enterprise Linux 8.10 (Ootpa)"`,
		"CPE_NAME", `"cpe:/o:redhat:enterprise_linux:8::baseos"`),
	"rhel-9.4": rhelLike("rhel-9.4", "dnf", "9", "Red Hat Enterprise Linux release 9.4 (Plow)",
		"NAME", `"Red Hat Enterprise Linux"`, "VERSION", `"9.4 (Plow)"`, "ID", `"rhel"`, "ID_LIKE", `"fedora"`,
		"VERSION_ID", `"9.4"`, "PLATFORM_ID", `"platform:el9"`, "PRETTY_NAME", `"Red Hat Enterprise Linux 9.4 (Plow)"`,
		"CPE_NAME", `"cpe:/o:redhat:enterprise_linux:9::baseos"`),
	"rhel-10.1": rhelLike("rhel-10.1", "dnf", "10", "Red Hat Enterprise Linux release 10.1 (Coughlan)",
		"NAME", `"Red Hat Enterprise Linux"`, "VERSION", `"10.1 (Coughlan)"`, "ID", `"rhel"`, "ID_LIKE", `"centos fedora"`,
		"VERSION_ID", `"10.1"`, "PLATFORM_ID", `"platform:el10"`, "PRETTY_NAME", `"Red Hat Enterprise Linux 10.1 (Coughlan)"`,
		"CPE_NAME", `"cpe:/o:redhat:enterprise_linux:10::baseos"`),
	"almalinux-10.0": rhelLike("almalinux-10.0", "dnf", "10", "AlmaLinux release 10.0 (Purple Lion)",
		"NAME", `"AlmaLinux"`, "VERSION", `"10.0 (Purple Lion)"`, "ID", `"almalinux"`, "ID_LIKE", `"rhel centos fedora"`,
		"VERSION_ID", `"10.0"`, "PLATFORM_ID", `"platform:el10"`, "PRETTY_NAME", `"AlmaLinux 10.0 (Purple Lion)"`,
		"CPE_NAME", `"cpe:/o:almalinux:almalinux:10::baseos"`),
	"rocky-10.0": rhelLike("rocky-10.0", "dnf", "10", "Rocky Linux release 10.0 (Red Quartz)",
		"NAME", `"Rocky Linux"`, "VERSION", `"10.0 (Red Quartz)"`, "ID", `"rocky"`, "ID_LIKE", `"rhel centos fedora"`,
		"VERSION_ID", `"10.0"`, "PLATFORM_ID", `"platform:el10"`, "PRETTY_NAME", `"Rocky Linux 10.0 (Red Quartz)"`,
		"CPE_NAME", `"cpe:/o:rocky:rocky:10::baseos"`),
	"ol-10.0": rhelLike("ol-10.0", "dnf", "10", "Red Hat Enterprise Linux release 10.0 (Coughlan)",
		"NAME", `"Oracle Linux Server"`, "VERSION", `"10.0"`, "ID", `"ol"`, "ID_LIKE", `"fedora"`, "VARIANT", `"Server"`,
		"VARIANT_ID", `"server"`, "VERSION_ID", `"10.0"`, "PLATFORM_ID", `"platform:el10"`,
		"PRETTY_NAME", `"Oracle Linux Server 10.0"`, "CPE_NAME", `"cpe:/o:oracle:linux:10:0:server"`),
	"centos-7": rhelLike("centos-7", "yum", "7", "CentOS Linux release 7.9.2009 (Core)",
		"NAME", `"CentOS Linux"`, "VERSION", `"7 (Core)"`, "ID", `"centos"`, "ID_LIKE", `"rhel fedora"`,
		"VERSION_ID", `"7"`, "PRETTY_NAME", `"CentOS Linux 7 (Core)"`, "CPE_NAME", `"cpe:/o:centos:centos:7"`),
	"almalinux-9.4": rhelLike("almalinux-9.4", "dnf", "9", "AlmaLinux release 9.4 (Seafoam Ocelot)",
		"NAME", `"AlmaLinux"`, "VERSION", `"9.4 (Seafoam Ocelot)"`, "ID", `"almalinux"`, "ID_LIKE", `"rhel centos fedora"`,
		"VERSION_ID", `"9.4"`, "PLATFORM_ID", `"platform:el9"`, "PRETTY_NAME", `"AlmaLinux 9.4 (Seafoam Ocelot)"`,
		"CPE_NAME", `"cpe:/o:almalinux:almalinux:9::baseos"`),
	"rocky-9.4": rhelLike("rocky-9.4", "dnf", "9", "Rocky Linux release 9.4 (Blue Onyx)",
		"NAME", `"Rocky Linux"`, "VERSION", `"9.4 (Blue Onyx)"`, "ID", `"rocky"`, "ID_LIKE", `"rhel centos fedora"`,
		"VERSION_ID", `"9.4"`, "PLATFORM_ID", `"platform:el9"`, "PRETTY_NAME", `"Rocky Linux 9.4 (Blue Onyx)"`,
		"CPE_NAME", `"cpe:/o:rocky:rocky:9::baseos"`),
	"ol-8.10": rhelLike("ol-8.10", "dnf", "8", "Red Hat Enterprise Linux release 8.10 (Ootpa)",
		"NAME", `"Oracle Linux Server"`, "VERSION", `"8.10"`, "ID", `"ol"`, "ID_LIKE", `"fedora"`, "VARIANT", `"Server"`,
		"VARIANT_ID", `"server"`, "VERSION_ID", `"8.10"`, "PLATFORM_ID", `"platform:el8"`,
		"PRETTY_NAME", `"Oracle Linux Server 8.10"`, "CPE_NAME", `"cpe:/o:oracle:linux:8:10:server"`),
	"sles-12.5": suse("sles-12.5", "12",
		"NAME", `"SLES"`, "VERSION", `"12-SP5"`, "VERSION_ID", `"12.5"`, "PRETTY_NAME", `"SUSE Linux Enterprise Server 12 SP5"`,
		"ID", `"sles"`, "ANSI_COLOR", `"0;32"`, "CPE_NAME", `"cpe:/o:suse:sles:12:sp5"`),
	"sles-15.5": suse("sles-15.5", "15",
		"NAME", `"SLES"`, "VERSION", `"15-SP5"`, "VERSION_ID", `"15.5"`, "PRETTY_NAME", `"SUSE Linux Enterprise Server 15 SP5"`,
		"ID", `"sles"`, "ID_LIKE", `"suse"`, "ANSI_COLOR", `"0;32"`, "CPE_NAME", `"cpe:/o:suse:sles:15:sp5"`),
	"sles-15.6": suse("sles-15.6", "15",
		"NAME", `"SLES"`, "VERSION", `"15-SP6"`, "VERSION_ID", `"15.6"`, "PRETTY_NAME", `"SUSE Linux Enterprise Server 15 SP6"`,
		"ID", `"sles"`, "ID_LIKE", `"suse"`, "ANSI_COLOR", `"0;32"`, "CPE_NAME", `"cpe:/o:suse:sles:15:sp6"`),
	"sles-16.0": suse("sles-16.0", "16",
		"NAME", `"SLES"`, "VERSION", `"16.0"`, "VERSION_ID", `"16.0"`, "PRETTY_NAME", `"SUSE Linux Enterprise Server 16.0"`,
		"ID", `"sles"`, "ID_LIKE", `"suse"`, "ANSI_COLOR", `"0;32"`, "CPE_NAME", `"cpe:/o:suse:sles:16:16.0"`),
	"opensuse-leap-15.5": suse("opensuse-leap-15.5", "15",
		"NAME", `"openSUSE Leap"`, "VERSION", `"15.5"`, "ID", `"opensuse-leap"`, "ID_LIKE", `"suse opensuse"`,
		"VERSION_ID", `"15.5"`, "PRETTY_NAME", `"openSUSE Leap 15.5"`, "ANSI_COLOR", `"0;32"`, "CPE_NAME", `"cpe:/o:opensuse:leap:15.5"`),
	"opensuse-leap-15.6": suse("opensuse-leap-15.6", "15",
		"NAME", `"openSUSE Leap"`, "VERSION", `"15.6"`, "ID", `"opensuse-leap"`, "ID_LIKE", `"suse opensuse"`,
		"VERSION_ID", `"15.6"`, "PRETTY_NAME", `"openSUSE Leap 15.6"`, "ANSI_COLOR", `"0;32"`, "CPE_NAME", `"cpe:/o:opensuse:leap:15.6"`),
	"mariner-2.0": {
		Name: "mariner-2.0", Family: "rpm", Manager: "tdnf", ReleaseVer: "2.0",
		OSRelease: osRelease("NAME", `"Common Base Linux Mariner"`, "VERSION", `"2.0.20240609"`, "ID", "mariner",
			"VERSION_ID", `"2.0"`, "PRETTY_NAME", `"CBL-Mariner/Linux"`, "ANSI_COLOR", `"1;34"`,
			"HOME_URL", `"https://aka.ms/cbl-mariner"`),
		ReleaseFiles: map[string]string{"/etc/mariner-release": "CBL-Mariner 2.0.20240609\nMARINER_BUILD_NUMBER=sandbox\n"},
	},
	"azurelinux-3.0": {
		Name: "azurelinux-3.0", Family: "rpm", Manager: "tdnf", ReleaseVer: "3.0",
		OSRelease: osRelease("NAME", `"Microsoft Azure Linux"`, "VERSION", `"3.0.20240824"`, "ID", "azurelinux",
			"VERSION_ID", `"3.0"`, "PRETTY_NAME", `"Microsoft Azure Linux 3.0"`, "ANSI_COLOR", `"1;34"`,
			"HOME_URL", `"https://aka.ms/azurelinux"`),
		ReleaseFiles: map[string]string{"/etc/azurelinux-release": "Microsoft Azure Linux 3.0.20240824\nAZURELINUX_BUILD_NUMBER=sandbox\n"},
	},
	"fedora-40": rhelLike("fedora-40", "dnf", "40", "Fedora release 40 (Forty)",
		"NAME", `"Fedora Linux"`, "VERSION", `"40 (Forty)"`, "ID", "fedora", "VERSION_ID", "40", "VERSION_CODENAME", `""`,
		"PLATFORM_ID", `"platform:f40"`, "PRETTY_NAME", `"Fedora Linux 40 (Forty)"`, "CPE_NAME", `"cpe:/o:fedoraproject:fedora:40"`),
}
