package main

// The roles a separate-process bench starts its own binary in (`eventhooks bench --child
// ROLE`, hidden), and the parent's handle on every process it starts. A role child talks
// JSON lines on stdout and stops when its stdin closes, so it dies with the bench.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/broker"
)

// The roles of `bench --child`.
const (
	childReceiver   = "receiver"
	childBare       = "bare"
	childRawHTTP    = "raw-http"
	childRawConsume = "raw-consume"
)

// childMsg is one line a role child writes on stdout.
type childMsg struct {
	Error string `json:"error,omitempty"`
	// URL is where the receiver listens (its first line).
	URL string `json:"url,omitempty"`
	// At answers the receiver's "wait N": unix nanos of the N-th request.
	At int64 `json:"at,omitempty"`
	// Stats answers the receiver's "stats".
	Stats *receiverStats `json:"stats,omitempty"`
	// Result is a baseline child's row, its only line.
	Result *bench.Result `json:"result,omitempty"`
	// IDs answers the receiver's "ids": the event ids counted since "track N", and
	// Missing, the first few of those not seen yet.
	IDs     *bench.IDStats `json:"ids,omitempty"`
	Missing []int64        `json:"missing,omitempty"`
}

// missingShown is how many missing event ids the receiver's "ids" names at the most.
const missingShown = 10

// receiverStats is what the receiver counted since its last "reset".
type receiverStats struct {
	Count   int64         `json:"count"`
	Missing int64         `json:"missing"`
	First   int64         `json:"first"` // unix nanos of the first request, 0 if none
	Latency bench.Latency `json:"latency"`
}

// runChild plays role c.Child until its stdin closes (or ctx ends).
func (c *BenchCmd) runChild(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan string)
	go func() { // stdin closing means the bench is done with us, or gone
		defer cancel()
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	out := json.NewEncoder(os.Stdout)
	if c.Child == childReceiver {
		return serveReceiver(ctx, out, lines, c.ReceiverDelay)
	}
	res, err := c.childBaseline(ctx)
	msg := childMsg{Result: &res}
	if err != nil {
		msg = childMsg{Error: err.Error()}
	}
	if eerr := out.Encode(msg); eerr != nil || err != nil {
		return errors.Join(err, eerr)
	}
	<-ctx.Done() // the bench reads our /proc figures until it closes stdin
	return nil
}

// childBaseline runs the baseline of role c.Child.
func (c *BenchCmd) childBaseline(ctx context.Context) (bench.Result, error) {
	conn, err := broker.Config{Brokers: c.Brokers, ClientID: "eventhooks-bench"}.ClientOpts()
	if err != nil {
		return bench.Result{}, err
	}
	t := bench.Target{URL: c.Target, MaxConns: c.MaxConns}
	switch c.Child {
	case childBare:
		stop, err := startCPUProfile(c.CPUProfile, slog.Default())
		if err != nil {
			return bench.Result{}, err
		}
		defer stop()
		return bench.BarePipeline(ctx, conn, c.ChildTopic, t, c.Events, c.Lanes)
	case childRawHTTP:
		return bench.RawHTTP(ctx, t, c.Events, c.MaxConns)
	case childRawConsume:
		return bench.RawConsume(ctx, conn, c.ChildTopic, c.Events)
	}
	return bench.Result{}, fmt.Errorf("--child %q: want %s, %s, %s or %s", c.Child, childReceiver, childBare, childRawHTTP, childRawConsume)
}

// serveReceiver runs a bench.Receiver answering each request after delay, writes its
// URL, then answers the commands read from lines ("reset", "wait N", "stats", "track N",
// "ids") until lines stop coming.
func serveReceiver(ctx context.Context, out *json.Encoder, lines <-chan string, delay time.Duration) error {
	r, err := bench.NewReceiver()
	if err != nil {
		return err
	}
	defer r.Close()
	r.SetDelay(delay)
	if err := out.Encode(childMsg{URL: r.URL}); err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case line := <-lines:
			if err := out.Encode(receiverCommand(ctx, r, line)); err != nil {
				return fmt.Errorf("receiver: %w", err)
			}
		}
	}
}

// receiverCommand runs one command of the bench on r and returns the answer.
func receiverCommand(ctx context.Context, r *bench.Receiver, line string) childMsg {
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "reset":
		r.Reset()
		return childMsg{}
	case "wait":
		n, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			return childMsg{Error: fmt.Sprintf("wait %q: %v", arg, err)}
		}
		at, err := r.WaitContext(ctx, n)
		if err != nil {
			return childMsg{Error: err.Error()}
		}
		return childMsg{At: at.UnixNano()}
	case "track":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return childMsg{Error: fmt.Sprintf("track %q: %v", arg, err)}
		}
		r.TrackIDs(n)
		return childMsg{}
	case "ids":
		s, missing := r.IDs(missingShown)
		return childMsg{IDs: &s, Missing: missing}
	case "stats":
		s := receiverStats{Count: r.Count(), Missing: r.Missing(), Latency: r.Latency()}
		if first := r.First(); !first.IsZero() {
			s.First = first.UnixNano()
		}
		return childMsg{Stats: &s}
	}
	return childMsg{Error: fmt.Sprintf("unknown command %q", line)}
}

// benchProc is a process the bench started: the broker, `eventhooks run` or a role
// child (with a pipe to its stdin and its stdout read as JSON lines).
type benchProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser // role children only
	lines  chan []byte    // role children's stdout lines; closed at EOF
	exited chan struct{}  // closed once the process was waited for; err is then set
	err    error
	once   sync.Once
}

// startProc starts exe with args; role says it is a role child, which talks on its
// stdin and stdout. Its stderr (logs) is the bench's. The process goes in a process
// group of its own and, on Linux, is killed if the bench dies.
func startProc(name, exe string, role bool, args ...string) (*benchProc, error) {
	return startProcWith(name, procSetup{cpu: -1}, exe, role, args...)
}

// procSetup is how startProcWith starts a process, beyond its arguments.
type procSetup struct {
	env []string // added to the bench's environment
	cpu int      // when not negative, every thread of the process runs on this CPU only
}

// startProcWith is startProc as set up by set.
func startProcWith(name string, set procSetup, exe string, role bool, args ...string) (*benchProc, error) {
	p := &benchProc{name: name, cmd: exec.Command(exe, args...), exited: make(chan struct{})}
	if set.env != nil {
		p.cmd.Env = append(os.Environ(), set.env...)
	}
	p.cmd.Stderr = os.Stderr
	p.cmd.SysProcAttr = childSysProcAttr()
	var stdout io.ReadCloser
	if role {
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		if stdout, err = p.cmd.StdoutPipe(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		p.lines = make(chan []byte, 1)
	}
	start := p.cmd.Start
	if set.cpu >= 0 {
		start = func() error { return startPinned(p.cmd, set.cpu, p.exited) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if role {
		go p.readLines(stdout)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *benchProc) readLines(stdout io.Reader) {
	defer close(p.lines)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		p.lines <- append([]byte(nil), sc.Bytes()...)
	}
}

// pid is the process id.
func (p *benchProc) pid() int { return p.cmd.Process.Pid }

// next reads the role child's next line; a line with an error is returned as one.
func (p *benchProc) next(ctx context.Context) (childMsg, error) {
	var m childMsg
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.exited
			return m, fmt.Errorf("%s stopped: %v", p.name, p.err)
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return m, fmt.Errorf("%s said %q: %w", p.name, line, err)
		}
		if m.Error != "" {
			return m, fmt.Errorf("%s: %s", p.name, m.Error)
		}
		return m, nil
	case <-ctx.Done():
		return m, fmt.Errorf("waiting for %s: %w", p.name, ctx.Err())
	}
}

// call sends the role child a command and reads its answer.
func (p *benchProc) call(ctx context.Context, command string) (childMsg, error) {
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		return childMsg{}, fmt.Errorf("%s %s: %w", p.name, command, err)
	}
	return p.next(ctx)
}

// stop ends the process: its stdin closed, SIGTERM to its group, SIGKILL after grace.
// It may be called more than once.
func (p *benchProc) stop(grace time.Duration) {
	p.once.Do(func() {
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		signalGroup(p.cmd.Process, false)
		select {
		case <-p.exited:
		case <-time.After(grace):
			signalGroup(p.cmd.Process, true)
			<-p.exited
		}
	})
}
