package deployments

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunWithKubernetesConfig starts the binary the way the Deployment does — args, the
// ConfigMap, the Secret and the explicit env — against an embedded broker run as another
// process, and checks the probes and the shutdown the manifests rely on.
func TestRunWithKubernetesConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips starting an embedded broker and eventhooks run (about 10 s)")
	}
	bin := binary(t)
	m := loadK8s(t)
	ctr := m.container()
	const podName = "eventhooks-5d8f7c9b6-x2x7q"

	// The container's environment, as the kubelet would build it: envFrom in order, then env.
	env := map[string]string{}
	for _, ef := range ctr.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			for k, v := range m.configMaps[ef.ConfigMapRef.Name].Data {
				env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			sv, err := m.secrets[ef.SecretRef.Name].values()
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range sv {
				env[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range ctr.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = "default"
		case vf.ConfigMapKeyRef != nil:
			env[e.Name] = m.configMaps[vf.ConfigMapKeyRef.Name].Data[vf.ConfigMapKeyRef.Key]
		case vf.SecretKeyRef != nil:
			sv, _ := m.secrets[vf.SecretKeyRef.Name].values()
			env[e.Name] = sv[vf.SecretKeyRef.Key]
		default:
			t.Fatalf("Deployment env %s: this test cannot simulate its valueFrom; teach it", e.Name)
		}
	}
	// The embedded broker speaks plaintext without SASL.
	for k := range env {
		if strings.HasPrefix(k, "EVENTHOOKS_SASL_") || strings.HasPrefix(k, "EVENTHOOKS_TLS") {
			delete(env, k)
		}
	}
	token := env["EVENTHOOKS_ADMIN_TOKEN"]

	// Listeners move to free loopback ports; the broker is a local embedded one, laid out by
	// the same topic settings.
	for k := range env {
		if strings.HasSuffix(k, "_ADDR") {
			env[k] = testkit.FreeAddr(t)
		}
	}
	kafkaAddr := testkit.FreeAddr(t)
	brokerEnv := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "EVENTHOOKS_") && k != "EVENTHOOKS_BROKERS" && !strings.HasSuffix(k, "_ADDR") {
			brokerEnv[k] = v
		}
	}
	broker := startProcess(t, "broker", bin, []string{"broker", "--kafka-addr", kafkaAddr, "--data-dir", t.TempDir()}, brokerEnv)
	waitTCP(t, broker, kafkaAddr, 30*time.Second)
	env["EVENTHOOKS_BROKERS"] = kafkaAddr

	args := ctr.Args // the image's ENTRYPOINT is the binary itself
	run := startProcess(t, "run", bin, args, env)
	admin := "http://" + env["EVENTHOOKS_ADMIN_ADDR"]

	// /readyz turns 200 once hooks are loaded and the group is joined.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body, err := get(admin+"/readyz", "")
		if err == nil && code == http.StatusOK {
			break
		}
		if run.exited() {
			t.Fatalf("eventhooks run exited before /readyz turned 200 (%v)", run.wait(0))
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 60 s: last %d %q %v", code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, body, err := get(admin+path, ""); err != nil || code != http.StatusOK {
			t.Errorf("GET %s without a token: %d %q %v, want 200", path, code, body, err)
		}
	}
	// The Secret's token guards the Admin API.
	if token != "" {
		if code, _, err := get(admin+"/event-hooks", ""); err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET /event-hooks without the token: %d %v, want 401", code, err)
		}
		if code, body, err := get(admin+"/event-hooks", token); err != nil || code != http.StatusOK {
			t.Errorf("GET /event-hooks with the Secret's token: %d %q %v, want 200", code, body, err)
		}
	}
	// The ConfigMap's log format took effect.
	if env["EVENTHOOKS_LOG_FORMAT"] == "json" {
		first, _, _ := strings.Cut(strings.TrimSpace(run.out.String()), "\n")
		var line map[string]any
		if err := json.Unmarshal([]byte(first), &line); err != nil || line["msg"] == nil {
			t.Errorf("EVENTHOOKS_LOG_FORMAT=json, but the first log line is not a JSON record: %q", first)
		}
	}

	// SIGTERM: a clean exit, well within the grace period.
	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	grace := 45 * time.Second
	if g := m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	start := time.Now()
	if err := run.wait(grace); err != nil {
		t.Errorf("eventhooks run after SIGTERM: %v, want exit status 0", err)
	} else {
		t.Logf("eventhooks run stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	}
	if err := broker.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := broker.wait(30 * time.Second); err != nil {
		t.Errorf("eventhooks broker after SIGTERM: %v, want exit status 0", err)
	}
}

// process is a started binary with its combined output.
type process struct {
	name string
	cmd  *exec.Cmd
	out  testkit.Buffer // stdout and stderr
	done chan struct{}
	err  error
}

func startProcess(t *testing.T, name, bin string, args []string, env map[string]string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = cleanEnv()
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("eventhooks %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to exit and returns its exit error (nil: status 0).
func (p *process) wait(d time.Duration) error {
	if p.exited() {
		return p.err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("still running after %s", d)
	}
}

func waitTCP(t *testing.T, p *process, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p.exited() {
			t.Fatalf("eventhooks %s exited: %v", p.name, p.wait(0))
		}
		if time.Now().After(deadline) {
			t.Fatalf("eventhooks %s: %s not listening after %s", p.name, addr, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func get(url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil && !errors.Is(err, io.EOF) {
		return resp.StatusCode, string(b), err
	}
	return resp.StatusCode, string(b), nil
}
