//go:build !linux

package haproxyfleet

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
