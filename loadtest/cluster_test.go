package main

import (
	"context"
	"io"
	"testing"
)

func TestClusterUsage(t *testing.T) {
	for _, args := range [][]string{
		{"cluster", "--conns", "2"},
		{"cluster", "--size", "8"},
		{"cluster", "--rounds", "0"},
		{"cluster", "extra"},
	} {
		if code := realMain(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestMedianPhase(t *testing.T) {
	rs := []*phaseResult{
		{DeliveriesPerS: 3, LocalP50us: 10, WrittenOff: 1},
		{DeliveriesPerS: 1, LocalP50us: 30, WrittenOff: 0},
		{DeliveriesPerS: 2, LocalP50us: 20, WrittenOff: 2},
	}
	m := medianPhase(rs)
	if m.DeliveriesPerS != 2 || m.LocalP50us != 20 || m.WrittenOff != 3 {
		t.Fatalf("%+v", m)
	}
}
