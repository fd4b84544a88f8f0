package main

// A workload for the tier's Service test: `echo` answers every request with the name of the pod
// (its host name) and the address the request came from; `get` fetches a URL and prints the answer,
// failing when there is none.

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func echoServer(args []string) error {
	flags := flag.NewFlagSet("echo", flag.ContinueOnError)
	listen := flags.String("listen", ":8080", "address:port")
	if err := flags.Parse(args); err != nil {
		return err
	}
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pod=%s client=%s\n", host, r.RemoteAddr)
	})
	server := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	return server.ListenAndServe()
}

func httpGet(args []string) error {
	flags := flag.NewFlagSet("get", flag.ContinueOnError)
	timeout := flags.Duration("timeout", 5*time.Second, "the whole request's bound")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return fmt.Errorf("usage: labtool get [--timeout 5s] <url>")
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(flags.Arg(0))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	_, err = os.Stdout.Write(body)
	return err
}
