package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestHistIndexRoundTrip(t *testing.T) {
	prevLow := int64(-1)
	for i := 0; i < histBuckets; i++ {
		low, w := histLow(i)
		if low <= prevLow {
			t.Fatalf("bucket %d: low %d not above the previous %d", i, low, prevLow)
		}
		if got := histIndex(low); got != i {
			t.Fatalf("histIndex(low of %d = %d) = %d", i, low, got)
		}
		if hi := low + w - 1; hi <= histMax && histIndex(hi) != i {
			t.Fatalf("histIndex(high of %d = %d) = %d", i, hi, histIndex(hi))
		}
		if i >= 2*histSub && float64(w)/float64(low) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d: width %d over 1/%d of %d", i, w, histSub, low)
		}
		prevLow = low
	}
	if histIndex(histMax) != histBuckets-1 {
		t.Fatalf("histIndex(histMax) = %d, want %d", histIndex(histMax), histBuckets-1)
	}
}

// TestHistPercentiles compares with the exact percentiles of a sorted
// sample: within the bucket precision (1/128) plus rounding.
func TestHistPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	var h histogram
	vals := make([]int64, 20000)
	for i := range vals {
		// Log-uniform from 100 ns to 10 s, the range latencies take.
		v := int64(math.Exp(math.Log(100) + rng.Float64()*(math.Log(1e10)-math.Log(100))))
		vals[i] = v
		h.Record(time.Duration(v))
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, p := range []float64{0, 1, 50, 90, 99, 99.9, 99.99, 100} {
		rank := int(math.Ceil(p / 100 * float64(len(vals))))
		if rank < 1 {
			rank = 1
		}
		want := float64(vals[rank-1])
		got := float64(h.Percentile(p))
		if math.Abs(got-want)/want > 1.0/histSub+1e-9 {
			t.Errorf("p%g = %v, want %v within 1/%d", p, time.Duration(got), time.Duration(want), histSub)
		}
	}
	if h.Count() != uint64(len(vals)) || h.Max() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("count %d max %v, want %d and %v", h.Count(), h.Max(), len(vals), time.Duration(vals[len(vals)-1]))
	}
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	if mean := sum / float64(len(vals)); math.Abs(float64(h.Mean())-mean) > 1 {
		t.Errorf("mean %v, want %v", h.Mean(), time.Duration(mean))
	}
}

func TestHistEdges(t *testing.T) {
	var h histogram
	if h.Percentile(50) != 0 || h.Summary() != nil || h.Mean() != 0 {
		t.Fatal("an empty histogram must report zeros and no summary")
	}
	h.Record(-5)
	h.Record(time.Duration(math.MaxInt64))
	if h.Percentile(0) != 0 || h.Max() != time.Duration(histMax) {
		t.Fatalf("clamping: p0 %v max %v", h.Percentile(0), h.Max())
	}
	var a, b histogram
	a.Record(time.Millisecond)
	b.Record(2 * time.Millisecond)
	b.Record(3 * time.Millisecond)
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 3*time.Millisecond {
		t.Fatalf("merge: count %d max %v", a.Count(), a.Max())
	}
	s := a.Summary()
	if len(s.Curve) == 0 || s.Curve[0].Percentile != 0 {
		t.Fatalf("curve %v", s.Curve)
	}
	for i := 1; i < len(s.Curve); i++ {
		if s.Curve[i].Percentile <= s.Curve[i-1].Percentile || s.Curve[i].US < s.Curve[i-1].US {
			t.Fatalf("curve not increasing: %v", s.Curve)
		}
	}
}

func TestHistConcurrent(t *testing.T) {
	var h histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(time.Duration(g*1000 + i))
			}
		}()
	}
	wg.Wait()
	if h.Count() != 8000 || h.Max() != 7999 {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
}

func TestHistRecordAllocs(t *testing.T) {
	var h histogram
	d := 1234 * time.Microsecond
	if n := testing.AllocsPerRun(1000, func() { h.Record(d) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkHistRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 997
			h.Record(d % (10 * time.Millisecond))
		}
	})
}
