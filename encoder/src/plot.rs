//! Rate–distortion charts as PNG, drawn here: axes with round ticks, one polyline with markers
//! per series, a legend. Text uses a built-in 5×7 pixel font (capitals, digits, punctuation), so
//! no font files are needed on the machine.

/// One measured point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal value (e.g. bytes per Gaussian per frame).
    pub x: f64,
    /// Vertical value (e.g. PSNR in dB).
    pub y: f64,
}

/// A named curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, drawn in order of x.
    pub points: Vec<Point>,
}

/// Why a chart cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing finite to draw.
    #[error("no finite points to plot")]
    Empty,
    /// PNG encoding failed.
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
}

const WIDTH: usize = 900;
const HEIGHT: usize = 600;
const LEFT: usize = 90;
const RIGHT: usize = 30;
const TOP: usize = 30;
const BOTTOM: usize = 70;
const SCALE: usize = 2;
const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];

/// 5×7 glyphs, one row per string, `#` set.
fn glyph(c: char) -> [&'static str; 7] {
    match c.to_ascii_uppercase() {
        '0' => [
            " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ",
        ],
        '1' => [
            "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        '2' => [
            " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####",
        ],
        '3' => [
            "#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### ",
        ],
        '4' => [
            "   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # ",
        ],
        '5' => [
            "#####", "#    ", "#### ", "    #", "    #", "#   #", " ### ",
        ],
        '6' => [
            "  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### ",
        ],
        '7' => [
            "#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   ",
        ],
        '8' => [
            " ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### ",
        ],
        '9' => [
            " ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  ",
        ],
        'A' => [
            " ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #",
        ],
        'B' => [
            "#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### ",
        ],
        'C' => [
            " ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### ",
        ],
        'D' => [
            "#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### ",
        ],
        'E' => [
            "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####",
        ],
        'F' => [
            "#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    ",
        ],
        'G' => [
            " ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####",
        ],
        'H' => [
            "#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #",
        ],
        'I' => [
            " ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        'J' => [
            "  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  ",
        ],
        'K' => [
            "#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #",
        ],
        'L' => [
            "#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####",
        ],
        'M' => [
            "#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #",
        ],
        'N' => [
            "#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #",
        ],
        'O' => [
            " ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ",
        ],
        'P' => [
            "#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    ",
        ],
        'Q' => [
            " ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #",
        ],
        'R' => [
            "#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #",
        ],
        'S' => [
            " ####", "#    ", "#    ", " ### ", "    #", "    #", "#### ",
        ],
        'T' => [
            "#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ",
        ],
        'U' => [
            "#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### ",
        ],
        'V' => [
            "#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  ",
        ],
        'W' => [
            "#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # ",
        ],
        'X' => [
            "#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #",
        ],
        'Y' => [
            "#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  ",
        ],
        'Z' => [
            "#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####",
        ],
        '.' => [
            "     ", "     ", "     ", "     ", "     ", " ##  ", " ##  ",
        ],
        ',' => [
            "     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   ",
        ],
        '-' => [
            "     ", "     ", "     ", "#####", "     ", "     ", "     ",
        ],
        '+' => [
            "     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     ",
        ],
        '_' => [
            "     ", "     ", "     ", "     ", "     ", "     ", "#####",
        ],
        '/' => [
            "     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     ",
        ],
        '(' => [
            "   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # ",
        ],
        ')' => [
            " #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   ",
        ],
        ':' => [
            "     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     ",
        ],
        '=' => [
            "     ", "     ", "#####", "     ", "#####", "     ", "     ",
        ],
        '%' => [
            "##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##",
        ],
        ' ' => ["     "; 7],
        _ => [
            "#####", "#   #", "#   #", "#   #", "#   #", "#   #", "#####",
        ],
    }
}

struct Canvas {
    rgb: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            rgb: vec![255; WIDTH * HEIGHT * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) {
            let at = (y as usize * WIDTH + x as usize) * 3;
            self.rgb[at..at + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    /// A line `width` pixels thick.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), width: i64, c: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = (
                (x0 + (x1 - x0) * t).round() as i64,
                (y0 + (y1 - y0) * t).round() as i64,
            );
            self.rect(
                x - width / 2,
                y - width / 2,
                x + (width - 1) / 2,
                y + (width - 1) / 2,
                c,
            );
        }
    }

    /// Text with its top-left at (x, y); `vertical` runs it bottom to top from (x, y).
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], vertical: bool) {
        let k = SCALE as i64;
        for (i, ch) in s.chars().enumerate() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for (col, b) in bits.bytes().enumerate() {
                    if b != b'#' {
                        continue;
                    }
                    let (u, v) = ((i as i64 * 6 + col as i64) * k, row as i64 * k);
                    let (px, py) = if vertical {
                        (x + v, y - u)
                    } else {
                        (x + u, y + v)
                    };
                    self.rect(px, py, px + k - 1, py + k - 1, c);
                }
            }
        }
    }
}

/// Width in pixels of `s` in the built-in font.
fn text_width(s: &str) -> i64 {
    (s.chars().count() as i64 * 6 - 1) * SCALE as i64
}

/// Round tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about six of them.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    (first..)
        .map(|i| i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .take(20)
        .collect()
}

fn label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Draws the series as an RD chart and returns the PNG bytes.
pub fn rd_plot(series: &[Series], x_label: &str, y_label: &str) -> Result<Vec<u8>, PlotError> {
    let points: Vec<Point> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    if points.is_empty() {
        return Err(PlotError::Empty);
    }
    let fold = |f: fn(&Point) -> f64| {
        points
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    };
    let pad = |(lo, hi): (f64, f64)| {
        let m = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-3);
        (lo - m, hi + m)
    };
    let (x0, x1) = pad(fold(|p| p.x));
    let (x0, x1) = (x0.max(0.0), x1);
    let (y0, y1) = pad(fold(|p| p.y));
    let (pw, ph) = (
        (WIDTH - LEFT - RIGHT) as f64,
        (HEIGHT - TOP - BOTTOM) as f64,
    );
    let to_px = |p: Point| {
        (
            LEFT as f64 + (p.x - x0) / (x1 - x0) * pw,
            TOP as f64 + (1.0 - (p.y - y0) / (y1 - y0)) * ph,
        )
    };
    let mut canvas = Canvas::new();
    let (grid, ink) = ([225, 225, 225], [40, 40, 40]);
    let xt = ticks(x0, x1);
    let yt = ticks(y0, y1);
    let step = |t: &[f64]| if t.len() > 1 { t[1] - t[0] } else { 1.0 };
    for &t in &xt {
        let (px, _) = to_px(Point { x: t, y: y0 });
        canvas.line((px, TOP as f64), (px, (HEIGHT - BOTTOM) as f64), 1, grid);
        let s = label(t, step(&xt));
        canvas.text(
            px as i64 - text_width(&s) / 2,
            (HEIGHT - BOTTOM + 8) as i64,
            &s,
            ink,
            false,
        );
    }
    for &t in &yt {
        let (_, py) = to_px(Point { x: x0, y: t });
        canvas.line((LEFT as f64, py), ((WIDTH - RIGHT) as f64, py), 1, grid);
        let s = label(t, step(&yt));
        canvas.text(
            LEFT as i64 - 8 - text_width(&s),
            py as i64 - 7,
            &s,
            ink,
            false,
        );
    }
    let (l, r, t, b) = (
        LEFT as f64,
        (WIDTH - RIGHT) as f64,
        TOP as f64,
        (HEIGHT - BOTTOM) as f64,
    );
    for (p, q) in [
        ((l, b), (r, b)),
        ((l, t), (l, b)),
        ((l, t), (r, t)),
        ((r, t), (r, b)),
    ] {
        canvas.line(p, q, 2, ink);
    }
    canvas.text(
        (LEFT as i64 + WIDTH as i64 - RIGHT as i64) / 2 - text_width(x_label) / 2,
        (HEIGHT - 30) as i64,
        x_label,
        ink,
        false,
    );
    canvas.text(
        12,
        (TOP as i64 + (HEIGHT - BOTTOM) as i64) / 2 + text_width(y_label) / 2,
        y_label,
        ink,
        true,
    );
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<Point> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
            .collect();
        pts.sort_by(|a, b| a.x.total_cmp(&b.x));
        for w in pts.windows(2) {
            canvas.line(to_px(w[0]), to_px(w[1]), 3, color);
        }
        for p in &pts {
            let (x, y) = to_px(*p);
            canvas.rect(
                x as i64 - 4,
                y as i64 - 4,
                x as i64 + 4,
                y as i64 + 4,
                color,
            );
        }
        let ly = TOP as i64 + 14 + 22 * i as i64;
        let lx = LEFT as i64 + 16;
        canvas.rect(lx, ly + 3, lx + 18, ly + 9, color);
        canvas.text(lx + 26, ly, &s.name, ink, false);
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH as u32, HEIGHT as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&canvas.rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        assert!(
            t.iter()
                .enumerate()
                .all(|(i, v)| (v - 0.2 * i as f64).abs() < 1e-12)
        );
        assert_eq!(ticks(31.3, 47.9), vec![35.0, 40.0, 45.0]);
        assert_eq!(label(0.4, 0.2), "0.4");
        assert_eq!(label(40.0, 5.0), "40");
    }

    #[test]
    fn chart_draws_each_series_in_its_colour() {
        let series = vec![
            Series {
                name: "wave_gop30".into(),
                points: vec![Point { x: 0.4, y: 35.0 }, Point { x: 0.9, y: 41.0 }],
            },
            Series {
                name: "donut".into(),
                points: vec![Point { x: 2.0, y: 44.0 }],
            },
        ];
        let png = rd_plot(&series, "bytes / Gaussian / frame", "PSNR (dB)").unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let count = |c: [u8; 3]| buf.chunks(3).filter(|p| *p == c).count();
        assert!(count(PALETTE[0]) > 200 && count(PALETTE[1]) > 50);
        assert!(rd_plot(&[], "x", "y").is_err());
    }
}
