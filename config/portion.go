package config

import (
	"fmt"
	"strconv"
	"strings"
)

// portion is a batch or failure limit as written: a whole number of hosts,
// or a percentage of the group's hosts.
type portion struct {
	n       int
	percent bool
}

// parsePortion parses "n" or "n%" with n >= 0 and, for percentages,
// n <= 100. Fractions and signs are refused: "1.5" hosts means nothing and
// "-1" is more likely a typo than a request.
func parsePortion(s string) (portion, error) {
	s = strings.TrimSpace(s)
	digits, percent := strings.CutSuffix(s, "%")
	digits = strings.TrimSpace(digits)
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return portion{}, fmt.Errorf("%q is not a whole number of hosts or a percentage like \"25%%\"", s)
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return portion{}, fmt.Errorf("%q is out of range", s)
	}
	if percent && n > 100 {
		return portion{}, fmt.Errorf("%q is more than 100%%", s)
	}
	return portion{n: n, percent: percent}, nil
}

// of returns the portion of hosts hosts: the number itself, or the
// percentage rounded up (batches: "25%" of 7 is 2) or down (failure limits:
// "10%" of 7 is 0, so a percentage never tolerates more failures than it
// says).
func (p portion) of(hosts int, roundUp bool) int {
	if !p.percent {
		return p.n
	}
	if roundUp {
		return (p.n*hosts + 99) / 100
	}
	return p.n * hosts / 100
}

// String returns the portion as written in the file.
func (p portion) String() string {
	if p.percent {
		return strconv.Itoa(p.n) + "%"
	}
	return strconv.Itoa(p.n)
}

// ParsePortion returns how many of n hosts s ("n" or "n%") stands for: the
// number itself, or the percentage of n rounded up when roundUp is set
// (batch sizes) and down otherwise (failure limits). It does not apply a
// minimum: a batch is at least 1, which the caller enforces.
func ParsePortion(s string, n int, roundUp bool) (int, error) {
	p, err := parsePortion(s)
	if err != nil {
		return 0, err
	}
	return p.of(n, roundUp), nil
}
