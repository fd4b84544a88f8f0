// registries-check prints where CRI-O would pull an image from, given a registries.conf and its
// drop-in directory: the pull sources, mirror first, one reference per line. It uses
// go.podman.io/image's sysregistriesv2, the library CRI-O itself reads those files with, so the
// artifact suite checks the rendered registry mirror drop-in with the real consumer's parser and
// rules (it rejects, for example, a location with a URI scheme).
//
// Usage: registries-check <registries.conf> <registries.conf.d> <image>
package main

import (
	"fmt"
	"os"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: registries-check <registries.conf> <registries.conf.d> <image>")
		os.Exit(2)
	}
	ctx := &types.SystemContext{SystemRegistriesConfPath: os.Args[1], SystemRegistriesConfDirPath: os.Args[2]}
	ref, err := reference.ParseNormalizedNamed(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ref = reference.TagNameOnly(ref)
	registry, err := sysregistriesv2.FindRegistry(ctx, ref.String())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if registry == nil {
		fmt.Println(ref.String())
		return
	}
	sources, err := registry.PullSourcesFromReference(ref)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, source := range sources {
		fmt.Println(source.Reference.String())
	}
}
