package main

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// canvas is a minimal drawing surface for the charts: rectangles, lines,
// dots and text in basicfont's 7×13 face, saved as PNG.
type canvas struct{ img *image.RGBA }

var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{30, 30, 30, 255}
	grey      = color.RGBA{150, 150, 150, 255}
	lightGrey = color.RGBA{225, 225, 225, 255}
	// One colour per system, the same in every chart.
	sysColor = map[string]color.RGBA{sysRCTL: {31, 119, 180, 255}, sysEtcd: {255, 127, 14, 255}, sysRCTLBase: {44, 160, 44, 255}}
)

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	draw.Draw(c.img, c.img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	return c
}

// rect fills [x0,x1)×[y0,y1).
func (c *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), &image.Uniform{col}, image.Point{}, draw.Src)
}

// line draws a 1-pixel line (Bresenham); dash > 0 leaves gaps of dash
// pixels every dash pixels.
func (c *canvas) line(x0, y0, x1, y1 int, col color.Color, dash int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for n := 0; ; n++ {
		if dash == 0 || (n/dash)%2 == 0 {
			c.img.Set(x0, y0, col)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

// dot fills a disc of radius r.
func (c *canvas) dot(x, y, r int, col color.Color) {
	for i := -r; i <= r; i++ {
		for j := -r; j <= r; j++ {
			if i*i+j*j <= r*r {
				c.img.Set(x+i, y+j, col)
			}
		}
	}
}

// text draws s with its baseline at y; align is 0 left, 1 centre, 2 right
// of x.
func (c *canvas) text(x, y int, s string, col color.Color, align int) {
	d := font.Drawer{Dst: c.img, Src: &image.Uniform{col}, Face: basicfont.Face7x13}
	w := d.MeasureString(s).Round()
	x -= w * align / 2
	d.Dot = fixed.P(x, y)
	d.DrawString(s)
}

func (c *canvas) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// niceStep returns a round step (1, 2 or 5 × 10^k) that splits [0, max]
// into about n intervals.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}
