package deployments

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// notYetFlags are EVENTHOOKS_* variables the manifests set for flags that are being added
// to the binary. Until a flag exists, its variable is ignored by `eventhooks run` (kong only
// reads the variables of known flags), so listing it here is harmless; once the flag
// exists, delete its line (TestEnvVarsAreFlags logs a reminder).
var notYetFlags = map[string]string{}

// ---- Dockerfile ----------------------------------------------------------------------------

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
	line int
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " "), start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerfileEnv returns the ENV variables of the last stage.
func dockerfileEnv(ins []instruction) map[string]string {
	env := map[string]string{}
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			clear(env)
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = strings.Trim(v, `"`)
				}
			}
		}
	}
	return env
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, dockerfilePath)
	var froms []string
	var last []instruction // the final stage
	var buildRun string
	args := map[string]bool{}
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
			last = nil
		case "ARG":
			name, _, _ := strings.Cut(in.args, "=")
			args[name] = true
		case "RUN":
			if strings.Contains(in.args, "go build") {
				buildRun = in.args
			}
		case "COPY":
			// Sources copied from the build context must exist in the repository.
			fields := strings.Fields(in.args)
			if strings.HasPrefix(fields[0], "--from") {
				break
			}
			for _, src := range fields[:len(fields)-1] {
				if strings.HasPrefix(src, "--") || src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot(t), src)); err != nil {
					t.Errorf("Dockerfile:%d: COPY %s: %v", in.line, src, err)
				}
			}
		}
		last = append(last, in)
	}
	if len(froms) != 2 {
		t.Fatalf("Dockerfile: want a build and a final stage, got FROM %q", froms)
	}
	if !regexp.MustCompile(`^golang:1\.26(\.\d+)?\S* (?i:as) \w+$`).MatchString(froms[0]) {
		t.Errorf("Dockerfile: build stage is FROM %q, want golang:1.26 AS <name>", froms[0])
	}
	if froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("Dockerfile: final stage is FROM %q, want gcr.io/distroless/static-debian12:nonroot", froms[1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", `-X main.version=${VERSION}`, "-o /out/eventhooks", "./cmd/eventhooks"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("Dockerfile: the go build RUN lacks %q: %s", want, buildRun)
		}
	}
	if !args["VERSION"] {
		t.Error("Dockerfile: no ARG VERSION for -X main.version")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), "cmd", "eventhooks")); err != nil {
		t.Errorf("Dockerfile builds ./cmd/eventhooks: %v", err)
	}
	mainGo, err := os.ReadFile(filepath.Join(repoRoot(t), "cmd", "eventhooks", "main.go"))
	if err != nil || !regexp.MustCompile(`(?m)^var version\s*=`).Match(mainGo) {
		t.Errorf("Dockerfile sets -X main.version, but cmd/eventhooks/main.go declares no `var version =` (%v)", err)
	}

	final := map[string][]string{}
	for _, in := range last {
		final[in.cmd] = append(final[in.cmd], in.args)
	}
	check := func(cmd, want string) {
		t.Helper()
		got := final[cmd]
		if len(got) == 0 || got[len(got)-1] != want {
			t.Errorf("Dockerfile final stage: %s %q, want %s %s", cmd, got, cmd, want)
		}
	}
	check("USER", "nonroot")
	check("EXPOSE", "8080")
	check("ENTRYPOINT", `["/eventhooks"]`)
	check("CMD", `["run"]`)
	if !slices.ContainsFunc(final["COPY"], func(s string) bool { return strings.HasSuffix(s, " /eventhooks") }) {
		t.Error("Dockerfile final stage: no COPY of the binary to /eventhooks")
	}
	env := dockerfileEnv(ins)
	addr := env["EVENTHOOKS_ADMIN_ADDR"]
	if addr != "0.0.0.0:8080" {
		t.Errorf("Dockerfile: ENV EVENTHOOKS_ADMIN_ADDR=%q, want 0.0.0.0:8080", addr)
	} else if p, _ := addrPort(addr); strconv.Itoa(p) != final["EXPOSE"][0] {
		t.Errorf("Dockerfile: EXPOSE %s but the Admin API listens on %s", final["EXPOSE"][0], addr)
	}
}

// ---- docker-compose.yml --------------------------------------------------------------------

func TestComposeImages(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Build != nil {
			df := s.dockerfileOf()
			if df != mustAbs(dockerfilePath) {
				t.Errorf("compose %s: built from %s, want deployments/Dockerfile", name, df)
			} else if _, err := os.Stat(df); err != nil {
				t.Errorf("compose %s: %v", name, err)
			}
			continue
		}
		if err := pinnedImage(s.Image); err != nil {
			t.Errorf("compose %s: %v", name, err)
		}
	}
}

// pinnedImage accepts name:tag (tag not latest) and name@sha256:….
func pinnedImage(ref string) error {
	ref = interpolate(ref)
	if ref == "" {
		return fmt.Errorf("no image and no build")
	}
	if strings.Contains(ref, "@sha256:") {
		return nil
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag", ref)
	case tag == "latest":
		return fmt.Errorf("image %q is not pinned (latest)", ref)
	}
	return nil
}

func TestComposeKafka(t *testing.T) {
	c := loadCompose(t)
	k, ok := c.Services["kafka"]
	if !ok {
		t.Fatal("compose: no kafka service")
	}
	env := k.Environment
	roles := strings.Split(env["KAFKA_PROCESS_ROLES"], ",")
	if !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES=%q, want broker,controller (KRaft, single node)", env["KAFKA_PROCESS_ROLES"])
	}
	listeners := map[string]int{} // name → port
	for _, l := range strings.Split(env["KAFKA_LISTENERS"], ",") {
		name, hostPort, ok := strings.Cut(l, "://")
		p, err := addrPort(hostPort)
		if !ok || err != nil {
			t.Errorf("kafka: bad listener %q in KAFKA_LISTENERS", l)
			continue
		}
		listeners[name] = p
	}
	if listeners["PLAINTEXT"] != 9092 || listeners["CONTROLLER"] != 9093 {
		t.Errorf("kafka: KAFKA_LISTENERS=%q, want PLAINTEXT on 9092 and CONTROLLER on 9093", env["KAFKA_LISTENERS"])
	}
	protocols := env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
	for name := range listeners {
		if !strings.Contains(","+protocols+",", ","+name+":") {
			t.Errorf("kafka: listener %s has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=%q", name, protocols)
		}
	}
	if env["KAFKA_CONTROLLER_LISTENER_NAMES"] != "CONTROLLER" {
		t.Errorf("kafka: KAFKA_CONTROLLER_LISTENER_NAMES=%q, want CONTROLLER", env["KAFKA_CONTROLLER_LISTENER_NAMES"])
	}
	// Quorum voters: <node id>@<this service>:<controller port>.
	voter := env["KAFKA_NODE_ID"] + "@kafka:" + strconv.Itoa(listeners["CONTROLLER"])
	if env["KAFKA_CONTROLLER_QUORUM_VOTERS"] != voter {
		t.Errorf("kafka: KAFKA_CONTROLLER_QUORUM_VOTERS=%q, want %q", env["KAFKA_CONTROLLER_QUORUM_VOTERS"], voter)
	}
	for _, v := range []string{"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"} {
		if env[v] != "1" {
			t.Errorf("kafka: %s=%q, want 1 on a single node", v, env[v])
		}
	}
	if !strings.Contains(env["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT://kafka:9092") {
		t.Errorf("kafka: KAFKA_ADVERTISED_LISTENERS=%q, want PLAINTEXT://kafka:9092 for the other containers", env["KAFKA_ADVERTISED_LISTENERS"])
	}
	if k.Healthcheck == nil {
		t.Error("kafka: no healthcheck, so depends_on cannot wait for it")
	}
}

func TestComposeEventhooksReplicas(t *testing.T) {
	c := loadCompose(t)
	names := c.eventhooksServices()
	if len(names) < 2 {
		t.Fatalf("compose: want two eventhooks replicas built from deployments/Dockerfile, got %q", names)
	}
	hostPorts := map[int]string{}
	for name, s := range c.Services {
		ports, err := parsePorts(s.Ports)
		if err != nil {
			t.Errorf("compose %s: %v", name, err)
		}
		for _, p := range ports {
			if other, dup := hostPorts[p.host]; dup {
				t.Errorf("compose: host port %d published by both %s and %s", p.host, other, name)
			}
			hostPorts[p.host] = name
		}
	}
	ids := map[string]string{}
	for _, name := range names {
		s := c.Services[name]
		env := s.Environment
		if len(s.Command) > 0 && !slices.Equal(s.Command, []string{"run"}) {
			t.Errorf("compose %s: command %q, want [run]", name, s.Command)
		}
		id := interpolate(env["EVENTHOOKS_INSTANCE_ID"])
		if id == "" {
			t.Errorf("compose %s: no EVENTHOOKS_INSTANCE_ID", name)
		} else if other, dup := ids[id]; dup {
			t.Errorf("compose: %s and %s share EVENTHOOKS_INSTANCE_ID %q: static members must differ", other, name, id)
		}
		ids[id] = name

		// The Admin API port is published, and guarded by a token off loopback.
		addr := interpolate(env["EVENTHOOKS_ADMIN_ADDR"])
		port, err := addrPort(addr)
		if err != nil {
			t.Errorf("compose %s: EVENTHOOKS_ADMIN_ADDR=%q: %v", name, addr, err)
			continue
		}
		ports, _ := parsePorts(s.Ports)
		if !slices.ContainsFunc(ports, func(p portMapping) bool { return p.container == port }) {
			t.Errorf("compose %s: the Admin API listens on %d but no host port maps to it (ports %q)", name, port, s.Ports)
		}
		if !isLoopbackAddr(addr) && interpolate(env["EVENTHOOKS_ADMIN_TOKEN"]) == "" {
			t.Errorf("compose %s: Admin API on %s without EVENTHOOKS_ADMIN_TOKEN", name, addr)
		}
		for _, a := range []string{"EVENTHOOKS_INGEST_ADDR"} {
			if v := interpolate(env[a]); v != "" {
				p, err := addrPort(v)
				if err != nil || !slices.ContainsFunc(ports, func(m portMapping) bool { return m.container == p }) {
					t.Errorf("compose %s: %s=%q is not published (ports %q)", name, a, v, s.Ports)
				}
			}
		}
		// eventhooks refuses to start ingest off loopback without its token.
		if v := interpolate(env["EVENTHOOKS_INGEST_ADDR"]); v != "" && !isLoopbackAddr(v) && interpolate(env["EVENTHOOKS_INGEST_TOKEN"]) == "" {
			t.Errorf("compose %s: HTTP ingest on %s without EVENTHOOKS_INGEST_TOKEN", name, v)
		}

		// Brokers are compose services advertising exactly that address.
		brokers := interpolate(env["EVENTHOOKS_BROKERS"])
		if brokers == "" {
			t.Errorf("compose %s: no EVENTHOOKS_BROKERS", name)
		}
		for _, b := range strings.Split(brokers, ",") {
			host, _, err := net.SplitHostPort(b)
			k, ok := c.Services[host]
			switch {
			case err != nil:
				t.Errorf("compose %s: broker %q: %v", name, b, err)
			case !ok:
				t.Errorf("compose %s: broker %q is not a compose service", name, b)
			case !strings.Contains(k.Environment["KAFKA_ADVERTISED_LISTENERS"], "://"+b):
				t.Errorf("compose %s: broker %q is not among %s's advertised listeners %q", name, b, host, k.Environment["KAFKA_ADVERTISED_LISTENERS"])
			case !slices.Contains(s.DependsOn, host):
				t.Errorf("compose %s: does not depend_on %s", name, host)
			}
		}
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("compose %s: no restart policy (there is no healthcheck to recover with)", name)
		}

		// Hooks in the playground call the sample receiver on the compose network.
		allow := interpolate(env["EVENTHOOKS_ALLOW_DESTINATIONS"])
		for net, n := range c.Networks {
			for _, cfg := range n.IPAM.Config {
				if !cidrsCover(allow, cfg.Subnet) {
					t.Errorf("compose %s: EVENTHOOKS_ALLOW_DESTINATIONS=%q does not cover network %s (%s)", name, allow, net, cfg.Subnet)
				}
			}
		}
	}
	if len(c.Networks) == 0 {
		t.Error("compose: the default network's subnet is not pinned, so EVENTHOOKS_ALLOW_DESTINATIONS cannot be known to cover it")
	}
}

// cidrsCover tells whether one of the comma-separated CIDRs in list contains subnet.
func cidrsCover(list, subnet string) bool {
	_, sub, err := net.ParseCIDR(subnet)
	if err != nil {
		return false
	}
	subOnes, _ := sub.Mask.Size()
	for _, c := range strings.Split(list, ",") {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			continue
		}
		ones, _ := n.Mask.Size()
		if n.Contains(sub.IP) && ones <= subOnes {
			return true
		}
	}
	return false
}

func TestPrometheusTargets(t *testing.T) {
	c := loadCompose(t)
	var p prometheusConfig
	decodeFile(t, prometheusPath, &p)
	prom, ok := c.Services["prometheus"]
	if !ok {
		t.Fatal("compose: no prometheus service")
	}
	if err := pinnedImage(prom.Image); err != nil {
		t.Errorf("compose prometheus: %v", err)
	}
	if !slices.ContainsFunc(prom.Volumes, func(v string) bool {
		return strings.HasPrefix(v, "./"+prometheusPath+":/etc/prometheus/prometheus.yml")
	}) {
		t.Errorf("compose prometheus: does not mount ./%s at /etc/prometheus/prometheus.yml (volumes %q)", prometheusPath, prom.Volumes)
	}
	scraped := map[string]bool{}
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("prometheus job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				s, ok := c.Services[host]
				if !ok {
					t.Errorf("prometheus job %s: target %q is not a compose service", sc.JobName, target)
					continue
				}
				if s.Build == nil { // not eventhooks
					continue
				}
				want, err := addrPort(interpolate(s.Environment["EVENTHOOKS_ADMIN_ADDR"]))
				if err != nil || port != strconv.Itoa(want) {
					t.Errorf("prometheus job %s: target %q, but %s serves /metrics on port %d", sc.JobName, target, host, want)
				}
				if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
					t.Errorf("prometheus job %s: metrics_path %q, want /metrics", sc.JobName, sc.MetricsPath)
				}
				scraped[host] = true
			}
		}
	}
	for _, name := range c.eventhooksServices() {
		if !scraped[name] {
			t.Errorf("prometheus: eventhooks replica %s is not scraped", name)
		}
	}
}

// ---- flags ⇔ environment -------------------------------------------------------------------

// manifestEnv returns every EVENTHOOKS_* variable the manifests set, with where.
func manifestEnv(t *testing.T) map[string][]string {
	t.Helper()
	uses := map[string][]string{}
	add := func(name, where string) {
		if strings.HasPrefix(name, "EVENTHOOKS_") {
			uses[name] = append(uses[name], where)
		}
	}
	for name := range dockerfileEnv(parseDockerfile(t, dockerfilePath)) {
		add(name, "Dockerfile")
	}
	c := loadCompose(t)
	for svc, s := range c.Services {
		for name := range s.Environment {
			add(name, "docker-compose.yml "+svc)
		}
	}
	m := loadK8s(t)
	for name := range m.configMap().Data {
		add(name, "k8s/configmap.yaml")
	}
	sv, err := m.secret().values()
	if err != nil {
		t.Fatal(err)
	}
	for name := range sv {
		add(name, "k8s/secret.yaml")
	}
	for _, e := range m.container().Env {
		add(e.Name, "k8s/deployment.yaml")
	}
	return uses
}

func TestEnvVarsAreFlags(t *testing.T) {
	fl := flags(t)
	uses := manifestEnv(t)
	names := make([]string, 0, len(uses))
	for name := range uses {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		_, isFlag := fl[name]
		pending, isPending := notYetFlags[name]
		switch {
		case isFlag && isPending:
			t.Logf("%s is now a flag (%s): remove it from notYetFlags", name, fl[name].Flag)
		case isFlag:
		case isPending:
			t.Logf("%s (%v) waits for flag %s", name, uses[name], pending)
		default:
			t.Errorf("%s (set in %v) is not a flag of `eventhooks run`: the binary ignores it", name, uses[name])
		}
	}
	for name := range notYetFlags {
		if _, used := uses[name]; !used {
			t.Errorf("notYetFlags lists %s, which no manifest sets: remove it", name)
		}
	}
}

// ---- Kubernetes ----------------------------------------------------------------------------

func TestKubernetesManifests(t *testing.T) {
	m := loadK8s(t)
	cm, sec := m.configMap(), m.secret()
	d := m.deployment
	pod := d.Spec.Template
	ctr := m.container()

	// kustomization.yaml lists exactly the manifests.
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(m.kustomize.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %q, want the files %q", m.kustomize.Resources, want)
	}

	// Deployment shape.
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("Deployment: replicas %v, want 2 or more", d.Spec.Replicas)
	}
	if !isSubset(d.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Errorf("Deployment: selector %v does not match the pod labels %v", d.Spec.Selector.MatchLabels, pod.Metadata.Labels)
	}
	if len(ctr.Command) > 0 {
		t.Errorf("Deployment: command %q overrides the image's ENTRYPOINT /eventhooks", ctr.Command)
	}
	if !slices.Equal(ctr.Args, []string{"run"}) {
		t.Errorf("Deployment: args %q, want [run]", ctr.Args)
	}
	if ctr.Image == "" {
		t.Error("Deployment: no image")
	}

	// Environment sources exist.
	var fromCM, fromSecret bool
	for _, ef := range ctr.EnvFrom {
		if r := ef.ConfigMapRef; r != nil {
			fromCM = true
			if _, ok := m.configMaps[r.Name]; !ok {
				t.Errorf("Deployment: envFrom ConfigMap %q does not exist (have %v)", r.Name, keys(m.configMaps))
			}
		}
		if r := ef.SecretRef; r != nil {
			fromSecret = true
			if _, ok := m.secrets[r.Name]; !ok {
				t.Errorf("Deployment: envFrom Secret %q does not exist (have %v)", r.Name, keys(m.secrets))
			}
		}
		if ef.Prefix != "" {
			t.Errorf("Deployment: envFrom prefix %q would rename the EVENTHOOKS_* variables", ef.Prefix)
		}
	}
	if !fromCM || !fromSecret {
		t.Errorf("Deployment: envFrom must reference the ConfigMap and the Secret (configMap %v, secret %v)", fromCM, fromSecret)
	}
	instanceID := false
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			if _, ok := m.configMaps[r.Name].Data[r.Key]; !ok {
				t.Errorf("Deployment: env %s refers to missing ConfigMap key %s/%s", e.Name, r.Name, r.Key)
			}
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil {
			v, _ := m.secrets[r.Name].values()
			if _, ok := v[r.Key]; !ok {
				t.Errorf("Deployment: env %s refers to missing Secret key %s/%s", e.Name, r.Name, r.Key)
			}
		}
		if e.Name == "EVENTHOOKS_INSTANCE_ID" {
			instanceID = true
		}
	}
	if instanceID {
		// A Deployment's pods get new names on every rollout; a static member that
		// stops does not leave the group, so its partitions would stall for the whole
		// session timeout. Dynamic members leave on SIGTERM and hand over at once.
		t.Error("Deployment: EVENTHOOKS_INSTANCE_ID must not be set (static membership stalls rollouts)")
	}

	// Probes hit the Admin API's port.
	adminAddr := cm.Data["EVENTHOOKS_ADMIN_ADDR"]
	adminPort, err := addrPort(adminAddr)
	if err != nil {
		t.Fatalf("ConfigMap: EVENTHOOKS_ADMIN_ADDR=%q: %v", adminAddr, err)
	}
	if isLoopbackAddr(adminAddr) {
		t.Errorf("ConfigMap: EVENTHOOKS_ADMIN_ADDR=%q is loopback: probes and the Service cannot reach it", adminAddr)
	}
	sv, err := sec.values()
	if err != nil {
		t.Fatal(err)
	}
	if sv["EVENTHOOKS_ADMIN_TOKEN"] == "" {
		t.Errorf("Secret: no EVENTHOOKS_ADMIN_TOKEN, but the Admin API listens on %s", adminAddr)
	}
	// eventhooks refuses to start ingest off loopback without its token.
	if a := cm.Data["EVENTHOOKS_INGEST_ADDR"]; a != "" && !isLoopbackAddr(a) && sv["EVENTHOOKS_INGEST_TOKEN"] == "" && cm.Data["EVENTHOOKS_INGEST_TOKEN"] == "" {
		t.Errorf("Secret: no EVENTHOOKS_INGEST_TOKEN, but HTTP ingest listens on %s", a)
	}
	for _, pr := range []struct {
		name, path string
		p          *probe
		required   bool
	}{
		{"readinessProbe", "/readyz", ctr.ReadinessProbe, true},
		{"livenessProbe", "/healthz", ctr.LivenessProbe, true},
		{"startupProbe", "/healthz", ctr.StartupProbe, false},
	} {
		if pr.p == nil {
			if pr.required {
				t.Errorf("Deployment: no %s", pr.name)
			}
			continue
		}
		if pr.p.HTTPGet == nil {
			t.Errorf("Deployment: %s is not an httpGet probe", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("Deployment: %s path %q, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if port, ok := ctr.containerPort(pr.p.HTTPGet.Port); !ok || port != adminPort {
			t.Errorf("Deployment: %s port %q is not the Admin API's container port %d", pr.name, pr.p.HTTPGet.Port, adminPort)
		}
	}
	// Every listener of the ConfigMap is a declared container port.
	for k, v := range cm.Data {
		if strings.HasSuffix(k, "_ADDR") {
			p, err := addrPort(v)
			if _, ok := ctr.containerPort(strconv.Itoa(p)); err != nil || !ok {
				t.Errorf("ConfigMap: %s=%q is not a containerPort of the Deployment", k, v)
			}
		}
	}

	// Shutdown fits in the grace period.
	shutdown := cm.Data["EVENTHOOKS_SHUTDOWN_TIMEOUT"]
	if shutdown == "" {
		shutdown = flags(t)["EVENTHOOKS_SHUTDOWN_TIMEOUT"].Default
	}
	sd, err := time.ParseDuration(shutdown)
	if err != nil {
		t.Fatalf("shutdown timeout %q: %v", shutdown, err)
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil {
		t.Errorf("Deployment: no terminationGracePeriodSeconds; it must exceed the shutdown timeout %s", sd)
	} else if time.Duration(*g)*time.Second <= sd {
		t.Errorf("Deployment: terminationGracePeriodSeconds %d must exceed the shutdown timeout %s", *g, sd)
	}

	// Resources and hardening.
	for _, r := range []string{"cpu", "memory"} {
		if ctr.Resources.Requests[r] == "" || ctr.Resources.Limits[r] == "" {
			t.Errorf("Deployment: %s request and limit must both be set (requests %v, limits %v)", r, ctr.Resources.Requests, ctr.Resources.Limits)
		}
	}
	sc := ctr.SecurityContext
	if !isTrue(sc.RunAsNonRoot) && !isTrue(pod.Spec.SecurityContext.RunAsNonRoot) {
		t.Error("Deployment: runAsNonRoot is not set")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("Deployment: readOnlyRootFilesystem is not set")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("Deployment: allowPrivilegeEscalation must be false")
	}

	// Service.
	s := m.service
	if s.Spec.Type != "" && s.Spec.Type != "ClusterIP" {
		t.Errorf("Service: type %q, want ClusterIP", s.Spec.Type)
	}
	if !isSubset(s.Spec.Selector, pod.Metadata.Labels) {
		t.Errorf("Service: selector %v does not match the pod labels %v", s.Spec.Selector, pod.Metadata.Labels)
	}
	httpPort := false
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target == "" {
			target = strconv.Itoa(p.Port)
		}
		cp, ok := ctr.containerPort(target)
		if !ok {
			t.Errorf("Service: port %s targets %q, which is no containerPort", p.Name, target)
		}
		if p.Name == "http" && p.Port == 8080 && cp == adminPort {
			httpPort = true
		}
	}
	if !httpPort {
		t.Errorf("Service: no port http 8080 → the Admin API (container port %d)", adminPort)
	}
	ann := s.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(adminPort) ||
		(ann["prometheus.io/path"] != "" && ann["prometheus.io/path"] != "/metrics") {
		t.Errorf("Service: prometheus.io annotations %v, want scrape \"true\", port %d, path /metrics", ann, adminPort)
	}

	// PodDisruptionBudget.
	if m.pdb.Spec.MinAvailable != "1" {
		t.Errorf("PodDisruptionBudget: minAvailable %q, want 1", m.pdb.Spec.MinAvailable)
	}
	if !isSubset(m.pdb.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Errorf("PodDisruptionBudget: selector %v does not match the pod labels %v", m.pdb.Spec.Selector.MatchLabels, pod.Metadata.Labels)
	}

	// One namespace (or none: kubectl -n / kustomize decides).
	nss := map[string]bool{}
	for _, o := range m.objects {
		nss[o.Metadata.Namespace] = true
	}
	if len(nss) > 1 {
		t.Errorf("k8s: objects in several namespaces %v", keys(nss))
	}
}

// TestKustomizeBuild renders the kustomization with kubectl, which needs no cluster.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed, so `kubectl kustomize deployments/k8s` is not checked here")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "kustomize", k8sDir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", k8sDir, err, out)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	var kinds []string
	for {
		var o k8sObject
		if err := dec.Decode(&o); err != nil {
			break
		}
		kinds = append(kinds, o.Kind)
	}
	sort.Strings(kinds)
	want := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"}
	if !slices.Equal(kinds, want) {
		t.Errorf("kubectl kustomize: kinds %q, want %q", kinds, want)
	}
}

// TestComposeConfig lets Docker Compose itself validate the file when it is installed
// (`docker compose config` needs no engine).
func TestComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker CLI not installed: docker-compose.yml is only checked by this package's own parsing")
	}
	if err := exec.Command(docker, "compose", "version").Run(); err != nil {
		t.Skip("the docker compose plugin is not installed: docker-compose.yml is only checked by this package's own parsing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, docker, "compose", "-f", composePath, "config", "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}

// TestDockerBuild builds the image when asked to: it needs a Docker engine and network.
func TestDockerBuild(t *testing.T) {
	if os.Getenv("EVENTHOOKS_TEST_DOCKER_BUILD") == "" {
		t.Skip("set EVENTHOOKS_TEST_DOCKER_BUILD=1 to build the image (needs a Docker engine and network; none here)")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skipf("no Docker engine reachable (docker info: %v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "build", "-f", mustAbs(dockerfilePath),
		"--build-arg", "VERSION=test", "-t", "eventhooks:deployments-test", repoRoot(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
