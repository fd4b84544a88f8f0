package main

// Builds a one-layer linux/amd64 image from a directory (the files as they are, owned by root) and
// puts it into an OCI image layout under each name it is given, replacing an older image of that
// name. Nothing is pulled: the base is empty, as for a distroless image.

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func buildImage(args []string) error {
	flags := flag.NewFlagSet("image", flag.ContinueOnError)
	out := flags.String("out", "", "OCI image layout to add the image to (created when missing)")
	rootfs := flags.String("rootfs", "", "directory that becomes the image's file system")
	entrypoint := flags.String("entrypoint", "", "entrypoint, words separated by spaces")
	var refs, env repeated
	flags.Var(&refs, "ref", "name:tag the image is served as (repeatable)")
	flags.Var(&env, "env", "KEY=value (repeatable)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *out == "" || *rootfs == "" || len(refs) == 0 {
		return fmt.Errorf("--out, --rootfs and at least one --ref are required")
	}
	archive, err := tarDirectory(*rootfs)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(archive)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	if *entrypoint != "" {
		cfg.Config.Entrypoint = strings.Fields(*entrypoint)
	}
	cfg.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	path, err := layout.FromPath(*out)
	if err != nil {
		if path, err = layout.Write(*out, empty.Index); err != nil {
			return err
		}
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	for _, ref := range refs {
		if err := path.ReplaceImage(img, match.Annotation(refNameAnnotation, ref),
			layout.WithAnnotations(map[string]string{refNameAnnotation: ref}), layout.WithPlatform(platform)); err != nil {
			return fmt.Errorf("adding %s: %w", ref, err)
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", digest, strings.Join(refs, " "))
	return nil
}

var epoch = time.Unix(0, 0)

// tarDirectory archives a directory's contents with root ownership and fixed times, so the same
// files always make the same layer (and the same digests).
func tarDirectory(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		header, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		header.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			header.Name += "/"
		}
		header.Uid, header.Gid, header.Uname, header.Gname = 0, 0, "root", "root"
		header.ModTime, header.AccessTime, header.ChangeTime = epoch, epoch, epoch
		header.Format = tar.FormatPAX
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
