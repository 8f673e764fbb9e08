package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// A histogram records durations in a log-linear layout, as HDR histograms
// do: values below 2·histSub nanoseconds get a bucket each, and every
// power-of-two range above is cut into histSub equal buckets, so a recorded
// value is known to within 1/histSub (0.8 %) of itself whatever its
// magnitude. Values above histMax are recorded as histMax.
//
// Record is safe for concurrent use (one atomic add per value, no
// allocation); the readers (Count, Percentile, ...) may run concurrently
// with Record and see a slightly stale but consistent-enough view.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // ns; overflows only past 584 years of latency in total
	max    atomic.Int64  // ns
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	histMaxBits = 40               // 2^40 ns ≈ 18 min
	histMax     = int64(1)<<histMaxBits - 1
	// histBuckets: the exact range [0, 2·histSub) plus histSub buckets for
	// each shift 1 .. histMaxBits-histSubBits-1.
	histBuckets = (histMaxBits - histSubBits + 1) * histSub
)

// histIndex returns the bucket of v (0 ≤ v ≤ histMax).
func histIndex(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histLow returns the smallest value of bucket i and the bucket's width.
func histLow(i int) (low, width int64) {
	if i < 2*histSub {
		return int64(i), 1
	}
	shift := i/histSub - 1
	m := int64(i%histSub + histSub)
	return m << shift, int64(1) << shift
}

// Record adds one value. Negative durations count as 0.
func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	} else if v > histMax {
		v = histMax
	}
	h.counts[histIndex(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Merge adds every value of o to h.
func (h *histogram) Merge(o *histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n != 0 {
			h.counts[i].Add(n)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	for {
		m, v := h.max.Load(), o.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of values recorded.
func (h *histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest value recorded (exact), or 0.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the values recorded, or 0.
func (h *histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the value below or at which p percent (0..100) of the
// recorded values lie: the middle of the bucket holding the value of rank
// ceil(p/100·count), capped by the exact maximum. It returns 0 when nothing
// was recorded.
func (h *histogram) Percentile(p float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	p = math.Max(0, math.Min(100, p))
	rank := uint64(math.Ceil(p / 100 * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			low, w := histLow(i)
			v := low + (w-1)/2
			if m := h.max.Load(); v > m {
				v = m
			}
			return time.Duration(v)
		}
	}
	return h.Max()
}

// latencySummary is the JSON form of a histogram: the usual percentiles in
// microseconds and an HDR-style percentile curve for plotting.
type latencySummary struct {
	Count  uint64       `json:"count"`
	MeanUS float64      `json:"mean_us"`
	P50US  float64      `json:"p50_us"`
	P90US  float64      `json:"p90_us"`
	P99US  float64      `json:"p99_us"`
	P999US float64      `json:"p999_us"`
	MaxUS  float64      `json:"max_us"`
	Curve  []curvePoint `json:"curve,omitempty"`
}

// curvePoint is one point of a percentile curve.
type curvePoint struct {
	Percentile float64 `json:"percentile"`
	US         float64 `json:"us"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Summary returns the summary of h, nil when nothing was recorded.
func (h *histogram) Summary() *latencySummary {
	if h.Count() == 0 {
		return nil
	}
	return &latencySummary{
		Count:  h.Count(),
		MeanUS: us(h.Mean()),
		P50US:  us(h.Percentile(50)),
		P90US:  us(h.Percentile(90)),
		P99US:  us(h.Percentile(99)),
		P999US: us(h.Percentile(99.9)),
		MaxUS:  us(h.Max()),
		Curve:  h.curve(),
	}
}

// curve returns the percentile curve at the points HDR plots use: the
// percentiles 100·(1 − 10^(−k/10)) for k = 0, 1, … while the tail still
// holds a value (at most 99.9999 %), then the maximum.
func (h *histogram) curve() []curvePoint {
	n := float64(h.Count())
	var pts []curvePoint
	for k := 0; k <= 60; k++ {
		p := 100 * (1 - math.Pow(10, -float64(k)/10))
		if k > 0 && (100-p)/100*n < 1 {
			break
		}
		pts = append(pts, curvePoint{Percentile: p, US: us(h.Percentile(p))})
	}
	last := 100 * (1 - 1/math.Max(n, 10))
	if len(pts) == 0 || last > pts[len(pts)-1].Percentile {
		pts = append(pts, curvePoint{Percentile: last, US: us(h.Max())})
	}
	return pts
}
