package main

// drover release build: pack a directory into a release bundle.

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"drover/release"
)

func (a *app) releaseCmd() *cobra.Command {
	c := &cobra.Command{Use: "release", Short: "Build release bundles",
		Example: `  drover release build ./build --version 1.4.2 -o hello-1.4.2.tar.gz`}
	var version, out, service string
	build := &cobra.Command{
		Use:   "build SRC [--version V] -o OUT.tar.gz",
		Short: "Pack a directory into a verified release bundle with a manifest",
		Example: `  drover release build ./build --version 1.4.2 -o hello-1.4.2.tar.gz
  drover release build ./build -o hello.tar.gz   # the version from ./build/VERSION`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{fmt.Errorf("release build takes one source directory, got %d arguments", len(args))}
			}
			if out == "" {
				return &usageError{fmt.Errorf("-o OUT.tar.gz is required")}
			}
			v, err := release.DirVersion(args[0], version)
			if err != nil {
				return err
			}
			rel, err := release.Build(c.Context(), args[0], release.BuildOptions{Service: service, Version: v, Out: out, Now: time.Now()})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "built %s: release %s, %d files, %d bytes, sha256 %s\n", out, rel.ID(), len(rel.Manifest.Files), rel.BundleSize, rel.BundleSHA256)
			return nil
		},
	}
	build.Flags().StringVar(&version, "version", "", "the release version (required unless SRC has a VERSION file)")
	build.Flags().StringVarP(&out, "output", "o", "", "the bundle to write")
	build.Flags().StringVar(&service, "service", "", "the service name recorded in the manifest")
	c.AddCommand(build)
	return c
}
