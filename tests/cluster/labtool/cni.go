package main

// The CNI stand-in's node agent. Calico cannot run here (the Go module proxy serves no Calico
// release and its images cannot be pulled), so the lab's network step installs this instead, as a
// DaemonSet on the host network: it gives its node a bridge with host-local addresses from the
// node's pod CIDR (spec.podCIDR, allocated by kube-controller-manager) and routes every other
// node's pod CIDR via that node's InternalIP, as kind's kindnet does. Pods on different machines
// then reach each other directly, and kube-proxy's Service rules work as on any cluster.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
)

// routeProtocol marks the routes this agent owns (a private value of the kernel's rtm_protocol).
const routeProtocol = 77

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodCIDR string `json:"podCIDR"`
		} `json:"spec"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

func cniNode(args []string) error {
	flags := flag.NewFlagSet("cni-node", flag.ContinueOnError)
	confDir := flags.String("conf-dir", "/host/etc/cni/net.d", "the node's CNI configuration directory")
	interval := flags.Duration("interval", 5*time.Second, "how often the nodes are read")
	if err := flags.Parse(args); err != nil {
		return err
	}
	self := os.Getenv("NODE_NAME")
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if self == "" || host == "" || port == "" {
		return fmt.Errorf("NODE_NAME, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
	}
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	caPEM, err := os.ReadFile(filepath.Join(sa, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := fmt.Sprintf("https://%s/api/v1/nodes", net.JoinHostPort(host, port))
	for {
		if err := syncNode(client, url, filepath.Join(sa, "token"), self, *confDir); err != nil {
			fmt.Fprintf(os.Stderr, "%s cni-node: %v\n", time.Now().Format(time.RFC3339), err)
		}
		time.Sleep(*interval)
	}
}

func syncNode(client *http.Client, url, tokenFile, self, confDir string) error {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("listing nodes: HTTP %d: %s", resp.StatusCode, body)
	}
	var nodes nodeList
	if err := json.Unmarshal(body, &nodes); err != nil {
		return err
	}
	wanted := map[string]net.IP{}
	for _, n := range nodes.Items {
		if n.Spec.PodCIDR == "" {
			continue
		}
		if n.Metadata.Name == self {
			if err := writeConflist(confDir, n.Spec.PodCIDR); err != nil {
				return err
			}
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				wanted[n.Spec.PodCIDR] = net.ParseIP(a.Address)
			}
		}
	}
	for cidr, gw := range wanted {
		_, dst, err := net.ParseCIDR(cidr)
		if err != nil || gw == nil {
			continue
		}
		if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw, Protocol: routeProtocol}); err != nil {
			return fmt.Errorf("route %s via %s: %w", cidr, gw, err)
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if _, ok := wanted[r.Dst.String()]; !ok {
			if err := netlink.RouteDel(&r); err != nil {
				return fmt.Errorf("removing the route to %s (its node is gone): %w", r.Dst, err)
			}
		}
	}
	return nil
}

func writeConflist(dir, podCIDR string) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "lab-bridge",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": []any{[]any{map[string]any{"subnet": podCIDR}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	// Not "*bridge*.conflist": prepare-node.sh disables those (CRI-O's own default bridge networks).
	path := filepath.Join(dir, "10-lab-network.conflist")
	if current, err := os.ReadFile(path); err == nil && string(current) == string(data) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cni-node: this node's pods get addresses from %s\n", podCIDR)
	return os.Rename(tmp, path)
}
