// SPDX-License-Identifier: GPL-2.0-only
//! Flame graphs of allocations, drawn here as plain SVG (like [`crate::plot`]): pure, collapsed
//! stacks in, the SVG text out.
//!
//! The layout is flamegraph.pl's: the root at the bottom, each frame as wide as the bytes of the
//! stacks through it, children side by side in name order above their parent. What a memory
//! graph adds: each frame's wasted part (allocated − requested) is drawn over its right end
//! (`class="frame wasted"`), so internal fragmentation shows where it is made. The differential
//! graph ([`diff_flame_svg`]) has the new side's shape, coloured by the change against the base:
//! red for more, blue for less, white for the same.
//!
//! (Not the `inferno` crate, which the call-stacks issue suggested: it is CDDL-1.0, which cannot
//! be linked into this GPL-2.0-only binary and shipped. `report --format folded` feeds inferno's
//! and flamegraph.pl's own programs.)

use crate::plot::human_bytes;
use crate::report::{GroupBy, Report};
use std::collections::BTreeMap;
use svg::node::element::{Group, Rectangle, Text, Title};

const WIDTH: f64 = 1200.0;
const FRAME_H: f64 = 16.0;
const PAD: f64 = 10.0;
const TOP: f64 = 40.0;
const CHAR_W: f64 = 6.6;
const FONT: &str = "DejaVu Sans, Verdana, sans-serif";
/// Frames narrower than this many pixels are not drawn (flamegraph.pl's `--minwidth`).
const MIN_W: f64 = 0.1;

/// One collapsed stack: frames outermost first, its bytes and the wasted part of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Function names, outermost first.
    pub frames: Vec<String>,
    /// Bytes allocated on this stack.
    pub value: u64,
    /// Of them, wasted (allocated − requested).
    pub wasted: u64,
}

/// The stacks of a report grouped by stack (`--group-by stack`): bytes allocated and wasted per
/// stack, frames as `report --format folded` writes them. Empty without stack groups.
pub fn report_stacks(r: &Report) -> Vec<Stack> {
    let Some(g) = r.groups.as_ref().filter(|g| g.by == GroupBy::Stack) else {
        return Vec::new();
    };
    g.rows
        .iter()
        .filter(|row| row.stats.bytes_allocated > 0)
        .map(|row| Stack {
            frames: row
                .frames
                .iter()
                .rev()
                .map(|f| crate::render::folded_frame(f))
                .collect(),
            value: row.stats.bytes_allocated,
            wasted: row.stats.fragmentation_bytes.max(0) as u64,
        })
        .collect()
}

/// The stacks of repeated runs of one side, each stack's bytes the mean over the runs.
pub fn mean_stacks(runs: &[Report]) -> Vec<Stack> {
    let n = runs.len().max(1) as u64;
    let mut sum: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
    for r in runs {
        for s in report_stacks(r) {
            let e = sum.entry(s.frames).or_default();
            e.0 += s.value;
            e.1 += s.wasted;
        }
    }
    sum.into_iter()
        .map(|(frames, (v, w))| Stack {
            frames,
            value: (v + n / 2) / n,
            wasted: (w + n / 2) / n,
        })
        .collect()
}

#[derive(Default)]
struct Node {
    value: u64,
    wasted: u64,
    /// The base side's bytes (differential graphs).
    base: u64,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn add(&mut self, frames: &[String], value: u64, wasted: u64, base: u64) {
        self.value += value;
        self.wasted += wasted;
        self.base += base;
        if let Some((first, rest)) = frames.split_first() {
            self.children
                .entry(first.clone())
                .or_default()
                .add(rest, value, wasted, base);
        }
    }

    fn depth(&self) -> usize {
        self.children
            .values()
            .map(|c| 1 + c.depth())
            .max()
            .unwrap_or(0)
    }
}

/// flamegraph.pl's "hot" palette, by a hash of the name so that a function keeps its colour.
fn warm(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let r = 205 + (h % 50);
    let g = (h >> 8) % 230;
    let b = (h >> 16) % 55;
    format!("rgb({r},{g},{b})")
}

/// Red for growth, blue for shrinkage, by the change relative to the larger side.
fn delta_colour(base: u64, new: u64) -> String {
    let (b, n) = (base as f64, new as f64);
    let rel = if b.max(n) == 0.0 {
        0.0
    } else {
        (n - b) / b.max(n)
    };
    let fade = (255.0 * (1.0 - rel.abs())).round() as u8;
    if rel >= 0.0 {
        format!("rgb(255,{fade},{fade})")
    } else {
        format!("rgb({fade},{fade},255)")
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn label(name: &str, w: f64) -> Option<String> {
    let fits = ((w - 6.0) / CHAR_W).floor() as usize;
    if fits < 3 {
        return None;
    }
    if name.chars().count() <= fits {
        return Some(name.to_string());
    }
    Some(format!(
        "{}..",
        name.chars().take(fits - 2).collect::<String>()
    ))
}

struct Layout<'a> {
    scale: f64,
    bottom: f64,
    total: u64,
    unit: &'a str,
    diff: bool,
}

impl Layout<'_> {
    fn frame(&self, g: Group, name: &str, n: &Node, x: f64, level: usize) -> Group {
        let w = n.value as f64 * self.scale;
        if w < MIN_W {
            return g;
        }
        let y = self.bottom - (level as f64 + 1.0) * FRAME_H;
        let share = 100.0 * n.value as f64 / self.total.max(1) as f64;
        let tip = if self.diff {
            format!(
                "{name}: {} {} (base {}, {:+})",
                human_bytes(n.value as i64),
                self.unit,
                human_bytes(n.base as i64),
                n.value as i64 - n.base as i64
            )
        } else {
            format!(
                "{name}: {} {} ({share:.2} %), {} wasted",
                human_bytes(n.value as i64),
                self.unit,
                human_bytes(n.wasted as i64)
            )
        };
        let fill = if self.diff {
            delta_colour(n.base, n.value)
        } else {
            warm(name)
        };
        let mut cell = Group::new().set("class", "frame").add(Title::new(tip)).add(
            Rectangle::new()
                .set("x", round(x))
                .set("y", round(y))
                .set("width", round(w))
                .set("height", FRAME_H - 1.0)
                .set("rx", 2)
                .set("fill", fill),
        );
        let ww = n.wasted as f64 * self.scale;
        if !self.diff && ww >= MIN_W {
            cell = cell.add(
                Rectangle::new()
                    .set("class", "frame wasted")
                    .set("x", round(x + w - ww))
                    .set("y", round(y))
                    .set("width", round(ww))
                    .set("height", FRAME_H - 1.0)
                    .set("fill", "rgb(120,120,120)")
                    .set("fill-opacity", 0.45),
            );
        }
        if let Some(l) = label(name, w) {
            cell = cell.add(
                Text::new(l)
                    .set("x", round(x + 3.0))
                    .set("y", round(y + FRAME_H - 4.5))
                    .set("font-size", 11)
                    .set("font-family", FONT),
            );
        }
        let mut g = g.add(cell);
        let mut cx = x;
        for (child, c) in &n.children {
            g = self.frame(g, child, c, cx, level + 1);
            cx += c.value as f64 * self.scale;
        }
        g
    }
}

fn draw(root: &Node, title: &str, subtitle: &str, unit: &str, diff: bool) -> String {
    let depth = root.depth() + 1;
    let height = TOP + depth as f64 * FRAME_H + 2.0 * PAD + 16.0;
    let layout = Layout {
        scale: (WIDTH - 2.0 * PAD) / root.value.max(1) as f64,
        bottom: height - PAD - 16.0,
        total: root.value,
        unit,
        diff,
    };
    let mut g = layout.frame(Group::new().set("class", "flame"), "all", root, PAD, 0);
    if root.value == 0 {
        g = g.add(
            Text::new("no bytes allocated on any stack")
                .set("x", WIDTH / 2.0)
                .set("y", round(height - PAD - 20.0))
                .set("text-anchor", "middle")
                .set("font-size", 12)
                .set("font-family", FONT),
        );
    }
    crate::plot::svg_document(WIDTH, height, title, "rgb(248,248,240)")
        .add(
            Text::new(title)
                .set("x", WIDTH / 2.0)
                .set("y", 20)
                .set("text-anchor", "middle")
                .set("font-size", 16)
                .set("font-family", FONT),
        )
        .add(
            Text::new(subtitle)
                .set("x", WIDTH / 2.0)
                .set("y", 34)
                .set("text-anchor", "middle")
                .set("font-size", 11)
                .set("font-family", FONT)
                .set("fill", "rgb(90,90,90)"),
        )
        .add(g)
        .to_string()
        + "\n"
}

/// The stacks whose call site is the tracer's own (its relay buffers, logged when a CPU comes
/// online while tracing) apart from the others, and their bytes: the graphs leave them out and
/// say so, as the report's chart does; folded stacks and pprof keep them.
fn without_tracer_own(stacks: &[Stack]) -> (Vec<&Stack>, u64) {
    let (own, kept): (Vec<&Stack>, Vec<&Stack>) = stacks.iter().partition(|s| {
        s.frames
            .last()
            .is_some_and(|f| crate::plot::is_tracer_own(f))
    });
    (kept, own.iter().map(|s| s.value).sum())
}

fn tracer_own_note(bytes: u64) -> String {
    if bytes == 0 {
        String::new()
    } else {
        format!(
            "; kmemtrace's own relay buffers ({}) left out",
            human_bytes(bytes as i64)
        )
    }
}

/// A flame graph of `stacks` (bytes allocated, the wasted part shaded).
pub fn flame_svg(stacks: &[Stack], title: &str) -> String {
    let (stacks, own) = without_tracer_own(stacks);
    let mut root = Node::default();
    for s in stacks {
        root.add(&s.frames, s.value, s.wasted, 0);
    }
    let sub = format!(
        "width: bytes allocated ({} in all), shaded: wasted (allocated - requested, {}){}; hover for figures",
        human_bytes(root.value as i64),
        human_bytes(root.wasted as i64),
        tracer_own_note(own)
    );
    draw(&root, title, &sub, "allocated", false)
}

/// A differential flame graph: the shape of `new`, each frame coloured by its change from
/// `base` (frames only the base has do not show; their bytes are in the subtitle).
pub fn diff_flame_svg(base: &[Stack], new: &[Stack], title: &str) -> String {
    let (base, own_base) = without_tracer_own(base);
    let (new, own_new) = without_tracer_own(new);
    let mut root = Node::default();
    for s in new {
        root.add(&s.frames, s.value, 0, 0);
    }
    let mut gone = 0u64;
    let mut base_total = 0u64;
    for s in base {
        base_total += s.value;
        // The base's bytes go to the frames the new side has; what is left had no frame there.
        let mut n = &mut root;
        n.base += s.value;
        for f in &s.frames {
            match n.children.get_mut(f) {
                Some(c) => {
                    c.base += s.value;
                    n = c;
                }
                None => {
                    gone += s.value;
                    break;
                }
            }
        }
    }
    let sub = format!(
        "width: new bytes allocated ({}; base {}), red: more than base, blue: less; {} of the base on stacks the new side does not have{}",
        human_bytes(root.value as i64),
        human_bytes(base_total as i64),
        human_bytes(gone as i64),
        tracer_own_note(own_base.max(own_new))
    );
    draw(&root, title, &sub, "allocated", true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(frames: &str, value: u64, wasted: u64) -> Stack {
        Stack {
            frames: frames.split(';').map(String::from).collect(),
            value,
            wasted,
        }
    }

    fn rects(svg: &str) -> Vec<(f64, f64, String)> {
        // (x, width, title) of every frame, from the SVG text.
        let mut out = Vec::new();
        for cell in svg.split("<g class=\"frame\">").skip(1) {
            let title = cell
                .split("<title>")
                .nth(1)
                .and_then(|t| t.split("</title>").next())
                .unwrap_or_default()
                .to_string();
            let attr = |name: &str| -> f64 {
                cell.split(&format!(" {name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1.0)
            };
            out.push((attr("x"), attr("width"), title));
        }
        out
    }

    /// The tracer's own relay buffers are not drawn, and the subtitle says how much was left out.
    #[test]
    fn the_tracers_own_buffers_are_left_out_and_said() {
        let svg = flame_svg(
            &[
                st("do_syscall_64;alloc_pipe_info", 600, 0),
                st("cpuhp_thread_fun;relay_open_buf.part.0", 4096, 0),
            ],
            "t",
        );
        let r = rects(&svg);
        assert!(r.iter().all(|x| !x.2.contains("relay_open_buf")), "{r:?}");
        assert!(r.iter().all(|x| !x.2.contains("cpuhp_thread_fun")), "{r:?}");
        assert!(svg.contains("relay buffers (4.0 KiB) left out"), "{svg}");
        let plain = flame_svg(&[st("do_syscall_64;alloc_pipe_info", 600, 0)], "t");
        assert!(!plain.contains("left out"));
    }

    /// Widths are proportional to bytes, children sit side by side in name order above their
    /// parent, and the wasted part is drawn over the frame's right end.
    #[test]
    fn frames_are_as_wide_as_their_bytes() {
        let svg = flame_svg(
            &[
                st("do_syscall_64;ksys_write;kmalloc", 300, 100),
                st("do_syscall_64;alloc_pipe_info", 600, 0),
                st("kernel_clone", 100, 0),
            ],
            "t",
        );
        let r = rects(&svg);
        let find = |n: &str| {
            r.iter()
                .find(|x| x.2.starts_with(&format!("{n}:")))
                .unwrap()
        };
        let unit = (WIDTH - 2.0 * PAD) / 1000.0;
        assert_eq!(find("all").1, round(1000.0 * unit));
        assert_eq!(find("do_syscall_64").1, round(900.0 * unit));
        // alloc_pipe_info sorts before ksys_write: it starts where its parent does.
        assert_eq!(find("alloc_pipe_info").0, find("do_syscall_64").0);
        assert_eq!(find("ksys_write").0, round(PAD + 600.0 * unit));
        assert_eq!(find("kernel_clone").0, round(PAD + 900.0 * unit));
        assert!(
            find("kmalloc").2.contains("100 B wasted"),
            "{:?}",
            find("kmalloc")
        );
        assert!(svg.contains("class=\"frame wasted\""));
        assert!(svg.contains("<title>t</title>"));
    }

    #[test]
    fn the_differential_graph_colours_by_change() {
        let svg = diff_flame_svg(
            &[st("a;b", 100, 0), st("a;c", 100, 0), st("gone", 50, 0)],
            &[st("a;b", 200, 0), st("a;c", 50, 0)],
            "d",
        );
        let r = rects(&svg);
        let b = r.iter().find(|x| x.2.starts_with("b:")).unwrap();
        assert!(b.2.contains("base 100 B, +100"), "{b:?}");
        assert!(svg.contains("fill=\"rgb(255,128,128)\""), "b grew by half");
        assert!(
            svg.contains("fill=\"rgb(128,128,255)\""),
            "c shrank by half"
        );
        assert!(svg.contains("50 B of the base on stacks the new side does not have"));
    }

    #[test]
    fn labels_fit_or_are_left_out() {
        assert_eq!(
            label("alloc_pipe_info", 500.0).as_deref(),
            Some("alloc_pipe_info")
        );
        assert_eq!(label("alloc_pipe_info", 60.0).as_deref(), Some("alloc_.."));
        assert_eq!(label("alloc_pipe_info", 20.0), None);
        let empty = flame_svg(&[], "empty");
        assert_eq!(empty.matches("<g class=\"frame\">").count(), 0);
        assert!(empty.contains("no bytes allocated"), "{empty}");
    }
}
