package notify

import (
	"time"

	"drover"
)

// The settings config fills from drover.yaml's log: and webhooks: keys.

// LogConfig is the structured event log: every Event as one line.
type LogConfig struct {
	// File is the path to append to; "-" is standard output; "" is none.
	File string
	// Format is "json" (the default) or "text".
	Format string
}

// Webhook is an HTTP endpoint told about deploy events with a JSON POST.
type Webhook struct {
	URL string
	// Events are the webhook event names to send (Events); empty
	// means all of them.
	Events []string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Headers are sent with every request (e.g. Authorization). Values
	// may hold secrets: they are never logged.
	Headers map[string]string
	// Secret, when set, signs every body: X-Hub-Signature-256 is
	// "sha256=" and the hex HMAC-SHA256 of the body under it (GitHub's
	// scheme). It may name environment variables (${VAR}) and is never
	// logged.
	Secret string
}

// Events maps the webhook event names (Webhook.Events) to the Event kinds
// they stand for.
var Events = map[string]string{
	"start":    drover.EventDeployStart,
	"finish":   drover.EventVerdict,
	"halt":     drover.EventHalt,
	"rollback": drover.EventRollback,
}

// DefaultTimeout bounds one webhook delivery attempt.
const DefaultTimeout = 5 * time.Second
