package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Colors, one per broker.
var brokerColor = map[string]color.RGBA{
	"junction":  {0x1f, 0x77, 0xb4, 0xff},
	"rabbitmq":  {0xff, 0x7f, 0x0e, 0xff},
	"mosquitto": {0x2c, 0xa0, 0x2c, 0xff},
}

// Chart geometry, in pixels.
const (
	chartW   = 1100
	nameW    = 190 // the scenario's name column
	panelW   = (chartW - nameW - 30) / 2
	barH     = 14
	barGap   = 3
	rowPad   = 14
	headerH  = 50
	labelW   = 150 // room right of a bar for its value
	fontAsc  = 10  // basicfont.Face7x13 ascent
	panelPad = 10
)

// WriteChart draws one row per scenario with two panels, msg/s and p99
// latency (for an idle-connection scenario: KiB per connection and seconds
// to connect, both lower-is-better, as its row's caption and labels say),
// each with one bar per broker scaled to that scenario's largest value,
// and writes it as PNG. Scenarios differ by orders of magnitude, so bars
// compare brokers within a row, not rows with each other.
func WriteChart(w io.Writer, rep *Report) error {
	h := headerH
	for _, s := range rep.Scenarios {
		h += rowHeight(s)
	}
	img := image.NewRGBA(image.Rect(0, 0, chartW, h+10))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	black := color.RGBA{0x20, 0x20, 0x20, 0xff}
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}

	text(img, 8, 16, black, rep.Title)
	x1, x2 := nameW, nameW+panelW+30
	text(img, x1, 36, black, "messages (deliveries) per second, higher is better")
	text(img, x2, 36, black, "p99 latency in ms, lower is better")
	lx := chartW - 260
	for i, b := range []string{"junction", "rabbitmq", "mosquitto"} {
		fill(img, lx+i*85, 8, 10, 10, brokerColor[b])
		text(img, lx+i*85+14, 17, black, b)
	}

	y := headerH
	for _, s := range rep.Scenarios {
		rh := rowHeight(s)
		fill(img, 0, y, chartW, 1, grey)
		text(img, 8, y+rowPad+fontAsc, black, s.Name)
		left, right := panels(s)
		if s.Idle() {
			text(img, 8, y+rowPad+fontAsc+barH+barGap, black, "KiB/conn; s to connect")
			text(img, 8, y+rowPad+fontAsc+2*(barH+barGap), black, "(lower is better)")
		}
		var maxL, maxR float64
		for _, r := range s.Rows {
			if r.Usable > 0 {
				maxL, maxR = max(maxL, left.value(r)), max(maxR, right.value(r))
			}
		}
		by := y + rowPad
		for _, r := range s.Rows {
			c := brokerColor[r.Broker]
			if r.Usable == 0 {
				text(img, x1, by+fontAsc, black, r.Broker+": failed")
				text(img, x2, by+fontAsc, black, r.Broker+": failed")
				by += barH + barGap
				continue
			}
			bar(img, x1, by, left.value(r), maxL, c, black, left.label(r))
			bar(img, x2, by, right.value(r), maxR, c, black, right.label(r))
			by += barH + barGap
		}
		y += rh
	}
	return png.Encode(w, img)
}

// panel is what one of a row's two panels shows.
type panel struct {
	value func(Row) float64
	label func(Row) string
}

func panels(s Scenario) (left, right panel) {
	if s.Idle() {
		return panel{func(r Row) float64 { return max(r.Med.BytesPerConn, 0) },
				func(r Row) string { return kib(r.Med.BytesPerConn) + " KiB/conn" }},
			panel{func(r Row) float64 { return r.Med.ConnectSeconds },
				func(r Row) string { return num(r.Med.ConnectSeconds) + " s to connect" }}
	}
	return panel{func(r Row) float64 { return r.Med.MsgPerSec },
			func(r Row) string { return commas(int64(r.Med.MsgPerSec + 0.5)) }},
		panel{func(r Row) float64 { return r.Med.P99 },
			func(r Row) string { return fmt.Sprintf("%.2f ms", r.Med.P99) }}
}

// rowHeight leaves room for the caption lines under an idle row's name.
func rowHeight(s Scenario) int {
	if s.Idle() {
		return 2*rowPad + max(len(s.Rows), 3)*(barH+barGap)
	}
	return 2*rowPad + len(s.Rows)*(barH+barGap)
}

func bar(img *image.RGBA, x, y int, v, vmax float64, c, ink color.RGBA, label string) {
	n := 0
	if vmax > 0 {
		n = int(v / vmax * float64(panelW-labelW))
	}
	fill(img, x, y, max(n, 1), barH, c)
	text(img, x+max(n, 1)+6, y+fontAsc+1, ink, label)
}

func fill(img *image.RGBA, x, y, w, h int, c color.Color) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), image.NewUniform(c), image.Point{}, draw.Src)
}

func text(img *image.RGBA, x, y int, c color.Color, s string) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
