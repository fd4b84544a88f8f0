package main

// The systemd stand-in of a lab machine. A lab machine is a set of Linux namespaces, not a VM, and
// systemd cannot run there; this is PID 1 (`systemctl __init`) and /usr/bin/systemctl instead. It
// reads the real unit files the packages install (kubelet.service and kubeadm's 10-kubeadm.conf
// drop-in, crio.service, haproxy.service, ssh.service, the backup units) from systemd's unit
// directories with their drop-ins, and does what the scripts, kubeadm and dpkg's maintainer scripts
// ask of systemctl: start, stop, restart, reload, enable, disable, preset, is-active, is-enabled,
// status, show -p MainPID, daemon-reload. Supported unit settings: Environment, EnvironmentFile,
// ExecStartPre, ExecStart, ExecReload, Type (simple, exec, notify with READY=1 on NOTIFY_SOCKET,
// oneshot with RemainAfterExit), Restart (always, on-failure), RestartSec, RuntimeDirectory,
// ConditionPathExists, WantedBy. A service's main process gets its own process group, which stop
// ends (SIGTERM, then SIGKILL after 30 s); processes that left it (containerd's shims, which start
// their own sessions) survive a restart, as they do under systemd's KillMode=process. Timers are
// recorded as active but never fire (the tests start the backup service themselves). Logs go to
// /var/log/standin/<unit>.log.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	standinState = "/run/systemd-standin"
	standinLogs  = "/var/log/standin"
	wantsDir     = "/etc/systemd/system"
	stopTimeout  = 30 * time.Second
)

var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

type unit struct {
	name  string
	path  string
	desc  string
	props map[string][]string // "Section.Key" -> values in order (a list reset by an empty value)
}

func (u *unit) get(key string) string {
	values := u.props[key]
	if len(values) == 0 {
		return ""
	}
	return values[len(values)-1]
}

func (u *unit) isService() bool { return strings.HasSuffix(u.name, ".service") }

func unitName(name string) string {
	if strings.Contains(name, ".") && (strings.HasSuffix(name, ".service") || strings.HasSuffix(name, ".timer") ||
		strings.HasSuffix(name, ".target") || strings.HasSuffix(name, ".socket")) {
		return name
	}
	return name + ".service"
}

// loadUnit finds a unit file and its drop-ins (systemd.unit(5): the first unit file found in the
// search path; drop-ins from every directory, by file name, a later directory's same name hidden).
func loadUnit(name string) (*unit, error) {
	name = unitName(name)
	u := &unit{name: name, props: map[string][]string{}}
	for _, dir := range unitDirs {
		path := filepath.Join(dir, name)
		if info, err := os.Stat(path); err == nil && !info.IsDir() {
			u.path = path
			break
		}
	}
	if u.path == "" {
		return nil, errNotFound
	}
	files := []string{u.path}
	seen := map[string]bool{}
	var dropIns []string
	for _, dir := range unitDirs {
		matches, _ := filepath.Glob(filepath.Join(dir, name+".d", "*.conf"))
		for _, m := range matches {
			if !seen[filepath.Base(m)] {
				seen[filepath.Base(m)] = true
				dropIns = append(dropIns, m)
			}
		}
	}
	sort.Slice(dropIns, func(i, j int) bool { return filepath.Base(dropIns[i]) < filepath.Base(dropIns[j]) })
	for _, f := range append(files, dropIns...) {
		if err := u.parse(f); err != nil {
			return nil, err
		}
	}
	u.desc = u.get("Unit.Description")
	return u, nil
}

var errNotFound = errors.New("not found")

func (u *unit) parse(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	section := ""
	scanner := bufio.NewScanner(f)
	pending := ""
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line = pending + line
		pending = ""
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k := section + "." + strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		if value == "" {
			u.props[k] = nil // an empty assignment resets a list (ExecStart=)
			continue
		}
		u.props[k] = append(u.props[k], value)
	}
	return scanner.Err()
}

// words splits a value into shell-like words (double and single quotes, backslash escapes).
func words(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				c = rune(s[i])
			}
			cur.WriteRune(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// environment builds a service's environment: systemd's minimal one, Environment= and EnvironmentFile=.
func (u *unit) environment() ([]string, error) {
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
	order := []string{"PATH", "LANG"}
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, value := range u.props["Service.Environment"] {
		for _, assignment := range words(value) {
			if k, v, ok := strings.Cut(assignment, "="); ok {
				set(k, v)
			}
		}
	}
	for _, value := range u.props["Service.EnvironmentFile"] {
		optional := strings.HasPrefix(value, "-")
		path := strings.TrimPrefix(value, "-")
		data, err := os.ReadFile(path)
		if err != nil {
			if optional {
				continue
			}
			return nil, fmt.Errorf("EnvironmentFile %s: %w", path, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
				continue
			}
			line = strings.TrimPrefix(line, "export ")
			if k, v, ok := strings.Cut(line, "="); ok {
				w := words(v)
				set(strings.TrimSpace(k), strings.Join(w, " "))
			}
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// commandLine expands an Exec* line as systemd.service(5) does: "$VAR" becomes the variable's words,
// "${VAR}" one word; a leading "-" means failure is ignored.
func commandLine(line string, env []string, extra map[string]string) (argv []string, ignoreFailure bool) {
	for len(line) > 0 && strings.ContainsRune("-@+!:", rune(line[0])) {
		if line[0] == '-' {
			ignoreFailure = true
		}
		line = line[1:]
	}
	lookup := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		lookup[k] = v
	}
	for k, v := range extra {
		lookup[k] = v
	}
	for _, word := range words(line) {
		if strings.HasPrefix(word, "${") && strings.HasSuffix(word, "}") {
			argv = append(argv, lookup[word[2:len(word)-1]])
			continue
		}
		if strings.HasPrefix(word, "$") && !strings.ContainsAny(word[1:], "$/ ") {
			argv = append(argv, strings.Fields(lookup[word[1:]])...)
			continue
		}
		argv = append(argv, os.Expand(word, func(k string) string { return lookup[k] }))
	}
	return argv, ignoreFailure
}

func stateDir(name string) string { return filepath.Join(standinState, name) }

func readInt(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

func writeState(name, file, value string) {
	dir := stateDir(name)
	_ = os.MkdirAll(dir, 0o755)
	tmp := filepath.Join(dir, "."+file)
	_ = os.WriteFile(tmp, []byte(value), 0o644)
	_ = os.Rename(tmp, filepath.Join(dir, file))
}

func readState(name, file string) string {
	data, _ := os.ReadFile(filepath.Join(stateDir(name), file))
	return strings.TrimSpace(string(data))
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie is not alive.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// activeState is what `systemctl is-active` prints.
func activeState(name string) string {
	switch readState(name, "state") {
	case "active":
		if strings.HasSuffix(name, ".service") && readState(name, "type") != "oneshot" && !alive(readInt(filepath.Join(stateDir(name), "supervisor.pid"))) {
			return "failed"
		}
		return "active"
	case "activating":
		if alive(readInt(filepath.Join(stateDir(name), "supervisor.pid"))) {
			return "activating"
		}
		return "failed"
	case "failed":
		return "failed"
	}
	return "inactive"
}

func logFile(name string) (*os.File, error) {
	if err := os.MkdirAll(standinLogs, 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(standinLogs, name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
}

func logLine(name, format string, args ...any) {
	if f, err := logFile(name); err == nil {
		fmt.Fprintf(f, "=== %s systemd-standin: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
		f.Close()
	}
}

// runSync runs an Exec* line to completion with the service's environment, output to its log.
func runSync(u *unit, line string, env []string, extra map[string]string) error {
	argv, ignore := commandLine(line, env, extra)
	if len(argv) == 0 {
		return nil
	}
	out, err := logFile(u.name)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, out, out, "/"
	if err := cmd.Run(); err != nil && !ignore {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

func conditionsMet(u *unit) bool {
	for _, c := range u.props["Unit.ConditionPathExists"] {
		negate := strings.HasPrefix(c, "!")
		_, err := os.Stat(strings.TrimPrefix(c, "!"))
		if (err == nil) == negate {
			return false
		}
	}
	return true
}

func startUnit(name string) error {
	u, err := loadUnit(name)
	if err != nil {
		return fmt.Errorf("Failed to start %s: Unit %s not found.", unitName(name), unitName(name))
	}
	if !u.isService() {
		writeState(u.name, "state", "active")
		return nil
	}
	if st := activeState(u.name); st == "active" || st == "activating" {
		return nil
	}
	if !conditionsMet(u) {
		logLine(u.name, "condition failed; not started")
		return nil
	}
	env, err := u.environment()
	if err != nil {
		writeState(u.name, "state", "failed")
		return err
	}
	for _, dir := range u.props["Service.RuntimeDirectory"] {
		for _, d := range strings.Fields(dir) {
			_ = os.MkdirAll(filepath.Join("/run", d), 0o755)
		}
	}
	for _, line := range u.props["Service.ExecStartPre"] {
		if err := runSync(u, line, env, nil); err != nil {
			writeState(u.name, "state", "failed")
			return fmt.Errorf("Job for %s failed: ExecStartPre %v", u.name, err)
		}
	}
	kind := u.get("Service.Type")
	writeState(u.name, "type", kind)
	if kind == "oneshot" {
		writeState(u.name, "state", "activating")
		for _, line := range u.props["Service.ExecStart"] {
			if err := runSync(u, line, env, nil); err != nil {
				writeState(u.name, "state", "failed")
				return fmt.Errorf("Job for %s failed because the control process exited with error code (%v).", u.name, err)
			}
		}
		if strings.EqualFold(u.get("Service.RemainAfterExit"), "yes") {
			writeState(u.name, "state", "active")
		} else {
			writeState(u.name, "state", "inactive")
		}
		return nil
	}
	if len(u.props["Service.ExecStart"]) == 0 {
		return fmt.Errorf("%s has no ExecStart", u.name)
	}
	_ = os.Remove(filepath.Join(stateDir(u.name), "stopping"))
	writeState(u.name, "state", "activating")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	out, err := logFile(u.name)
	if err != nil {
		return err
	}
	defer out.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	// Detached (its own session, no inherited descriptors): an SSH session that ran `systemctl start`
	// must not wait for the service to exit.
	// Named systemctl, so main() hands it to this stand-in whatever the binary's file name.
	supervisor := &exec.Cmd{Path: self, Args: []string{"systemctl", "__supervise", u.name}}
	supervisor.Stdin, supervisor.Stdout, supervisor.Stderr, supervisor.Dir = devnull, out, out, "/"
	supervisor.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := supervisor.Start(); err != nil {
		return err
	}
	writeState(u.name, "supervisor.pid", strconv.Itoa(supervisor.Process.Pid))
	_ = supervisor.Process.Release()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		switch activeState(u.name) {
		case "active":
			return nil
		case "failed", "inactive":
			return fmt.Errorf("Job for %s failed because the control process exited with error code. See %s/%s.log", u.name, standinLogs, u.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("Job for %s timed out starting", u.name)
}

func restartDelay(u *unit) time.Duration {
	value := u.get("Service.RestartSec")
	if value == "" {
		return 100 * time.Millisecond
	}
	if d, err := time.ParseDuration(value); err == nil {
		return d
	}
	if n, err := strconv.ParseFloat(value, 64); err == nil {
		return time.Duration(n * float64(time.Second))
	}
	return time.Second
}

// startLimit is systemd's rate limit on starts (StartLimitIntervalSec=, default 10 s, 0 = none;
// StartLimitBurst=, default 5): a service restarting faster than that fails instead.
func startLimit(u *unit) (time.Duration, int) {
	interval := 10 * time.Second
	for _, key := range []string{"Unit.StartLimitIntervalSec", "Unit.StartLimitInterval", "Service.StartLimitInterval"} {
		if v := u.get(key); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				interval = d
			} else if n, err := strconv.Atoi(v); err == nil {
				interval = time.Duration(n) * time.Second
			}
		}
	}
	burst := 5
	if v := u.get("Unit.StartLimitBurst"); v != "" {
		burst, _ = strconv.Atoi(v)
	}
	return interval, burst
}

// fileLimit is the open-files limit systemd gives a service: LimitNOFILE= ("soft:hard" or one value),
// by default 1024:524288; never above this host's hard limit.
func fileLimit(u *unit) syscall.Rlimit {
	var host syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &host)
	parse := func(v string) uint64 {
		if v == "infinity" {
			return host.Max
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 1024
		}
		return n
	}
	limit := syscall.Rlimit{Cur: 1024, Max: 524288}
	if v := u.get("Service.LimitNOFILE"); v != "" {
		soft, hard, found := strings.Cut(v, ":")
		limit.Cur = parse(soft)
		limit.Max = limit.Cur
		if found {
			limit.Max = parse(hard)
		}
	}
	limit.Max = min(limit.Max, host.Max)
	limit.Cur = min(limit.Cur, limit.Max)
	return limit
}

// supervise runs a service's main process and restarts it as Restart= says, until it is stopped.
func supervise(name string) error {
	u, err := loadUnit(name)
	if err != nil {
		return err
	}
	kind := u.get("Service.Type")
	restart := u.get("Service.Restart")
	dir := stateDir(name)
	interval, burst := startLimit(u)
	var starts []time.Time
	// Inherited by the main process, as systemd sets it for the service.
	limit := fileLimit(u)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		logLine(name, "cannot set the open-files limit %d:%d: %v", limit.Cur, limit.Max, err)
	}
	for {
		if interval > 0 && burst > 0 {
			recent := starts[:0]
			for _, t := range starts {
				if time.Since(t) < interval {
					recent = append(recent, t)
				}
			}
			starts = recent
			if len(starts) >= burst {
				logLine(name, "start request repeated too quickly (%d in %s): failed", burst, interval)
				writeState(name, "state", "failed")
				return nil
			}
		}
		starts = append(starts, time.Now())
		if _, err := os.Stat(filepath.Join(dir, "stopping")); err == nil {
			writeState(name, "state", "inactive")
			return nil
		}
		env, err := u.environment() // re-read on every start: kubeadm rewrites kubeadm-flags.env
		if err != nil {
			logLine(name, "%v", err)
			writeState(name, "state", "failed")
			return err
		}
		lines := u.props["Service.ExecStart"]
		argv, _ := commandLine(lines[len(lines)-1], env, nil)
		var notify *net.UnixConn
		if kind == "notify" {
			socket := filepath.Join(dir, "notify.sock")
			_ = os.Remove(socket)
			notify, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
			if err != nil {
				return err
			}
			env = append(env, "NOTIFY_SOCKET="+socket)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, os.Stdout, os.Stderr, "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		logLine(name, "starting: %s", strings.Join(argv, " "))
		if err := cmd.Start(); err != nil {
			logLine(name, "cannot start: %v", err)
			writeState(name, "state", "failed")
			return err
		}
		writeState(name, "main.pid", strconv.Itoa(cmd.Process.Pid))
		writeState(name, "starts", strconv.Itoa(readInt(filepath.Join(dir, "starts"))+1))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if notify != nil {
			go waitReady(notify, name)
		} else {
			writeState(name, "state", "active")
		}
		err = <-done
		if notify != nil {
			notify.Close()
		}
		code := 0
		if err != nil {
			code = -1
			if exitErr, ok := err.(*exec.ExitError); ok {
				code = exitErr.ExitCode()
			}
		}
		logLine(name, "main process exited (status %d)", code)
		if _, err := os.Stat(filepath.Join(dir, "stopping")); err == nil {
			writeState(name, "state", "inactive")
			return nil
		}
		if restart != "always" && !(restart == "on-failure" && code != 0) {
			if code == 0 {
				writeState(name, "state", "inactive")
			} else {
				writeState(name, "state", "failed")
			}
			return nil
		}
		time.Sleep(restartDelay(u))
	}
}

// waitReady marks a Type=notify service active when it sends READY=1 (sd_notify(3)).
func waitReady(conn *net.UnixConn, name string) {
	buf := make([]byte, 4096)
	for {
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "READY=1" {
				writeState(name, "state", "active")
			}
		}
	}
}

func stopUnit(name string) error {
	name = unitName(name)
	if !strings.HasSuffix(name, ".service") {
		writeState(name, "state", "inactive")
		return nil
	}
	dir := stateDir(name)
	writeState(name, "stopping", "1")
	supervisor := readInt(filepath.Join(dir, "supervisor.pid"))
	main := readInt(filepath.Join(dir, "main.pid"))
	if alive(main) {
		_ = syscall.Kill(-main, syscall.SIGTERM)
		_ = syscall.Kill(main, syscall.SIGTERM)
	}
	deadline := time.Now().Add(stopTimeout)
	for alive(main) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(main) {
		_ = syscall.Kill(-main, syscall.SIGKILL)
		_ = syscall.Kill(main, syscall.SIGKILL)
	}
	for alive(supervisor) && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	writeState(name, "state", "inactive")
	return nil
}

func reloadUnit(name string) error {
	u, err := loadUnit(name)
	if err != nil {
		return fmt.Errorf("Failed to reload %s: Unit %s not found.", unitName(name), unitName(name))
	}
	if activeState(u.name) != "active" {
		return fmt.Errorf("Failed to reload %s: Unit %s is not active.", u.name, u.name)
	}
	lines := u.props["Service.ExecReload"]
	if len(lines) == 0 {
		return fmt.Errorf("Failed to reload %s: Job type reload is not applicable for unit %s.", u.name, u.name)
	}
	env, err := u.environment()
	if err != nil {
		return err
	}
	extra := map[string]string{"MAINPID": readState(u.name, "main.pid")}
	for _, line := range lines {
		if err := runSync(u, line, env, extra); err != nil {
			return fmt.Errorf("Job for %s failed (reload): %v", u.name, err)
		}
	}
	logLine(u.name, "reloaded")
	return nil
}

func wantedBy(u *unit) []string {
	var targets []string
	for _, v := range u.props["Install.WantedBy"] {
		targets = append(targets, strings.Fields(v)...)
	}
	return targets
}

func enableUnit(name string) error {
	u, err := loadUnit(name)
	if err != nil {
		return fmt.Errorf("Failed to enable unit: Unit file %s does not exist.", unitName(name))
	}
	for _, target := range wantedBy(u) {
		link := filepath.Join(wantsDir, target+".wants", u.name)
		if current, err := os.Readlink(link); err == nil && current == u.path {
			continue
		}
		_ = os.MkdirAll(filepath.Dir(link), 0o755)
		_ = os.Remove(link)
		if err := os.Symlink(u.path, link); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Created symlink %s → %s.\n", link, u.path)
	}
	return nil
}

func disableUnit(name string) error {
	name = unitName(name)
	links, _ := filepath.Glob(filepath.Join(wantsDir, "*.wants", name))
	for _, link := range links {
		_ = os.Remove(link)
		fmt.Fprintf(os.Stderr, "Removed %s.\n", link)
	}
	return nil
}

func isEnabled(name string) string {
	name = unitName(name)
	links, _ := filepath.Glob(filepath.Join(wantsDir, "*.wants", name))
	if len(links) > 0 {
		return "enabled"
	}
	u, err := loadUnit(name)
	if err != nil {
		return ""
	}
	if len(wantedBy(u)) == 0 {
		return "static"
	}
	return "disabled"
}

func status(name string) (string, int) {
	u, err := loadUnit(name)
	if err != nil {
		return fmt.Sprintf("Unit %s could not be found.\n", unitName(name)), 4
	}
	state := activeState(u.name)
	var b strings.Builder
	fmt.Fprintf(&b, "● %s - %s\n     Loaded: loaded (%s; %s; preset: enabled)\n     Active: %s\n",
		u.name, u.desc, u.path, isEnabled(u.name), state)
	if pid := readInt(filepath.Join(stateDir(u.name), "main.pid")); pid > 0 && state == "active" {
		fmt.Fprintf(&b, "   Main PID: %d\n", pid)
	}
	if state == "active" {
		return b.String(), 0
	}
	return b.String(), 3
}

// boot starts the enabled units (multi-user.target's wants) as systemd would at boot: those that
// another wants to come first (Before=/After=) first.
func boot() {
	links, _ := filepath.Glob(filepath.Join(wantsDir, "multi-user.target.wants", "*"))
	var units []*unit
	for _, link := range links {
		if u, err := loadUnit(filepath.Base(link)); err == nil {
			units = append(units, u)
		}
	}
	rank := func(u *unit) int {
		r := 0
		for _, v := range u.props["Unit.Before"] {
			if strings.Contains(v, "kubelet") {
				r--
			}
		}
		return r
	}
	sort.SliceStable(units, func(i, j int) bool { return rank(units[i]) < rank(units[j]) })
	for _, u := range units {
		if err := startUnit(u.name); err != nil {
			fmt.Fprintf(os.Stderr, "systemd-standin: %v\n", err)
		}
	}
}

// initProcess is a lab machine's PID 1: boots the enabled units, then reaps every orphan.
func initProcess() error {
	_ = os.RemoveAll(standinState) // a restarted machine starts with no running service
	// What systemd-tmpfiles-setup.service does at boot for /run (e.g. /run/haproxy, from the
	// haproxy package's tmpfiles.d).
	if out, err := exec.Command("systemd-tmpfiles", "--create", "--prefix=/run").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "systemd-standin: systemd-tmpfiles: %v: %s\n", err, out)
	}
	boot()
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		os.Exit(0)
	}()
	for {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(-1, &ws, 0, nil); err != nil {
			time.Sleep(time.Second)
		}
	}
}

func systemctl(args []string) error {
	quiet, now, value := false, false, false
	var props []string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-q" || a == "--quiet":
			quiet = true
		case a == "--now":
			now = true
		case a == "--value":
			value = true
		case a == "-p" || a == "--property":
			if i+1 < len(args) {
				props = append(props, strings.Split(args[i+1], ",")...)
				i++
			}
		case strings.HasPrefix(a, "--property="):
			props = append(props, strings.Split(strings.TrimPrefix(a, "--property="), ",")...)
		case strings.HasPrefix(a, "-"):
			// --no-pager, --no-reload, --system, --all, --no-block: nothing to do here.
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("a command is needed")
	}
	verb, units := rest[0], rest[1:]
	switch verb {
	case "__init":
		return initProcess()
	case "__supervise":
		return supervise(units[0])
	case "daemon-reload", "daemon-reexec", "reset-failed":
		return nil
	case "is-system-running":
		fmt.Println("running")
		return nil
	case "start", "stop", "restart", "try-restart", "reload", "reload-or-restart", "try-reload-or-restart", "enable", "disable", "preset":
		for _, name := range units {
			var err error
			switch verb {
			case "start":
				err = startUnit(name)
			case "stop":
				err = stopUnit(name)
			case "restart":
				if err = stopUnit(name); err == nil {
					err = startUnit(name)
				}
			case "try-restart":
				if activeState(unitName(name)) == "active" {
					if err = stopUnit(name); err == nil {
						err = startUnit(name)
					}
				}
			case "reload":
				err = reloadUnit(name)
			case "reload-or-restart", "try-reload-or-restart":
				u, loadErr := loadUnit(name)
				switch {
				case loadErr != nil:
					err = fmt.Errorf("Unit %s not found.", unitName(name))
				case activeState(u.name) == "active" && len(u.props["Service.ExecReload"]) > 0:
					err = reloadUnit(name)
				case verb == "reload-or-restart" || activeState(u.name) == "active":
					if err = stopUnit(name); err == nil {
						err = startUnit(name)
					}
				}
			case "enable", "preset":
				if err = enableUnit(name); err == nil && now {
					err = startUnit(name)
				}
			case "disable":
				if err = disableUnit(name); err == nil && now {
					err = stopUnit(name)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	case "is-active", "is-failed":
		all := true
		for _, name := range units {
			st := activeState(unitName(name))
			if !quiet {
				fmt.Println(st)
			}
			if (verb == "is-active") != (st == "active") {
				all = false
			}
		}
		if !all {
			return exitCode(3)
		}
		return nil
	case "is-enabled":
		all := true
		for _, name := range units {
			st := isEnabled(name)
			if st == "" {
				if !quiet {
					fmt.Fprintf(os.Stderr, "Failed to get unit file state for %s: No such file or directory\n", unitName(name))
				}
				all = false
				continue
			}
			if !quiet {
				fmt.Println(st)
			}
			if st != "enabled" {
				all = false
			}
		}
		if !all {
			return exitCode(1)
		}
		return nil
	case "status":
		code := 0
		for _, name := range units {
			text, c := status(name)
			fmt.Print(text)
			if c > code {
				code = c
			}
		}
		if code != 0 {
			return exitCode(code)
		}
		return nil
	case "show":
		for _, name := range units {
			n := unitName(name)
			for _, p := range props {
				v := ""
				switch p {
				case "MainPID":
					v = "0"
					if activeState(n) == "active" {
						v = strconv.Itoa(readInt(filepath.Join(stateDir(n), "main.pid")))
					}
				case "ActiveState":
					v = activeState(n)
				case "NRestarts":
					v = strconv.Itoa(max(readInt(filepath.Join(stateDir(n), "starts"))-1, 0))
				}
				if value {
					fmt.Println(v)
				} else {
					fmt.Printf("%s=%s\n", p, v)
				}
			}
		}
		return nil
	case "list-timers", "list-units":
		for _, name := range units {
			fmt.Printf("%s %s\n", unitName(name), activeState(unitName(name)))
		}
		return nil
	}
	return fmt.Errorf("the systemd stand-in does not know %q", verb)
}
