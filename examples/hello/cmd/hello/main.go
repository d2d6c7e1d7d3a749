// Command hello is the sample service as a binary of its own, for people
// who want to run it without drover. drover itself ships the same code as
// `drover sample-service`.
//
// A leading "sample-service" argument is accepted and ignored, so this
// binary installed under the name `drover` can stand in for drover behind
// the release scripts (bin/hello runs `drover sample-service "$@"`); the
// package's tests use that to run the scripts without building drover.
package main

import (
	"context"
	"os"

	"drover/examples/hello"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "sample-service" {
		args = args[1:]
	}
	os.Exit(hello.Main(context.Background(), args, os.Stdout, os.Stderr))
}
