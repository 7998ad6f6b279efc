package handler

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/doctor"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/imds"
)

// doctorVerb is for people (and az vm run-command), not for the agent: it
// is not in HandlerManifest.json.
const doctorVerb = "doctor"

// runDoctor diagnoses the Entra login chain, read-only: no lock, no log,
// no status, nothing written (sshd -T may need a throwaway host key under
// /tmp, removed at once). Exit 0 when no check fails, DoctorFoundProblems
// otherwise.
func runDoctor(o Options) failure.Code {
	asJSON := false
	for _, a := range o.Args[2:] {
		switch strings.TrimLeft(strings.ToLower(a), "-") {
		case "json":
			asJSON = true
		case "h", "help":
			fmt.Fprintln(o.Stdout, "Usage: aadsshlogin-handler doctor [--json]\n\nChecks, read-only, everything SSH login with Microsoft Entra ID needs on this machine; run it as root. Exit code 0: no check failed; 32: at least one failed (docs/doctor.md).")
			return failure.OK
		default:
			fmt.Fprintf(o.Stderr, "Unknown option %q: doctor understands --json.\n", a)
			return failure.UnknownVerb
		}
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	if o.Runner == nil {
		o.Runner = cmdrun.Exec{Log: quiet}
	}
	client := o.IMDS
	if client == nil {
		client = imds.New(quiet)
	}
	do := doctor.Options{Version: o.Version, Root: o.Root, Runner: o.Runner, IMDS: client, Now: o.Now, Arch: o.Arch}
	if env, err := agent.FindEnvironment(o.ExeDir); err == nil {
		do.StatusFolder, do.HandlerDir = env.StatusFolder, env.HandlerDir
	}
	rep := doctor.Run(context.Background(), do)
	var err error
	if asJSON {
		err = rep.WriteJSON(o.Stdout)
	} else {
		err = rep.WriteText(o.Stdout)
	}
	if err != nil {
		fmt.Fprintln(o.Stderr, err)
	}
	if rep.Failed() {
		return failure.DoctorFoundProblems
	}
	return failure.OK
}
