package selinux

import (
	"context"
	"fmt"
	"strings"

	"github.com/aadsshlogin/handler/cmdrun"
)

// Modules is the set of loaded policy modules by name.
type Modules map[string]bool

// ListModules runs "semodule -l", which lists the enabled modules at their
// highest priority: the modules the loaded policy was built from.
func ListModules(ctx context.Context, r cmdrun.Runner) (Modules, error) {
	res, err := r.Run(ctx, cmdrun.Cmd{Name: "semodule", Args: []string{"-l"}, Timeout: cmdTimeout})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("semodule -l exited %d: %s", res.ExitCode, cmdrun.Tail(res.Combined(), 200))
	}
	return ParseModuleList(res.Stdout), nil
}

// ParseModuleList reads "semodule -l": one module a line, the name first
// ("aad_permissions" since policycoreutils 2.5, "aad_permissions\t1.0"
// before).
func ParseModuleList(out []byte) Modules {
	mods := Modules{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			mods[f[0]] = true
		}
	}
	return mods
}
