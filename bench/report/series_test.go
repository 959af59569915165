package report

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 1}, {-3, 1}, {0.7, 1}, {1, 1}, {1.01, 2}, {2, 2}, {3, 5}, {7, 10}, {10, 10}, {11, 20}, {190, 200}, {201, 500},
	} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDecimals(t *testing.T) {
	for _, tc := range []struct {
		step float64
		want int
	}{{5, 0}, {100, 0}, {2.5, 1}, {0.5, 1}, {12.5, 1}, {0.05, 2}, {0.25, 2}, {1e-9, 6}} {
		if got := decimals(tc.step); got != tc.want {
			t.Errorf("decimals(%v) = %d, want %d", tc.step, got, tc.want)
		}
	}
}

func TestWriteSeries(t *testing.T) {
	xs := []float64{0, 0.5, 1, 1.5, 2}
	series := []Series{
		{Name: "resident memory", Unit: "MiB", Values: []float64{24, 170, 171, 170, 172}},
		{Name: "goroutines", Unit: "count", Values: []float64{21, 21, 23, 21, 21}},
		{Name: "open files", Unit: "count", Values: []float64{0, 0, 0, 0, 0}}, // all zero: still an axis
	}
	var buf bytes.Buffer
	if err := WriteSeries(&buf, "soak", "minutes", xs, series); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() != seriesW || b.Dy() != seriesTitleH+3*(seriesPanelH+seriesGap) {
		t.Fatalf("chart is %v, want %d wide with three panels", b, seriesW)
	}
	// The first panel's line is drawn in its colour: the last sample's dot
	// sits at the right edge of the plot.
	top := seriesTitleH + 16
	bottom := top + seriesPanelH - 30
	y := bottom - int(172/niceCeil(172*1.1)*float64(bottom-top)+0.5)
	if !hasColor(img, seriesW-seriesRight, y, seriesColor[0]) {
		t.Errorf("no dot of the first series at (%d, %d)", seriesW-seriesRight, y)
	}

	for _, tc := range []struct {
		name   string
		xs     []float64
		series []Series
	}{
		{"no samples", nil, series},
		{"no series", xs, nil},
		{"short series", xs, []Series{{Name: "x", Values: []float64{1}}}},
	} {
		if err := WriteSeries(&bytes.Buffer{}, "t", "minutes", tc.xs, tc.series); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// hasColor reports whether c is within a pixel of (x, y).
func hasColor(img image.Image, x, y int, c interface{ RGBA() (r, g, b, a uint32) }) bool {
	r0, g0, b0, _ := c.RGBA()
	for dx := -1; dx <= 1; dx++ {
		for dy := -1; dy <= 1; dy++ {
			r, g, b, _ := img.At(x+dx, y+dy).RGBA()
			if r == r0 && g == g0 && b == b0 {
				return true
			}
		}
	}
	return false
}
