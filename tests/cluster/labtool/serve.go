package main

// The lab's mirror, reached by the machines at one address over HTTPS (a certificate of the lab's
// own CA, which the machines' image trusts, as a company's machines trust its internal CA):
//   - /v2/...: a read-only registry (OCI distribution API: manifests by tag or digest, blobs) serving
//     the images of an OCI image layout, each named by its org.opencontainers.image.ref.name
//     annotation ("pause:3.10.2", "coredns/coredns:v1.14.2");
//   - everything else: static files (the signed apt repositories, laid out as pkgs.k8s.io and
//     download.opensuse.org lay theirs out).
// Every request is logged (method, path, status, client), so the tests can see what was fetched
// through the mirror.

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociIndex struct {
	Manifests []ociDescriptor `json:"manifests"`
}

const refNameAnnotation = "org.opencontainers.image.ref.name"

// imageStore answers manifest and blob requests from an OCI image layout, re-reading index.json
// when it changes (the lab adds images while it runs).
type imageStore struct {
	dir     string
	mu      sync.Mutex
	modTime time.Time
	byRef   map[string]ociDescriptor
}

func (s *imageStore) refs() (map[string]ociDescriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, "index.json")
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if s.byRef != nil && info.ModTime().Equal(s.modTime) {
		return s.byRef, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var index ociIndex
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	byRef := map[string]ociDescriptor{}
	for _, d := range index.Manifests {
		if ref := d.Annotations[refNameAnnotation]; ref != "" {
			byRef[ref] = d
		}
	}
	s.byRef, s.modTime = byRef, info.ModTime()
	return byRef, nil
}

var digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

func (s *imageStore) blobPath(digest string) (string, bool) {
	if !digestPattern.MatchString(digest) {
		return "", false
	}
	path := filepath.Join(s.dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	_, err := os.Stat(path)
	return path, err == nil
}

// mediaTypeOf reads a manifest's own mediaType field (an image manifest or an index).
func mediaTypeOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(data, &m)
	return m.MediaType
}

var manifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
var blobPathPattern = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)

func (s *imageStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this mirror is read-only")
		return
	}
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
		return
	}
	if m := manifestPath.FindStringSubmatch(r.URL.Path); m != nil {
		name, ref := m[1], m[2]
		digest, mediaType := ref, ""
		if !strings.HasPrefix(ref, "sha256:") {
			refs, err := s.refs()
			if err != nil {
				registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
				return
			}
			d, ok := refs[name+":"+ref]
			if !ok {
				registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("no image %s:%s here", name, ref))
				return
			}
			digest, mediaType = d.Digest, d.MediaType
		}
		path, ok := s.blobPath(digest)
		if !ok {
			registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("no manifest %s in %s", digest, name))
			return
		}
		if mediaType == "" {
			mediaType = mediaTypeOf(path)
		}
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Docker-Content-Digest", digest)
		http.ServeFile(w, r, path)
		return
	}
	if m := blobPathPattern.FindStringSubmatch(r.URL.Path); m != nil {
		path, ok := s.blobPath(m[2])
		if !ok {
			registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", fmt.Sprintf("no blob %s", m[2]))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", m[2])
		http.ServeFile(w, r, path)
		return
	}
	registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "not found")
}

func registryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}

// statusRecorder keeps the status a handler answered with, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func serve(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := flags.String("listen", "", "address:port to listen on (HTTPS)")
	cert := flags.String("cert", "", "server certificate (PEM)")
	key := flags.String("key", "", "server key (PEM)")
	images := flags.String("images", "", "OCI image layout served under /v2/")
	files := flags.String("files", "", "directory served for every other path")
	accessLog := flags.String("log", "", "request log file (appended)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *cert == "" || *key == "" || *images == "" || *files == "" {
		return fmt.Errorf("--listen, --cert, --key, --images and --files are required")
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	if *accessLog != "" {
		f, err := os.OpenFile(*accessLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		logger = log.New(f, "", log.LstdFlags)
	}
	store := &imageStore{dir: *images}
	static := http.FileServer(http.Dir(*files))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if strings.HasPrefix(r.URL.Path, "/v2/") || r.URL.Path == "/v2" {
			store.ServeHTTP(rec, r)
		} else {
			static.ServeHTTP(rec, r)
		}
		logger.Printf("%s %s %s %d", r.RemoteAddr, r.Method, r.URL.RequestURI(), rec.status)
	})
	server := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(os.Stderr, "labtool serve: https://%s (images %s, files %s)\n", *listen, *images, *files)
	return server.ListenAndServeTLS(*cert, *key)
}
