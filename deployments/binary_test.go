package deployments

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The eventhooks binary, built once per test run from the module this package is in.

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error

	flagsOnce sync.Once
	runFlags  map[string]flagInfo // by environment variable
	flagsErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventhooks-deployments")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the directory of the go.mod this package belongs to.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod)
}

// binary builds ./cmd/eventhooks (once) and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "eventhooks")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/eventhooks")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/eventhooks: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// flagInfo is one flag of `eventhooks run` as its help prints it.
type flagInfo struct {
	Flag    string // --admin-addr
	Default string // "127.0.0.1:8080", or "" when none is printed
}

var (
	// "      --admin-addr="127.0.0.1:8080"", "  -h, --help", "      --[no-]foo"
	helpFlagLine = regexp.MustCompile(`^\s+(?:-\w,\s+)?--(?:\[no-\])?([a-z0-9][a-z0-9-]*)(?:=(\S+))?`)
	helpEnvVar   = regexp.MustCompile(`\$(EVENTHOOKS_[A-Z0-9_]+)`)
)

// flagEnv maps --foo-bar to EVENTHOOKS_FOO_BAR, the way kong.DefaultEnvars does.
func flagEnv(flag string) string {
	return "EVENTHOOKS_" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
}

// flags returns the flags of `eventhooks run`, keyed by their environment variable.
func flags(t *testing.T) map[string]flagInfo {
	t.Helper()
	bin := binary(t)
	flagsOnce.Do(func() { runFlags, flagsErr = parseHelp(bin) })
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return runFlags
}

func parseHelp(bin string) (map[string]flagInfo, error) {
	cmd := exec.Command(bin, "run", "--help")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("eventhooks run --help: %v\n%s", err, out)
	}
	fl := map[string]flagInfo{}
	for _, line := range strings.Split(string(out), "\n") {
		m := helpFlagLine.FindStringSubmatch(line)
		if m == nil || m[1] == "help" {
			continue
		}
		fl[flagEnv(m[1])] = flagInfo{Flag: "--" + m[1], Default: strings.Trim(m[2], `"`)}
	}
	if len(fl) < 5 {
		return nil, fmt.Errorf("eventhooks run --help: found only %d flags in:\n%s", len(fl), out)
	}
	// kong also prints the variable of each flag: both views must agree, or the mapping
	// --foo-bar → EVENTHOOKS_FOO_BAR this test relies on is wrong.
	printed := map[string]bool{}
	for _, m := range helpEnvVar.FindAllStringSubmatch(string(out), -1) {
		printed[m[1]] = true
	}
	for env, f := range fl {
		if !printed[env] {
			return nil, fmt.Errorf("eventhooks run --help: flag %s does not name $%s", f.Flag, env)
		}
	}
	for env := range printed {
		if _, ok := fl[env]; !ok {
			return nil, fmt.Errorf("eventhooks run --help names $%s, but no flag maps to it", env)
		}
	}
	return fl, nil
}

// cleanEnv is this process's environment without EVENTHOOKS_* variables, so that the
// tester's own settings cannot leak into the binaries the tests start.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTHOOKS_") {
			env = append(env, kv)
		}
	}
	return env
}
