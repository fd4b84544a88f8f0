package main

// The CRI-O stand-in. CRI-O cannot be had here (the Go module proxy refuses github.com/cri-o/cri-o,
// Debian has no package), so the lab's `cri-o` package runs containerd v2 on CRI-O's socket. What
// the project's scripts configure for CRI-O still takes effect, translated by this command each
// time the service starts:
//   - the pause image (crio.image.pause_image) from /etc/crio/crio.conf and crio.conf.d/*.conf, in
//     CRI-O's order (the file, then the drop-ins by name; later wins), becomes containerd's sandbox
//     image;
//   - each [[registry]] of /etc/containers/registries.conf and registries.conf.d/*.conf whose prefix
//     is a whole registry (docker.io, registry.k8s.io, quay.io) becomes a hosts.toml for that
//     registry: its mirrors first, in order, each path kept as containers/image keeps it
//     (mirror.example/proxy + quay.io/calico/node -> mirror.example/proxy/calico/node), then the
//     registry itself (containers-registries.conf(5): "the primary location ... is tried last").
// crio.runtime.cgroup_manager is reported, not applied: there is no systemd here, so containers run
// under cgroupfs, and the kubelet takes the driver from the runtime (CRI RuntimeConfig).

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

type crioFile struct {
	Crio struct {
		Image struct {
			PauseImage string `toml:"pause_image"`
		} `toml:"image"`
		Runtime struct {
			CgroupManager string `toml:"cgroup_manager"`
		} `toml:"runtime"`
	} `toml:"crio"`
}

type registryMirror struct {
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
}

type registryEntry struct {
	Prefix   string           `toml:"prefix"`
	Location string           `toml:"location"`
	Insecure bool             `toml:"insecure"`
	Blocked  bool             `toml:"blocked"`
	Mirrors  []registryMirror `toml:"mirror"`
}

type registriesFile struct {
	Registries []registryEntry `toml:"registry"`
}

// configFiles lists a main file (if present) and then a drop-in directory's *.conf by name.
func configFiles(main, dropIns string) []string {
	files := []string{}
	if _, err := os.Stat(main); err == nil {
		files = append(files, main)
	}
	matches, _ := filepath.Glob(filepath.Join(dropIns, "*.conf"))
	sort.Strings(matches)
	return append(files, matches...)
}

// upstream is where a registry name is really served.
func upstream(registry string) string {
	if registry == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

func crioConfig(args []string) error {
	flags := flag.NewFlagSet("crio-config", flag.ContinueOnError)
	etc := flags.String("etc", "/etc", "where CRI-O's and containers' configuration is read")
	out := flags.String("out", "", "directory for containerd's config.toml and certs.d")
	socket := flags.String("socket", "/var/run/crio/crio.sock", "the CRI socket to serve")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	pause, cgroupManager := "registry.k8s.io/pause:3.10.2", ""
	for _, file := range configFiles(filepath.Join(*etc, "crio/crio.conf"), filepath.Join(*etc, "crio/crio.conf.d")) {
		var c crioFile
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if err := toml.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if c.Crio.Image.PauseImage != "" {
			pause = c.Crio.Image.PauseImage
		}
		if c.Crio.Runtime.CgroupManager != "" {
			cgroupManager = c.Crio.Runtime.CgroupManager
		}
	}
	// Later files win for the same prefix, as in containers/image (its drop-ins override by prefix).
	byPrefix := map[string]registryEntry{}
	for _, file := range configFiles(filepath.Join(*etc, "containers/registries.conf"),
		filepath.Join(*etc, "containers/registries.conf.d")) {
		var r registriesFile
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if err := toml.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, entry := range r.Registries {
			if entry.Prefix == "" {
				entry.Prefix = entry.Location
			}
			byPrefix[entry.Prefix] = entry
		}
	}
	certs := filepath.Join(*out, "certs.d")
	if err := os.RemoveAll(certs); err != nil {
		return err
	}
	prefixes := make([]string, 0, len(byPrefix))
	for p := range byPrefix {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	for _, prefix := range prefixes {
		entry := byPrefix[prefix]
		if strings.Contains(prefix, "/") || (entry.Location != "" && entry.Location != prefix) || entry.Blocked {
			fmt.Fprintf(os.Stderr, "crio-config: [[registry]] %q is not a whole-registry mirror entry; the stand-in ignores it\n", prefix)
			continue
		}
		var hosts strings.Builder
		fmt.Fprintf(&hosts, "# From the registries.conf entry for %s (labtool crio-config).\nserver = %q\n", prefix, upstream(prefix))
		for _, m := range entry.Mirrors {
			host, path, _ := strings.Cut(m.Location, "/")
			url := "https://" + host
			if path != "" {
				// containers/image puts the mirror's path before the repository; containerd would put
				// /v2 after it unless the path is the API root (override_path).
				url += "/v2/" + path
			}
			fmt.Fprintf(&hosts, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", url)
			if path != "" {
				hosts.WriteString("  override_path = true\n")
			}
			if m.Insecure {
				hosts.WriteString("  skip_verify = true\n")
			}
		}
		dir := filepath.Join(certs, prefix)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts.String()), 0o644); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`# Written by labtool crio-config from CRI-O's configuration; the CRI-O stand-in runs containerd with it.
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = %q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %q

[plugins."io.containerd.cri.v1.runtime"]
  # Lab machines lack CAP_SYS_RESOURCE: they cannot lower a process's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/opt/cni/bin", "/usr/libexec/cni"]
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
`, *socket, pause, certs)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "config.toml"), []byte(config), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "crio-config: pause image %s; registries with mirrors: %s; cgroup_manager %q runs as cgroupfs (no systemd in the lab)\n",
		pause, strings.Join(prefixes, " "), cgroupManager)
	return nil
}
