package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/chzyer/readline"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/console"
)

func (c *cli) newConsoleCommand() *cobra.Command {
	var tail int
	cmd := &cobra.Command{
		Use:   "console INSTANCE",
		Short: "Open a live console on a game server: its log and your commands",
		Long: `Console opens a live session on the game through the API server and the node
agent, as kubectl exec does: new lines of the game's log appear as they are
written, and each line you type runs as an RCON command, its answer printed
when it comes. It needs the editor role in the namespace; every command is
written to the audit log, and refused (with a message, the session goes on)
when it is longer than 512 bytes, holds a control character, or comes faster
than the RCON rate limit allows.

On a terminal the prompt has line editing and history (for the session);
Ctrl-D leaves, Ctrl-C clears the line. Without a terminal, console reads
one command a line from standard input, prints each answer, and exits once
the last one is answered:

  echo status | l4mctl console coop-1

When the game stops, console prints why and exits 0; a console that cannot
open (a stopped game, a node not Ready, no permission) fails with the API's
reason.`,
		Example: `  l4mctl console coop-1
  l4mctl console coop-1 --tail 20
  printf 'status\nsay hello\n' | l4mctl console coop-1`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("instances"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			dctx, cancel := c.requestContext(ctx)
			s, err := cl.Console(dctx, c.ns(), args[0], tail)
			cancel()
			if err != nil {
				return err
			}
			msgs := readMessages(ctx, s)
			defer msgs.stop(s)
			if term, ok := openTerminal(c.streams.In, c.streams.Out); ok {
				defer term.close()
				return c.interactiveConsole(ctx, s, msgs, term, args[0])
			}
			return c.scriptedConsole(ctx, s, msgs)
		},
	}
	cmd.Flags().IntVar(&tail, "tail", 0, "first print the last N lines of the log")
	return cmd
}

// messages are a session's messages, read by one goroutine; end holds how
// the session ended once msgs is closed.
type messages struct {
	msgs chan console.Message
	quit chan struct{}
	end  error
}

func readMessages(ctx context.Context, s *client.ConsoleSession) *messages {
	m := &messages{msgs: make(chan console.Message), quit: make(chan struct{})}
	go func() {
		defer close(m.msgs)
		for {
			msg, err := s.Next(ctx)
			if err != nil {
				m.end = err
				return
			}
			select {
			case m.msgs <- msg:
			case <-m.quit:
				return
			}
		}
	}()
	return m
}

// stop leaves the session and waits for the reader.
func (m *messages) stop(s *client.ConsoleSession) {
	close(m.quit)
	s.Close()
	for range m.msgs {
	}
}

// ended turns how the session ended into the command's result: the game
// stopping is a normal end (its reason is printed), anything else fails.
func (c *cli) ended(ctx context.Context, err error) error {
	var closed *client.ConsoleClosed
	switch {
	case ctx.Err() != nil:
		return nil // interrupted
	case errors.As(err, &closed) && closed.Normal():
		fmt.Fprintln(c.streams.Err, "l4mctl: "+closed.Error())
		return nil
	}
	return err
}

// printMessage writes one message, each in one write: log lines and
// answers to out, refusals and notes to errOut. It reports an answer (or a
// refusal) to a command.
func printMessage(out, errOut io.Writer, m console.Message) bool {
	switch m.Type {
	case console.TypeLog:
		fmt.Fprintln(out, m.Line)
	case console.TypeOutput:
		// One write: above a prompt each write redraws it.
		text := m.Output
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		io.WriteString(out, text)
		if m.Truncated {
			fmt.Fprintln(errOut, "l4mctl: the output was cut at 64 KiB")
		}
		return true
	case console.TypeError:
		fmt.Fprintln(errOut, "error: "+m.Message)
		return true
	}
	return false
}

// scriptedConsole sends standard input's lines one at a time, each after
// the previous one's answer, printing log lines meanwhile, and returns
// after the last answer. Refused commands make it fail at the end.
func (c *cli) scriptedConsole(ctx context.Context, s *client.ConsoleSession, msgs *messages) error {
	lines := bufio.NewScanner(c.streams.In)
	refused := 0
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if line == "" {
			continue
		}
		if err := s.Send(ctx, line); err != nil {
			return c.ended(ctx, msgs.wait(err))
		}
		for answered := false; !answered; {
			m, ok := <-msgs.msgs
			if !ok {
				return c.ended(ctx, msgs.end)
			}
			answered = printMessage(c.streams.Out, c.streams.Err, m)
			if answered && m.Type == console.TypeError {
				refused++
			}
		}
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("read commands: %w", err)
	}
	if refused > 0 {
		return fmt.Errorf("%d command(s) refused", refused)
	}
	return nil
}

// wait is the session's end when a send failed because it ended.
func (m *messages) wait(sendErr error) error {
	for range m.msgs {
	}
	if m.end != nil {
		return m.end
	}
	return sendErr
}

// interactiveConsole is the prompt: each line entered is sent at once;
// messages are printed above the prompt as they come.
func (c *cli) interactiveConsole(ctx context.Context, s *client.ConsoleSession, msgs *messages, term *terminal, name string) error {
	rl, err := readline.NewEx(&readline.Config{
		Prompt: name + "> ", InterruptPrompt: "^C", EOFPrompt: "",
		Stdin: term.keys, Stdout: c.streams.Out, Stderr: c.streams.Err,
		FuncIsTerminal: term.isTerminal, FuncMakeRaw: term.makeRaw, FuncExitRaw: term.exitRaw,
		FuncGetWidth: term.width, FuncOnWidthChanged: term.onWidthChanged,
	})
	if err != nil {
		return fmt.Errorf("open the terminal: %w", err)
	}
	defer rl.Close()
	printed := make(chan struct{})
	go func() {
		for m := range msgs.msgs {
			printMessage(rl.Stdout(), rl.Stderr(), m)
		}
		close(printed)
		rl.Close() // the session ended: Readline returns
	}()
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue // Ctrl-C clears the line
		}
		if err != nil { // Ctrl-D, or the session ended
			break
		}
		if line = strings.TrimSpace(line); line != "" {
			if s.Send(ctx, line) != nil {
				break
			}
		}
	}
	select {
	case <-printed: // the session ended on its own
		return c.ended(ctx, msgs.end)
	default:
		return nil // the user left
	}
}

// terminal binds readline to the terminal the console reads from and
// writes to. Readline's defaults use the process's file descriptors 0 and
// 1 and a SIGWINCH watcher that never stops; the console's streams are
// the command's (a test's pty, say), and its watcher ends with it.
//
// Readline reads keys in a goroutine and, on Close, closes its input and
// waits for that goroutine. A read blocked on the caller's stdin does not
// end when the file is closed, so keys come from the terminal opened
// again: its own open file, read through Go's poller, which a close
// interrupts. The caller's stdin is left open and in its mode.
type terminal struct {
	in    *os.File      // the command's input, a terminal
	out   *os.File      // the command's output; nil when not a file
	keys  io.ReadCloser // what readline reads keys from
	state *readline.State
	winch chan os.Signal
	done  chan struct{}
}

// openTerminal is the console's terminal, if its input is one.
func openTerminal(in io.Reader, out io.Writer) (*terminal, bool) {
	f, ok := in.(*os.File)
	if !ok {
		return nil, false
	}
	t := &terminal{in: f, done: make(chan struct{})}
	if !t.isTerminal() {
		return nil, false
	}
	if o, ok := out.(*os.File); ok {
		t.out = o
	}
	var keys *os.File
	err := withFd(f, func(fd int) (err error) {
		keys, err = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|unix.O_NOCTTY, 0)
		return err
	})
	if err == nil {
		t.keys = keys
	} else {
		// Without /proc, a goroutine stays blocked on stdin until the
		// next key; the command ends right after the console anyway.
		t.keys = readline.NewCancelableStdin(f)
	}
	return t, true
}

// withFd calls f with file's descriptor without what File.Fd does besides:
// Fd puts the file in blocking mode, so that a close no longer interrupts
// its reads.
func withFd(file *os.File, f func(fd int) error) error {
	conn, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := conn.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (t *terminal) isTerminal() bool {
	return withFd(t.in, func(fd int) error {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	}) == nil
}

func (t *terminal) makeRaw() error {
	return withFd(t.in, func(fd int) error {
		state, err := readline.MakeRaw(fd)
		if err != nil {
			return err
		}
		t.state = state
		return nil
	})
}

func (t *terminal) exitRaw() error {
	if t.state == nil {
		return nil
	}
	err := withFd(t.in, func(fd int) error { return readline.Restore(fd, t.state) })
	t.state = nil
	return err
}

// width is the output terminal's width, else the input's; -1 when
// neither tells.
func (t *terminal) width() int {
	for _, f := range []*os.File{t.out, t.in} {
		if f == nil {
			continue
		}
		w := -1
		if withFd(f, func(fd int) (err error) { w, _, err = readline.GetSize(fd); return err }) == nil {
			return w
		}
	}
	return -1
}

// onWidthChanged calls f on each SIGWINCH until close.
func (t *terminal) onWidthChanged(f func()) {
	if t.winch != nil {
		return
	}
	t.winch = make(chan os.Signal, 1)
	signal.Notify(t.winch, unix.SIGWINCH)
	go func() {
		for {
			select {
			case <-t.winch:
				f()
			case <-t.done:
				return
			}
		}
	}()
}

// close stops the SIGWINCH watcher, closes the keys' file and gives the
// terminal back in the mode it was found in.
func (t *terminal) close() {
	if t.winch != nil {
		signal.Stop(t.winch)
	}
	close(t.done)
	t.keys.Close()
	t.exitRaw()
}
