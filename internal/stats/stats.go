// Package stats holds the statistics canary analysis decides with: the
// Mann–Whitney U test, which compares a canary's samples with the rest of
// the fleet's without assuming they are normally distributed (latencies and
// error ratios are not), and the least-squares slope of a series, which
// says whether memory or errors are creeping up.
//
// Why Mann–Whitney and not a t-test: metric samples are skewed, bounded
// (an error ratio sits at 0 most of the time) and full of ties; a rank test
// only asks whether values from one sample tend to be larger than values
// from the other. Kayenta (Spinnaker's canary judge) uses the same test.
//
// Everything here is pure: no I/O, no clocks, deterministic.
package stats

import (
	"errors"
	"math"
	"sort"
)

// Alternative is the hypothesis a test is one-sided or two-sided about.
type Alternative int

const (
	// TwoSided: the samples differ in location, either way.
	TwoSided Alternative = iota
	// Greater: the first sample tends to be larger than the second.
	Greater
	// Less: the first sample tends to be smaller than the second.
	Less
)

// MaxExact bounds the sample sizes for which MannWhitney computes the exact
// p-value (when there are no ties). R's wilcox.test uses the same bound:
// beyond it the normal approximation is accurate and the exact
// distribution costs n1·n2·min(n1,n2) work.
const MaxExact = 50

// MWResult is the outcome of a Mann–Whitney U test.
type MWResult struct {
	// U is the statistic of the first sample: the number of pairs (x, y)
	// with x > y, ties counting one half. U of the second is N1·N2 − U.
	U      float64
	N1, N2 int
	// P is the p-value for the alternative asked.
	P float64
	// Exact is true when P comes from the exact distribution of U (no
	// ties, both samples at most MaxExact), false for the normal
	// approximation with tie and continuity correction.
	Exact bool
	// Z is the normal deviate of the approximation (0 when Exact).
	Z float64
}

// ErrEmpty is returned when a sample is empty: there is nothing to rank.
var ErrEmpty = errors.New("stats: empty sample")

// MannWhitney tests whether x and y come from the same distribution
// against alt (Greater: x tends to be larger than y).
//
// Ranks of tied values are averaged. Without ties and with both samples of
// at most MaxExact values, the p-value is exact: the share of the
// C(n1+n2, n1) equally likely arrangements whose U is at least as extreme.
// Otherwise it is the normal approximation with the variance corrected for
// ties and a continuity correction of 1/2 (as R's wilcox.test with
// correct=TRUE). When every value is tied the variance is zero: no
// evidence either way, P = 1.
func MannWhitney(x, y []float64, alt Alternative) (MWResult, error) {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return MWResult{}, ErrEmpty
	}
	for _, v := range append(append([]float64(nil), x...), y...) {
		if math.IsNaN(v) {
			return MWResult{}, errors.New("stats: NaN in sample")
		}
	}
	type obs struct {
		v     float64
		first bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	n := n1 + n2
	var rankSum, tieTerm float64
	ties := false
	for i := 0; i < n; {
		j := i
		for j < n && all[j].v == all[i].v {
			j++
		}
		// Positions i..j-1 (ranks i+1..j) share the average rank.
		avg := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			if all[k].first {
				rankSum += avg
			}
		}
		if t := float64(j - i); t > 1 {
			ties = true
			tieTerm += t*t*t - t
		}
		i = j
	}
	f1, f2 := float64(n1), float64(n2)
	u := rankSum - f1*(f1+1)/2
	res := MWResult{U: u, N1: n1, N2: n2}

	if !ties && n1 <= MaxExact && n2 <= MaxExact {
		res.Exact = true
		res.P = exactP(n1, n2, u, alt)
		return res, nil
	}
	mean := f1 * f2 / 2
	fn := float64(n)
	variance := f1 * f2 / 12 * ((fn + 1) - tieTerm/(fn*(fn-1)))
	if variance <= 0 {
		res.P = 1
		return res, nil
	}
	sd := math.Sqrt(variance)
	d := u - mean
	switch alt {
	case Greater:
		res.Z = (d - 0.5) / sd
		res.P = upperNormal(res.Z)
	case Less:
		res.Z = (d + 0.5) / sd
		res.P = 1 - upperNormal(res.Z)
	default:
		res.Z = (math.Abs(d) - 0.5) / sd
		if res.Z < 0 {
			res.Z = 0
		}
		res.P = math.Min(1, 2*upperNormal(res.Z))
	}
	return res, nil
}

// upperNormal is P(Z >= z) for a standard normal Z.
func upperNormal(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// exactP is the exact p-value of U = u for samples of n1 and n2 values
// without ties, from the distribution of U under the null hypothesis.
func exactP(n1, n2 int, u float64, alt Alternative) float64 {
	dist := uDistribution(n1, n2)
	var total float64
	for _, c := range dist {
		total += c
	}
	// Without ties U is a whole number.
	k := int(math.Round(u))
	atLeast := func(k int) float64 { // P(U >= k)
		var s float64
		for i := max(k, 0); i < len(dist); i++ {
			s += dist[i]
		}
		return s / total
	}
	atMost := func(k int) float64 { // P(U <= k)
		var s float64
		for i := 0; i <= k && i < len(dist); i++ {
			s += dist[i]
		}
		return s / total
	}
	switch alt {
	case Greater:
		return atLeast(k)
	case Less:
		return atMost(k)
	}
	// Two-sided: twice the smaller tail, the convention of R's
	// wilcox.test (the distribution is symmetric about n1·n2/2).
	p := 2 * math.Min(atLeast(k), atMost(k))
	return math.Min(1, p)
}

// uDistribution returns the number of arrangements of n1 x's and n2 y's
// with each value of U (index 0..n1·n2), by the recurrence
// c(m, n, u) = c(m−1, n, u−n) + c(m, n−1, u): the largest value is an x
// (which beats all n y's) or a y (which adds nothing to U).
func uDistribution(n1, n2 int) []float64 {
	// prev[n][u] for m-1 x's, cur[n][u] for m x's, n = 0..n2.
	maxU := n1 * n2
	prev := make([][]float64, n2+1)
	for n := range prev {
		prev[n] = make([]float64, maxU+1)
		prev[n][0] = 1 // no x's: U = 0 in exactly one arrangement
	}
	for m := 1; m <= n1; m++ {
		cur := make([][]float64, n2+1)
		for n := 0; n <= n2; n++ {
			cur[n] = make([]float64, maxU+1)
			for u := 0; u <= m*n; u++ {
				var c float64
				if u-n >= 0 {
					c += prev[n][u-n]
				}
				if n > 0 {
					c += cur[n-1][u]
				}
				cur[n][u] = c
			}
		}
		prev = cur
	}
	return prev[n2]
}

// Line is a least-squares line y = Intercept + Slope·x.
type Line struct {
	Slope, Intercept float64
	// N is how many points it was fitted to.
	N int
}

// ErrTooFew is returned when a slope needs more points or more than one
// distinct x.
var ErrTooFew = errors.New("stats: too few points for a slope")

// LeastSquares fits a line to the points (xs[i], ys[i]) by ordinary least
// squares. It needs at least two points with distinct x. Values are
// centered first, so that x given as Unix seconds (around 1.7e9) loses no
// precision when squared.
func LeastSquares(xs, ys []float64) (Line, error) {
	n := len(xs)
	if n != len(ys) {
		return Line{}, errors.New("stats: xs and ys differ in length")
	}
	if n < 2 {
		return Line{}, ErrTooFew
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxy, sxx float64
	for i := range xs {
		dx := xs[i] - mx
		sxy += dx * (ys[i] - my)
		sxx += dx * dx
	}
	if sxx == 0 {
		return Line{}, ErrTooFew
	}
	slope := sxy / sxx
	return Line{Slope: slope, Intercept: my - slope*mx, N: n}, nil
}

// Median returns the median of v (the mean of the middle two for an even
// count); NaN for an empty slice. v is not modified.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
