package ui

import "time"

// SetRecheckInterval shortens how often live streams check their session.
func SetRecheckInterval(d time.Duration) { recheckInterval = d }
