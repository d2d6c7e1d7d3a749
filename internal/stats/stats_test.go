package stats

import (
	"errors"
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6f, want %.6f (±%g)", what, got, want, tol)
	}
}

// The example of R's wilcox.test documentation (Hollander & Wolfe 1973,
// 69f.): permeability constants of the chorioamnion at term (x) and at
// 12–26 weeks (y). R reports W = 35, p-value = 0.1272 for alternative
// "greater" (exact); an enumeration of all C(15,10) splits agrees.
func TestMannWhitneyReferenceHollanderWolfe(t *testing.T) {
	x := []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	y := []float64{1.15, 0.88, 0.90, 0.74, 1.21}
	r, err := MannWhitney(x, y, Greater)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exact {
		t.Errorf("no ties and small samples: want the exact p-value")
	}
	near(t, "U", r.U, 35, 0)
	near(t, "p greater", r.P, 0.1272, 0.00005)
	// The other tail and the two-sided p follow from the same
	// distribution: P(U <= 35) = 1 − P(U >= 36), two-sided = 2·min.
	less, _ := MannWhitney(x, y, Less)
	near(t, "U of y", float64(len(x)*len(y))-r.U, 15, 0)
	if less.P < 0.87 || less.P > 0.9 {
		t.Errorf("p less = %.4f, want about 0.88", less.P)
	}
	two, _ := MannWhitney(x, y, TwoSided)
	near(t, "p two-sided", two.P, 2*r.P, 1e-12)
}

// Critical values of U from the standard tables (e.g. Siegel & Castellan,
// Table J; any statistics textbook): for n1 = n2 = 10 the one-tailed 5%
// critical value is 27 and the one-tailed 2.5% one 23 — the largest u with
// P(U <= u) at or below the level.
func TestMannWhitneyCriticalValuesTable(t *testing.T) {
	dist := uDistribution(10, 10)
	var total float64
	for _, c := range dist {
		total += c
	}
	cdf := func(k int) float64 {
		var s float64
		for i := 0; i <= k; i++ {
			s += dist[i]
		}
		return s / total
	}
	near(t, "arrangements", total, 184756, 0) // C(20, 10)
	for _, c := range []struct {
		level float64
		crit  int
	}{{0.05, 27}, {0.025, 23}} {
		if cdf(c.crit) > c.level || cdf(c.crit+1) <= c.level {
			t.Errorf("level %v: P(U<=%d) = %.4f, P(U<=%d) = %.4f; the table's critical value is %d",
				c.level, c.crit, cdf(c.crit), c.crit+1, cdf(c.crit+1), c.crit)
		}
	}
}

// Hand-computed: x = {3, 4}, y = {1, 2}. Both x beat both y: U = 4, and
// of the C(4,2) = 6 equally likely arrangements only this one has U >= 4.
func TestMannWhitneyExactSmallByHand(t *testing.T) {
	r, err := MannWhitney([]float64{3, 4}, []float64{1, 2}, Greater)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "U", r.U, 4, 0)
	near(t, "p", r.P, 1.0/6, 1e-12)
	r, _ = MannWhitney([]float64{3, 4}, []float64{1, 2}, Less)
	near(t, "p less", r.P, 1, 1e-12)
}

// The exact distribution against brute force: enumerate every way to
// choose which of n ranks belong to x and count U directly.
func TestMannWhitneyExactAgainstEnumeration(t *testing.T) {
	n1, n2 := 5, 6
	n := n1 + n2
	counts := make([]float64, n1*n2+1)
	for mask := 0; mask < 1<<n; mask++ {
		if popcount(mask) != n1 {
			continue
		}
		u := 0
		for i := 0; i < n; i++ {
			if mask&(1<<i) == 0 {
				continue
			}
			for j := 0; j < i; j++ { // rank i beats every lower rank of y
				if mask&(1<<j) == 0 {
					u++
				}
			}
		}
		counts[u]++
	}
	got := uDistribution(n1, n2)
	for u := range counts {
		if got[u] != counts[u] {
			t.Fatalf("count of U=%d: got %v, enumeration %v", u, got[u], counts[u])
		}
	}
}

func popcount(x int) int {
	c := 0
	for ; x > 0; x &= x - 1 {
		c++
	}
	return c
}

// Hand-computed normal approximation with ties: x = {1,2,2,3},
// y = {2,3,4,4}. Average ranks: 1→1, 2→3, 3→5.5, 4→7.5, so R_x = 12.5 and
// U = 12.5 − 10 = 2.5. Mean 8; tie groups of 3, 2, 2 give Σ(t³−t) = 36 and
// var = 16/12 · (9 − 36/56) = 11.142857; z = (2.5 − 8 + 0.5)/3.338092 =
// −1.497862; P(less) = Φ(z) = 0.067085 (Python: 0.5*erfc(1.497862/√2)).
func TestMannWhitneyNormalWithTiesByHand(t *testing.T) {
	r, err := MannWhitney([]float64{1, 2, 2, 3}, []float64{2, 3, 4, 4}, Less)
	if err != nil {
		t.Fatal(err)
	}
	if r.Exact {
		t.Fatal("ties: want the normal approximation")
	}
	near(t, "U", r.U, 2.5, 1e-12)
	near(t, "z", r.Z, -1.497862, 1e-6)
	near(t, "p", r.P, 0.067085, 1e-6)
}

// A canary at a 20% error ratio against a fleet at 0 (all tied at zero):
// overwhelmingly significant; the same values on both sides are not.
func TestMannWhitneyCanaryShapes(t *testing.T) {
	base := make([]float64, 60)
	canary := []float64{0.2, 0.21, 0.19, 0.2, 0.2, 0.18, 0.22, 0.2, 0.2, 0.2}
	r, err := MannWhitney(canary, base, Greater)
	if err != nil {
		t.Fatal(err)
	}
	if r.P > 1e-6 {
		t.Errorf("bad canary: p = %g, want tiny", r.P)
	}
	r, _ = MannWhitney(make([]float64, 10), base, Greater)
	if r.P != 1 {
		t.Errorf("everything tied: p = %g, want 1", r.P)
	}
}

func TestMannWhitneyEmpty(t *testing.T) {
	if _, err := MannWhitney(nil, []float64{1}, Greater); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty x: err = %v", err)
	}
	if _, err := MannWhitney([]float64{math.NaN()}, []float64{1}, Greater); err == nil {
		t.Errorf("NaN: no error")
	}
}

func TestLeastSquaresKnownLines(t *testing.T) {
	// An exact line.
	l, err := LeastSquares([]float64{0, 1, 2, 3, 4}, []float64{2, 5, 8, 11, 14})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "slope", l.Slope, 3, 1e-12)
	near(t, "intercept", l.Intercept, 2, 1e-12)

	// By hand: (0,1) (1,3) (2,2) (3,5): mean x 1.5, mean y 2.75,
	// Sxy = 5.5, Sxx = 5, slope 1.1, intercept 2.75 − 1.65 = 1.1.
	l, _ = LeastSquares([]float64{0, 1, 2, 3}, []float64{1, 3, 2, 5})
	near(t, "slope", l.Slope, 1.1, 1e-12)
	near(t, "intercept", l.Intercept, 1.1, 1e-12)

	// Unix timestamps: a memory series growing 1 MiB a minute, sampled
	// every 15s, must give that slope without precision loss.
	var xs, ys []float64
	t0 := 1.7e9
	for i := 0; i < 40; i++ {
		x := t0 + float64(i*15)
		xs = append(xs, x)
		ys = append(ys, 50e6+float64(i*15)*(1<<20)/60)
	}
	l, _ = LeastSquares(xs, ys)
	near(t, "bytes per minute", l.Slope*60, 1<<20, 1e-3)

	// Flat.
	l, _ = LeastSquares([]float64{10, 20, 30}, []float64{7, 7, 7})
	near(t, "flat slope", l.Slope, 0, 0)
}

func TestLeastSquaresTooFew(t *testing.T) {
	if _, err := LeastSquares([]float64{1}, []float64{1}); !errors.Is(err, ErrTooFew) {
		t.Errorf("one point: %v", err)
	}
	if _, err := LeastSquares([]float64{1, 1}, []float64{1, 2}); !errors.Is(err, ErrTooFew) {
		t.Errorf("same x: %v", err)
	}
}

func TestMedian(t *testing.T) {
	near(t, "odd", Median([]float64{3, 1, 2}), 2, 0)
	near(t, "even", Median([]float64{4, 1, 2, 3}), 2.5, 0)
	if !math.IsNaN(Median(nil)) {
		t.Error("empty: want NaN")
	}
}
