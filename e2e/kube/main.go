// Command gatehouse-kube is the test control plane for Gatehouse's end-to-end tests: a
// real etcd and a real kube-apiserver (plus the garbage collector of
// kube-controller-manager), built from the Go modules of one Kubernetes release.
//
// One binary, several processes: `run` is a supervisor that embeds etcd and starts the
// API server and the garbage collector as child processes of this same binary, so the
// API server can be stopped and started again while etcd keeps the data.
//
//	gatehouse-kube run --dir DIR [--exit-with-parent]
//
// writes DIR/kubeconfig (admin token), DIR/audit.log (writes only), DIR/*.log, and
// DIR/ready once /readyz answers. Signals: SIGTERM/SIGINT stop everything; SIGUSR1
// stops the API server (etcd and the supervisor stay); SIGUSR2 starts it again on the
// same port. DIR/apiserver.state says "ready" or "stopped".
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gatehouse-kube run --dir DIR [--exit-with-parent]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runSupervisor(os.Args[2:])
	case "apiserver":
		err = runAPIServer(os.Args[2:])
	case "gc":
		err = runGarbageCollector(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-kube:", err)
		os.Exit(1)
	}
}
