package steamcmd

import "strings"

// Reasons are the CamelCase causes an *Error names; the agent puts them in
// the Node's status.installations[].reason.
const (
	// SteamcmdMissing: no steamcmd at the configured path, or it cannot be
	// run (the shell's 127, systemd's 203 EXIT_EXEC).
	SteamcmdMissing = "SteamcmdMissing"
	// SteamcmdNotWritable: steamcmd's directory is not its account's, so
	// it could not update itself; the message names the chown to run.
	SteamcmdNotWritable = "SteamcmdNotWritable"
	// SteamcmdAccountFailed: the account steamcmd runs as could not be
	// found or made.
	SteamcmdAccountFailed = "SteamcmdAccountFailed"
	// LoginFailed: Steam refused the anonymous login (exit 5).
	LoginFailed = "LoginFailed"
	// DownloadFailed: app_update failed for another reason (exit 8, Steam's
	// "Invalid platform", ...).
	DownloadFailed = "DownloadFailed"
	// InsufficientDisk: too little free space before starting, or
	// steamcmd's state 0x202 / "Not enough disk space".
	InsufficientDisk = "InsufficientDisk"
	// SteamcmdTimedOut: the run outlasted its timeout and was killed.
	SteamcmdTimedOut = "SteamcmdTimedOut"
	// SteamcmdCrashed: a signal ended steamcmd (a segfault: 139).
	SteamcmdCrashed = "SteamcmdCrashed"
	// IncompleteDownload: steamcmd stopped short (state 0x402) or what it
	// left does not check out (manifest incomplete, srcds_run missing, a
	// symlink where a file belongs).
	IncompleteDownload = "IncompleteDownload"
	// CheckFailed: app_info_print gave no build for the branch.
	CheckFailed = "CheckFailed"
)

// Error is a failed steamcmd step. It implements the agent's Failure
// (FailureReason), so the Node's status names the cause in one word and
// says the rest in Message: what happened, steamcmd's last lines and the
// log file holding all of them.
type Error struct {
	// Reason is one of the constants above.
	Reason string
	// Op is the step: "account", "check" or "install".
	Op string
	// Message says what went wrong, for people.
	Message string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("steamcmd ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Err != nil {
		if e.Message != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// FailureReason is Reason.
func (e *Error) FailureReason() string { return e.Reason }
