package cli

import (
	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
)

func init() {
	register(900, func(env *Env) *cobra.Command { return cmdkit.VersionCommand(env, "porteiro") })
}
