// Package deployments holds no code: only the tests that validate the deployment manifests
// beside it (Dockerfile, docker-compose.yml, prometheus.yml and the Kubernetes manifests in
// k8s/) against each other and against the eventhooks binary's real flags.
package deployments
