package main

// The two Google Cloud services the machines talk to, standing in on the lab's network:
//   - GCE's metadata server (http://metadata.google.internal, 169.254.169.254): the default service
//     account's scopes (per machine: control planes have the storage scope, workers do not) and an
//     access token; like the real one it refuses requests without "Metadata-Flavor: Google";
//   - Cloud Storage's JSON API (https://storage.googleapis.com): a TLS front, with a certificate of
//     the lab's CA for that name, that accepts only the metadata server's token (401 otherwise) and
//     passes everything to fake-gcs-server (github.com/fsouza/fake-gcs-server, a real implementation
//     of the JSON API), which accepts anyone.
// Every request is logged.

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

func gcp(args []string) error {
	flags := flag.NewFlagSet("gcp", flag.ContinueOnError)
	metadata := flags.String("metadata", "", "address:port of the metadata server (HTTP)")
	storage := flags.String("storage", "", "address:port of the Cloud Storage front (HTTPS)")
	backend := flags.String("backend", "", "fake-gcs-server's URL")
	cert := flags.String("cert", "", "the front's certificate (PEM)")
	key := flags.String("key", "", "the front's key (PEM)")
	token := flags.String("token", "", "the access token the metadata server hands out")
	scopesFile := flags.String("scopes", "", `JSON {"<machine address>": ["<scope>", ...]}`)
	instancesFile := flags.String("instances", "", `JSON {"<machine address>": "<instance id>"} (instance/id)`)
	accessLog := flags.String("log", "", "request log (appended)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *metadata == "" || *storage == "" || *backend == "" || *cert == "" || *key == "" || *token == "" || *scopesFile == "" {
		return fmt.Errorf("--metadata, --storage, --backend, --cert, --key, --token and --scopes are required")
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
	upstream, err := url.Parse(*backend)
	if err != nil {
		return err
	}
	base := "/computeMetadata/v1/instance/service-accounts/default/"
	metadataHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("metadata %s %s %s", r.RemoteAddr, r.Method, r.URL.RequestURI())
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case base + "scopes":
			// Read each time: the lab changes it when a machine is added.
			data, err := os.ReadFile(*scopesFile)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			scopes := map[string][]string{}
			if err := json.Unmarshal(data, &scopes); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprint(w, strings.Join(scopes[host], "\n")+"\n")
		case "/computeMetadata/v1/instance/id":
			// The calling machine's instance id, as GCE's metadata server answers it (decimal text).
			// Read each time: a machine created again gets a new one.
			ids := map[string]string{}
			if *instancesFile != "" {
				if data, err := os.ReadFile(*instancesFile); err == nil {
					_ = json.Unmarshal(data, &ids)
				}
			}
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			id, ok := ids[host]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/text")
			fmt.Fprint(w, id)
		case base + "token":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": *token, "expires_in": 3599, "token_type": "Bearer"})
		default:
			http.NotFound(w, r)
		}
	})
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	storageHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if r.Header.Get("Authorization") != "Bearer "+*token {
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(rec, `{"error":{"code":401,"message":"Invalid Credentials"}}`)
		} else {
			proxy.ServeHTTP(rec, r)
		}
		logger.Printf("storage %s %s %s %d", r.RemoteAddr, r.Method, r.URL.RequestURI(), rec.status)
	})
	errs := make(chan error, 2)
	go func() {
		server := &http.Server{Addr: *metadata, Handler: metadataHandler, ReadHeaderTimeout: 10 * time.Second}
		errs <- server.ListenAndServe()
	}()
	go func() {
		server := &http.Server{Addr: *storage, Handler: storageHandler, ReadHeaderTimeout: 10 * time.Second}
		errs <- server.ListenAndServeTLS(*cert, *key)
	}()
	fmt.Fprintf(os.Stderr, "labtool gcp: metadata http://%s, storage https://%s -> %s\n", *metadata, *storage, *backend)
	return <-errs
}
