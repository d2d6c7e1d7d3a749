package config

import (
	"strconv"
	"text/template"

	"drover"
)

// ConvergeFile is the converge block: how long `drover converge` keeps
// deploying to hosts that are not on the release yet.
type ConvergeFile struct {
	MaxAttempts  *int   `yaml:"max_attempts"`
	Wait         string `yaml:"wait"`
	MaxWait      string `yaml:"max_wait"`
	ReplaceAfter *int   `yaml:"replace_after"`
	BootTimeout  string `yaml:"boot_timeout"`
}

// maxConvergeAttempts bounds max_attempts: converge is a loop a person is
// waiting on, not a daemon.
const maxConvergeAttempts = 1000

// checkConverge validates the converge block and the replace hook.
// Without a converge block it returns the zero value, which the runner
// reads as the defaults.
func (f *File) checkConverge(ps *problems) drover.ConvergeSpec {
	if f.Hooks.Replace != "" {
		if _, err := template.New("hooks.replace").Option("missingkey=error").Funcs(templateFuncs).Parse(f.Hooks.Replace); err != nil {
			ps.add(p("hooks", "replace"), "fix the template syntax: actions look like {{.Host.Name}}; see text/template",
				"hooks.replace: template does not parse: %v", err)
		}
	}
	if f.Converge == (ConvergeFile{}) {
		return drover.ConvergeSpec{}
	}
	at := p("converge")
	c := drover.ConvergeSpec{
		MaxAttempts:  drover.DefaultConvergeAttempts,
		ReplaceAfter: drover.DefaultReplaceAfterRounds,
	}
	if f.Converge.MaxAttempts != nil {
		c.MaxAttempts = *f.Converge.MaxAttempts
		if c.MaxAttempts < 1 || c.MaxAttempts > maxConvergeAttempts {
			ps.add(at.with("max_attempts"), "use 1 to "+strconv.Itoa(maxConvergeAttempts)+"; leave it out for "+strconv.Itoa(drover.DefaultConvergeAttempts),
				"converge.max_attempts: %d is out of range", c.MaxAttempts)
			c.MaxAttempts = drover.DefaultConvergeAttempts
		}
	}
	c.Wait = f.nonNegativeDuration(ps, at.with("wait"), f.Converge.Wait, drover.DefaultConvergeWait)
	c.MaxWait = f.nonNegativeDuration(ps, at.with("max_wait"), f.Converge.MaxWait, drover.DefaultConvergeMaxWait)
	if f.Converge.Wait != "" && f.Converge.MaxWait != "" && c.MaxWait < c.Wait {
		ps.add(at.with("max_wait"), "make max_wait at least wait", "converge.max_wait: %v is less than wait %v", c.MaxWait, c.Wait)
	}
	c.MaxWait = max(c.MaxWait, c.Wait)
	c.BootTimeout = f.duration(ps, at.with("boot_timeout"), f.Converge.BootTimeout, drover.DefaultConvergeBootTimeout)
	if f.Converge.ReplaceAfter != nil {
		c.ReplaceAfter = *f.Converge.ReplaceAfter
		if c.ReplaceAfter < 1 {
			ps.add(at.with("replace_after"), "use 1 or more rounds; leave it out for "+strconv.Itoa(drover.DefaultReplaceAfterRounds),
				"converge.replace_after: %d, must be at least 1", c.ReplaceAfter)
			c.ReplaceAfter = drover.DefaultReplaceAfterRounds
		}
	}
	return c
}
