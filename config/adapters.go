package config

import (
	"drover"
	"drover/notify"
	"drover/store/etcd"
	sshtransport "drover/transport/ssh"
)

// Adapters are the settings of the adapters a drover.yaml names, in those
// adapters' own option types: the domain Spec knows nothing of SSH
// options, etcd connections, log files or webhooks. They are the same for
// every environment of a file.
type Adapters struct {
	// SSH is transport/ssh's, for transport: ssh.
	SSH sshtransport.Config
	// Etcd is the etcd store's connection; zero unless Spec.Store is
	// drover.StoreEtcd.
	Etcd etcd.Options
	// Log is the structured event log.
	Log notify.LogConfig
	// Webhooks are told about deploys starting, finishing, halting and
	// rolling back.
	Webhooks []notify.Webhook
}

// Config is drover.yaml loaded for one environment: the spec and the
// adapters' settings, which cmd/drover wires.
type Config struct {
	*drover.Spec
	Adapters
}

// LoadConfig is Load with the adapters' settings.
func LoadConfig(path, env string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data, env)
}

// ParseConfig is Parse with the adapters' settings.
func ParseConfig(filename string, data []byte, env string) (*Config, error) {
	f, err := decodeWithInventory(filename, data)
	if err != nil {
		return nil, err
	}
	return f.Config(env)
}

// Config validates the file and returns it for environment env ("" for
// none), as Spec does, with the adapters' settings.
func (f *File) Config(env string) (*Config, error) {
	s, err := f.Spec(env)
	if err != nil {
		return nil, err
	}
	return &Config{Spec: s, Adapters: f.adapters}, nil
}
