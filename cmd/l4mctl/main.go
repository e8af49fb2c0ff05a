// Command l4mctl is the command line of left4me, in kubectl's habits.
package main

import (
	"os"

	"github.com/left4me/left4me/cmd/l4mctl/app"
)

func main() { os.Exit(app.Execute()) }
