// labtool: the pieces of the real-cluster lab (tools/lab) that are programs rather than scripts.
// One static binary with one subcommand per piece, so the lab builds and caches one thing:
//
//	serve        the lab's mirror: a read-only OCI registry (from an OCI image layout) and static
//	             files (the apt repositories) over HTTPS, with a request log
//	gcp          GCE's metadata server and a token-checking HTTPS front for Cloud Storage
//	image        builds a one-layer image from a directory into an OCI image layout
//	crio-config  the CRI-O stand-in's configuration: CRI-O's drop-ins and containers-registries.conf
//	             turned into containerd's configuration (the stand-in then runs containerd)
//	systemctl    the systemd stand-in behind `systemctl` on a lab machine (units, drop-ins, restarts)
//	cni-node     the CNI stand-in's per-node agent (a bridge for the node's pod CIDR, routes to the others)
//	echo, get    a workload for the tier's Service test: an HTTP server naming its host, and a client
//
// Nothing here is part of what `pulumi up` deploys; it stands in for what a GCE VM or the internet
// would provide (docs/limitations.md names each stand-in).
package main

import (
	"fmt"
	"os"
	"sort"
)

var commands = map[string]func(args []string) error{
	"serve":       serve,
	"gcp":         gcp,
	"image":       buildImage,
	"crio-config": crioConfig,
	"systemctl":   systemctl,
	"cni-node":    cniNode,
	"echo":        echoServer,
	"get":         httpGet,
}

func main() {
	name := ""
	args := os.Args[1:]
	// Installed as /usr/bin/systemctl on a machine, it is called by that name.
	if base := baseName(os.Args[0]); base == "systemctl" {
		name = base
	} else if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	run, ok := commands[name]
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: labtool <%s> ...\n", joinWords(names, "|"))
		os.Exit(2)
	}
	if err := run(args); err != nil {
		if coded, ok := err.(exitCode); ok {
			os.Exit(int(coded))
		}
		fmt.Fprintf(os.Stderr, "labtool %s: %v\n", name, err)
		os.Exit(1)
	}
}

// exitCode ends the program with that status and no message (systemctl's is-active and friends).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func baseName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}

func joinWords(words []string, sep string) string {
	out := ""
	for i, w := range words {
		if i > 0 {
			out += sep
		}
		out += w
	}
	return out
}
