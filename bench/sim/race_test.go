//go:build race

package main

// raceDetector: this test binary runs with the race detector, whose
// instrumentation makes every frame larger (TestStagingStacks).
const raceDetector = true
