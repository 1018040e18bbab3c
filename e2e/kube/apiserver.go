package main

import (
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// runAPIServer runs kube-apiserver in this process with the given flags; it handles
// SIGTERM itself (graceful shutdown).
func runAPIServer(args []string) error {
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)
	return cmd.Execute()
}

// apiServerArgs are the flags the supervisor passes to the API server.
func apiServerArgs(d *layout, port, etcdURL string) []string {
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + port,
		"--cert-dir=" + d.path("certs"),
		"--tls-cert-file=" + d.path("serving.crt"),
		"--tls-private-key-file=" + d.path("serving.key"),
		"--client-ca-file=" + d.path("ca.crt"),
		"--token-auth-file=" + d.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + d.path("sa.key"),
		"--service-account-signing-key-file=" + d.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		// Nothing routes to this server from a cluster network; the `kubernetes`
		// Service's endpoints would be a loopback address, which the API refuses.
		"--endpoint-reconciler-type=none",
		"--audit-policy-file=" + d.path("audit-policy.yaml"),
		"--audit-log-path=" + d.path("audit.log"),
		"--audit-log-mode=blocking",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
	}
}
