package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/chzyer/readline"
	"github.com/spf13/cobra"

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
			if f, ok := c.streams.In.(*os.File); ok && readline.IsTerminal(int(f.Fd())) {
				return c.interactiveConsole(ctx, s, msgs, f, args[0])
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
func (c *cli) interactiveConsole(ctx context.Context, s *client.ConsoleSession, msgs *messages, in *os.File, name string) error {
	rl, err := readline.NewEx(&readline.Config{
		Prompt: name + "> ", InterruptPrompt: "^C", EOFPrompt: "",
		Stdin: in, Stdout: c.streams.Out, Stderr: c.streams.Err,
	})
	if err != nil {
		return err
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
