// Command rctl is the rctl control plane: the server (rctl serve), the
// scripting CLI and the live terminal view, in one binary.
package main

import (
	"os"

	"github.com/rctl-dev/rctl/cli"
)

func main() {
	os.Exit(cli.Execute())
}
