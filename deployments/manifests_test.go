package deployments

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// This file loads the manifests into small typed views; deployments_test.go checks them.

const (
	dockerfilePath = "Dockerfile"
	composePath    = "docker-compose.yml"
	prometheusPath = "prometheus.yml"
	k8sDir         = "k8s"
)

// ---- YAML helpers ------------------------------------------------------------------------

// stringOrList is a compose field that may be a string or a list of strings (command).
type stringOrList []string

func (s *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// envMap is a compose environment: a mapping (merge keys resolved) or a list of K=V.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	out := envMap{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil { // resolves "<<: *anchor"
			return err
		}
		for k, v := range m {
			if v == nil {
				out[k] = ""
			} else {
				out[k] = fmt.Sprint(v)
			}
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment must be a mapping or a list", n.Line)
	}
	*e = out
	return nil
}

// dependsOn is a compose depends_on: a list of names or a mapping name → condition.
type dependsOn []string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*d = l
		return nil
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			return err
		}
		var l []string
		for k := range m {
			l = append(l, k)
		}
		sort.Strings(l)
		*d = l
		return nil
	}
	return fmt.Errorf("line %d: depends_on must be a list or a mapping", n.Line)
}

// interpolate expands compose's ${VAR}, ${VAR:-default} and ${VAR-default} to their
// defaults, as they would be with none of the variables set; $$ is a literal $.
func interpolate(s string) string {
	re := regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return re.FindStringSubmatch(m)[2]
	})
}

// ---- docker-compose.yml --------------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Hostname    string         `yaml:"hostname"`
	Build       *composeBuild  `yaml:"build"`
	Command     stringOrList   `yaml:"command"`
	Environment envMap         `yaml:"environment"`
	Ports       []string       `yaml:"ports"`
	Volumes     []string       `yaml:"volumes"`
	DependsOn   dependsOn      `yaml:"depends_on"`
	Restart     string         `yaml:"restart"`
	Healthcheck map[string]any `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode { // build: <context>
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	decodeFile(t, composePath, &c)
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", composePath)
	}
	return c
}

// dockerfileOf returns the absolute Dockerfile a built service uses.
func (s composeService) dockerfileOf() string {
	ctx := s.Build.Context
	if ctx == "" {
		ctx = "."
	}
	ctx = filepath.Join(mustAbs("."), ctx) // relative to the compose file's directory
	df := s.Build.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(ctx, df) // relative to the build context
	}
	return filepath.Clean(df)
}

// eventhooksServices are the services built from deployments/Dockerfile, by name.
func (c composeFile) eventhooksServices() []string {
	var names []string
	for name, s := range c.Services {
		if s.Build != nil && s.dockerfileOf() == mustAbs(dockerfilePath) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// portMapping is one "HOST:CONTAINER" entry of a compose service.
type portMapping struct{ host, container int }

func parsePorts(ports []string) ([]portMapping, error) {
	var out []portMapping
	for _, p := range ports {
		spec, _, _ := strings.Cut(interpolate(p), "/") // drop /tcp
		parts := strings.Split(spec, ":")
		if len(parts) < 2 {
			return nil, fmt.Errorf("port %q publishes no fixed host port", p)
		}
		host, err1 := strconv.Atoi(parts[len(parts)-2])
		ctr, err2 := strconv.Atoi(parts[len(parts)-1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("port %q: %v", p, err)
		}
		out = append(out, portMapping{host, ctr})
	}
	return out, nil
}

// ---- prometheus.yml ------------------------------------------------------------------------

type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// ---- Kubernetes ----------------------------------------------------------------------------

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	file       string
	node       *yaml.Node
}

type configMap struct {
	Metadata meta              `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

type secret struct {
	Metadata   meta              `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

// values returns the secret's keys and decoded values (stringData wins, as in the API).
func (s secret) values() (map[string]string, error) {
	out := map[string]string{}
	for k, v := range s.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("secret %s data.%s: %v", s.Metadata.Name, k, err)
		}
		out[k] = string(b)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out, nil
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		Prefix       string   `yaml:"prefix"`
		ConfigMapRef *nameRef `yaml:"configMapRef"`
		SecretRef    *nameRef `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			ConfigMapKeyRef  *keyRef `yaml:"configMapKeyRef"`
			SecretKeyRef     *keyRef `yaml:"secretKeyRef"`
			ResourceFieldRef *struct {
				Resource string `yaml:"resource"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type nameRef struct {
	Name string `yaml:"name"`
}

type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

// containerPort resolves a port given by number or name.
func (c container) containerPort(p string) (int, bool) {
	for _, cp := range c.Ports {
		if cp.Name == p || strconv.Itoa(cp.ContainerPort) == p {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

type service struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type pdb struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		MinAvailable   string        `yaml:"minAvailable"`
		MaxUnavailable string        `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type kustomization struct {
	Resources []string `yaml:"resources"`
}

// k8sManifests are the objects of deployments/k8s, one of each kind expected.
type k8sManifests struct {
	objects    []k8sObject
	configMaps map[string]configMap
	secrets    map[string]secret
	deployment deployment
	service    service
	pdb        pdb
	kustomize  kustomization
}

func loadK8s(t *testing.T) k8sManifests {
	t.Helper()
	m := k8sManifests{configMaps: map[string]configMap{}, secrets: map[string]secret{}}
	decodeFile(t, filepath.Join(k8sDir, "kustomization.yaml"), &m.kustomize)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var deployments, services, pdbs int
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, obj := range decodeK8sFile(t, f) {
			m.objects = append(m.objects, obj)
			var err error
			switch obj.Kind {
			case "ConfigMap":
				var cm configMap
				err = obj.node.Decode(&cm)
				m.configMaps[cm.Metadata.Name] = cm
			case "Secret":
				var s secret
				err = obj.node.Decode(&s)
				m.secrets[s.Metadata.Name] = s
			case "Deployment":
				deployments++
				err = obj.node.Decode(&m.deployment)
			case "Service":
				services++
				err = obj.node.Decode(&m.service)
			case "PodDisruptionBudget":
				pdbs++
				err = obj.node.Decode(&m.pdb)
			default:
				t.Errorf("%s: unexpected kind %q (teach this test about it)", f, obj.Kind)
			}
			if err != nil {
				t.Fatalf("%s: %s %s: %v", f, obj.Kind, obj.Metadata.Name, err)
			}
		}
	}
	if deployments != 1 || services != 1 || pdbs != 1 || len(m.configMaps) != 1 || len(m.secrets) != 1 {
		t.Fatalf("k8s: want one Deployment, Service, PodDisruptionBudget, ConfigMap and Secret; got %d, %d, %d, %d, %d",
			deployments, services, pdbs, len(m.configMaps), len(m.secrets))
	}
	if n := len(m.deployment.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("k8s Deployment: want one container, got %d", n)
	}
	return m
}

func (m k8sManifests) container() container { return m.deployment.Spec.Template.Spec.Containers[0] }

func (m k8sManifests) configMap() configMap {
	for _, cm := range m.configMaps {
		return cm
	}
	return configMap{}
}

func (m k8sManifests) secret() secret {
	for _, s := range m.secrets {
		return s
	}
	return secret{}
}

func decodeK8sFile(t *testing.T, path string) []k8sObject {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []k8sObject
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var obj k8sObject
		if err := n.Decode(&obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if obj.Kind == "" && obj.APIVersion == "" { // empty document
			continue
		}
		if obj.Kind == "" || obj.APIVersion == "" || obj.Metadata.Name == "" {
			t.Fatalf("%s: object without apiVersion, kind or metadata.name", path)
		}
		obj.file, obj.node = path, &n
		out = append(out, obj)
	}
	return out
}

// ---- generic -------------------------------------------------------------------------------

func decodeFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return filepath.Clean(a)
}

// addrPort returns the port of a listen address like 0.0.0.0:8080 or :8080.
func addrPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// isLoopbackAddr tells whether a listen address only accepts local connections.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isSubset tells whether every label of sel is in labels.
func isSubset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
