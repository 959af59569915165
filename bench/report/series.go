package report

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"
)

// Series is one quantity sampled over time, for WriteSeries.
type Series struct {
	Name   string    // "resident memory"
	Unit   string    // "MiB"
	Values []float64 // one per sample: Values[i] was taken at the x of index i
}

// Time-series chart geometry, in pixels.
const (
	seriesW      = 1000
	seriesLeft   = 80 // room for the y labels
	seriesRight  = 30
	seriesTitleH = 30
	seriesPanelH = 170
	seriesGap    = 40 // between panels: the panel's caption and the x labels
)

// seriesColor colors the panels in turn.
var seriesColor = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff},
	{0xd6, 0x27, 0x28, 0xff},
	{0x2c, 0xa0, 0x2c, 0xff},
	{0x94, 0x67, 0xbd, 0xff},
}

// WriteSeries draws each series in a panel of its own, one above the
// other, against the shared x values xs (in xUnit, ascending), and writes
// the chart as PNG. Each panel's y axis runs from 0 to a round number above
// its series' largest value, so a flat line looks flat and growth is not
// magnified; each panel is captioned with its name, unit and range.
func WriteSeries(w io.Writer, title, xUnit string, xs []float64, series []Series) error {
	if len(xs) == 0 || len(series) == 0 {
		return errors.New("report: a time-series chart needs samples and series")
	}
	for _, s := range series {
		if len(s.Values) != len(xs) {
			return fmt.Errorf("report: series %q has %d values for %d samples", s.Name, len(s.Values), len(xs))
		}
	}
	h := seriesTitleH + len(series)*(seriesPanelH+seriesGap)
	img := image.NewRGBA(image.Rect(0, 0, seriesW, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	black := color.RGBA{0x20, 0x20, 0x20, 0xff}
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	text(img, 8, 18, black, title)

	x0, x1 := xs[0], xs[len(xs)-1]
	if x1 <= x0 {
		x1 = x0 + 1
	}
	plotW := seriesW - seriesLeft - seriesRight
	px := func(x float64) int { return seriesLeft + int(math.Round((x-x0)/(x1-x0)*float64(plotW))) }
	xStep := niceStep((x1 - x0) / 8)

	for i, s := range series {
		top := seriesTitleH + i*(seriesPanelH+seriesGap) + 16 // the caption above
		bottom := top + seriesPanelH - 30                     // the x labels below
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range s.Values {
			lo, hi = min(lo, v), max(hi, v)
		}
		ymax := niceCeil(hi * 1.1)
		py := func(v float64) int { return bottom - int(math.Round(v/ymax*float64(bottom-top))) }
		c := seriesColor[i%len(seriesColor)]
		text(img, seriesLeft, top-4, black, fmt.Sprintf("%s, %s (min %s, max %s)", s.Name, s.Unit, short(lo), short(hi)))

		for k := 0; k <= 4; k++ { // horizontal grid: quarters of the axis
			v := ymax * float64(k) / 4
			fill(img, seriesLeft, py(v), plotW, 1, grey)
			label := strconv.FormatFloat(v, 'f', decimals(ymax/4), 64)
			text(img, seriesLeft-8-7*len(label), py(v)+4, black, label)
		}
		for x := math.Ceil(x0/xStep) * xStep; x <= x1+xStep/1e6; x += xStep {
			fill(img, px(x), top, 1, bottom-top, grey)
			label := strconv.FormatFloat(x, 'f', decimals(xStep), 64)
			text(img, px(x)-7*len(label)/2, bottom+16, black, label)
		}
		xl := xUnit
		text(img, seriesW-seriesRight-7*len(xl), bottom+30, black, xl)

		for k := range s.Values {
			if k > 0 {
				line(img, px(xs[k-1]), py(s.Values[k-1]), px(xs[k]), py(s.Values[k]), c)
			}
			fill(img, px(xs[k])-2, py(s.Values[k])-2, 5, 5, c)
		}
	}
	return png.Encode(w, img)
}

// short formats an axis value to one decimal, without trailing zeros:
// 0, 37.5, 174.4.
func short(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// decimals is how many decimals multiples of step need: 0 for 5, 1 for 2.5,
// 2 for 0.05.
func decimals(step float64) int {
	for d := range 6 {
		if f := step * math.Pow(10, float64(d)); math.Round(f) != 0 && math.Abs(f-math.Round(f)) < 1e-6 {
			return d
		}
	}
	return 6
}

// line draws a two-pixel-thick straight line (Bresenham's).
func line(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := sign(xb-xa), sign(yb-ya)
	e := dx + dy
	for {
		img.SetRGBA(xa, ya, c)
		img.SetRGBA(xa, ya+1, c)
		if xa == xb && ya == yb {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			xa += sx
		}
		if e2 <= dx {
			e += dx
			ya += sy
		}
	}
}

func abs(n int) int { return max(n, -n) }

func sign(n int) int {
	switch {
	case n > 0:
		return 1
	case n < 0:
		return -1
	}
	return 0
}

// niceCeil returns the smallest 1, 2 or 5 times a power of ten that is at
// least v (1 for v ≤ 0), so an axis ends on a round number.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// niceStep is niceCeil for a tick spacing: at least v, and never 0.
func niceStep(v float64) float64 { return niceCeil(max(v, 1e-9)) }
