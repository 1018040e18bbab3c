package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// How long the API server may take to answer /readyz after it starts.
const readyDeadline = 120 * time.Second

func runSupervisor(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for keys, data, logs and the kubeconfig (created)")
	exitWithParent := fs.Bool("exit-with-parent", false,
		"stop everything and remove --dir when the parent process exits (for test helpers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	d := &layout{dir: *dir}
	if err := os.WriteFile(d.path("supervisor.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	token, err := d.writeFiles()
	if err != nil {
		return fmt.Errorf("writing keys and certificates: %w", err)
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcd, etcdURL, err := startEtcd(d, ports[0], ports[1])
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	server := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := d.writeKubeconfig(server, token); err != nil {
		return err
	}
	api := &child{name: "apiserver", log: d.path("apiserver.log"),
		args: apiServerArgs(d, strconv.Itoa(ports[2]), etcdURL)}
	startAPI := func() error {
		if err := api.start(); err != nil {
			return err
		}
		if err := waitReady(d, server, token, api); err != nil {
			return err
		}
		return os.WriteFile(d.path("apiserver.state"), []byte("ready\n"), 0o600)
	}
	if err := startAPI(); err != nil {
		api.stop()
		return err
	}
	defer api.stop()
	gc := &child{name: "gc", log: d.path("gc.log"), args: []string{"--kubeconfig", d.path("kubeconfig")}}
	if err := gc.start(); err != nil {
		return err
	}
	defer gc.stop()
	if err := os.WriteFile(d.path("ready"), []byte(d.path("kubeconfig")+"\n"), 0o600); err != nil {
		return err
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	parent := os.Getppid()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case sig := <-signals:
			switch sig {
			case syscall.SIGUSR1:
				api.stop()
				_ = os.WriteFile(d.path("apiserver.state"), []byte("stopped\n"), 0o600)
			case syscall.SIGUSR2:
				if err := startAPI(); err != nil {
					fmt.Fprintln(os.Stderr, "gatehouse-kube: restarting the API server:", err)
					_ = os.WriteFile(d.path("apiserver.state"), []byte("failed\n"), 0o600)
				}
			default:
				return nil
			}
		case <-tick.C:
			if *exitWithParent && os.Getppid() != parent {
				defer os.RemoveAll(*dir)
				return nil
			}
		}
	}
}

// startEtcd runs a single-member etcd in this process, data in DIR/etcd.
func startEtcd(d *layout, clientPort, peerPort int) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Dir = d.path("etcd")
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{d.path("etcd.log")}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	// Test data: losing it on a power cut is fine, and fsync on a shared disk is slow.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, clientURL.String(), nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", errors.New("etcd was not ready within 60s")
	}
}

// child is this binary re-run with a subcommand, its output in a log file.
type child struct {
	name string
	log  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *child) start() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	c.cmd = exec.Command(self, append([]string{c.name}, c.args...)...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// Never outlive the supervisor, even when it is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.name, err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(c.cmd, c.done)
	return nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 20 s).
func (c *child) stop() {
	if c.cmd == nil || c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitReady polls /readyz with the admin token until it answers 200.
func waitReady(d *layout, server, token string, api *child) error {
	ca, err := os.ReadFile(d.path("ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyDeadline)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if api.exited() {
			return fmt.Errorf("kube-apiserver exited before it was ready; see %s", api.log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready within %s; see %s", readyDeadline, api.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePorts picks n distinct loopback ports that are free now, below the usual
// ephemeral range so an outgoing connection's local port cannot take one meanwhile.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 1000 {
			return nil, errors.New("no free loopback port found")
		}
		port := 20000 + rand.IntN(12000)
		if seen[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		seen[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}
