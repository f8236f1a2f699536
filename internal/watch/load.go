package watch

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// Runtime is a loaded configuration: the config, its policy and its
// channels. The daemon loads one at start and another on SIGHUP.
type Runtime struct {
	Config *Config
	// Policy is nil when no policy file is in use.
	Policy Checker
	// PolicyFile is the policy in use, "" for none.
	PolicyFile string
	// PolicyRules is the policy behind Policy, nil for none.
	PolicyRules *policy.Policy
	Sinks       []notify.Sink
}

// Load reads a config file ("" for the defaults), its policy and builds its
// channels. Any error leaves nothing half-applied: the caller keeps its
// previous Runtime.
func Load(path string) (*Runtime, error) {
	cfg := &Config{}
	if path != "" {
		c, err := LoadConfig(path)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	return Build(cfg)
}

// Build loads the policy and the channels of a parsed config.
func Build(cfg *Config) (*Runtime, error) {
	rt := &Runtime{Config: cfg}
	path, explicit := cfg.PolicyPath()
	if path != "" {
		pol, err := policy.Load(path)
		switch {
		case err == nil:
			rt.Policy = PolicyChecker(pol)
			rt.PolicyFile = path
			rt.PolicyRules = pol
		case !explicit && errors.Is(err, os.ErrNotExist):
			// The default policy is optional: without it porteiro only
			// reports changes.
		default:
			return nil, fmt.Errorf("loading policy: %w", err)
		}
	}
	sinks, err := notify.Build(cfg.Channels, cfg.HostName())
	if err != nil {
		return nil, cfg.Locate(err)
	}
	rt.Sinks = sinks
	return rt, nil
}

// PolicyChecker adapts a policy to the daemon's Checker.
func PolicyChecker(p *policy.Policy) Checker { return policyChecker{p} }

// policyChecker is a policy as a Checker. Its verdict on a listener
// depends only on the sockets that share the listener's finding key, which
// lets the daemon judge a batch of kernel events by the listeners it
// touched (see verdicts).
type policyChecker struct{ p *policy.Policy }

func (c policyChecker) Check(snap *inventory.Snapshot) []Finding { return FromReport(c.p.Check(snap)) }

// FromReport converts a policy report's findings.
func FromReport(rep *policy.Report) []Finding {
	if rep == nil {
		return nil
	}
	return slices.Clone(rep.Findings)
}
