// Command drover rolls releases of a service across a fleet: canary first,
// then batches, each host out of rotation, switched atomically, checked and
// put back; and when the new release misbehaves, every host goes back to
// exactly the release and config it had before.
//
// main only handles signals; the commands live in run, which tests call
// in-process with their own arguments and writers.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		// First signal: halt safely — steps in flight finish, then every
		// host this deploy switched rolls back.
		// On a terminal the live view shows this inside its area, with
		// the steps still running (interrupt.go).
		if !interrupts.show(sig) {
			fmt.Fprintf(os.Stderr, "\ndrover: %v: %s (signal again: %s)\n", sig, interruptWords, signalAgainWords)
		}
		cancel(errors.New(sig.String()))
		<-sigs
		fmt.Fprintln(os.Stderr, "drover: stopped at once; run `drover resume` to finish the rollback from the journal")
		os.Exit(3)
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	cancel(nil)
	os.Exit(code)
}
