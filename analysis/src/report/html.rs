//! `report.html`: one self-contained document — title naming the grid, the setup, the finding,
//! the tables, then numbered figures in sections (each SVG inline), the attention maps and the
//! definitions. Captions are written once, on the figure itself; the HTML adds only the figure's
//! number and links to its data.

use super::Section;
use super::setup::Setup;
use super::tables::{DEFINITIONS, extra_tables, group_cells, group_header, paired_cells, paired_header};
use crate::error::Result;
use crate::summary::Summary;
use gatelab_rundir::write_atomic;
use std::fmt::Write as _;
use std::path::Path;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Markdown's `**bold**` as HTML.
fn strong(s: &str) -> String {
    let mut out = String::new();
    for (k, part) in escape(s).split("**").enumerate() {
        if k % 2 == 1 {
            let _ = write!(out, "<strong>{part}</strong>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Markdown's `~~struck~~` as HTML.
fn struck(s: &str) -> String {
    let mut out = String::new();
    for (k, part) in escape(s).split("~~").enumerate() {
        if k % 2 == 1 {
            let _ = write!(out, "<del>{part}</del>");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut html = String::from("<table><tr>");
    for h in header {
        let _ = write!(html, "<th>{}</th>", escape(h));
    }
    html.push_str("</tr>\n");
    for r in rows {
        html.push_str("<tr>");
        for c in r {
            let _ = write!(html, "<td>{}</td>", struck(c));
        }
        html.push_str("</tr>\n");
    }
    html + "</table>\n"
}

/// An SVG file's markup, for inlining (without its XML declaration).
fn inline_svg(path: &Path) -> Result<String> {
    let svg = std::fs::read_to_string(path).map_err(|e| gatelab_rundir::RunDirError::io(path, e))?;
    Ok(svg.trim_start_matches(|c| c != '<').trim_start_matches(|c| c != '<').to_string())
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1080px;margin:2em auto;color:#222;line-height:1.45}\
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
td:first-child,th:first-child{text-align:left}dl.setup{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:14px}\
dl.setup dt{font-weight:bold}dl.setup dd{margin:0}figure{margin:2em 0}figure svg{max-width:100%;height:auto}\
figcaption{color:#555;font-size:13px}.note{color:#555;font-size:13px}";

/// Writes `report.html` into `dir`.
pub fn write(
    dir: &Path,
    title: &str,
    setup: &Setup,
    finding: &str,
    summary: &Summary,
    sections: &[Section],
) -> Result<()> {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    html.push_str("<h2>1. Setup</h2>\n<dl class=\"setup\">");
    for (k, v) in &setup.rows {
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
    }
    html.push_str("</dl>\n");
    let _ = writeln!(html, "<h2>2. Finding</h2>\n<p>{}</p>", strong(finding));
    html.push_str("<h2>3. Results</h2>\n<h3>Per configuration</h3>\n");
    let rows: Vec<Vec<String>> = summary.groups.iter().map(group_cells).collect();
    html.push_str(&table(&group_header(), &rows));
    let paired: Vec<Vec<String>> = summary.groups.iter().filter_map(|g| paired_cells(g, summary)).collect();
    if !paired.is_empty() {
        html.push_str("<h3>Against the baseline, paired by seed</h3>\n");
        html.push_str(&table(&paired_header(), &paired));
    }
    for t in extra_tables(summary) {
        let _ = writeln!(html, "<h3>{}</h3>", escape(t.title));
        html.push_str(&table(&t.header, &t.rows));
        let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(t.note));
    }
    let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(DEFINITIONS));
    if summary.groups.iter().any(|g| !g.verdicts.is_empty()) {
        let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(crate::summary::VERDICT_RULE));
    }
    let mut figure = 0;
    for (k, section) in sections.iter().enumerate() {
        let _ = writeln!(html, "<h2>{}. {}</h2>", k + 4, escape(&section.title));
        for c in &section.charts {
            figure += 1;
            let svg = inline_svg(&dir.join(format!("{}.svg", c.stem)))?;
            let _ = writeln!(
                html,
                "<figure id=\"fig{figure}\">{svg}<figcaption>Figure {figure}. Data: <a href=\"{s}.csv\">{s}.csv</a>; image: <a href=\"{s}.png\">{s}.png</a>.</figcaption></figure>",
                s = c.stem
            );
        }
    }
    // One sequence's attention maps per configuration (its first analysed run).
    let mut maps = String::new();
    for g in &summary.groups {
        let Some(r) = g.runs.iter().find(|r| r.run.file("attention_maps.svg").is_file()) else { continue };
        figure += 1;
        let svg = inline_svg(&r.run.file("attention_maps.svg"))?;
        let rel = relative(dir, &r.run.path);
        let _ = writeln!(
            maps,
            "<figure id=\"fig{figure}\">{svg}<figcaption>Figure {figure}. {}: attention of one held-out sequence (seed {}). Data: <a href=\"{rel}/attention_maps.csv\">{rel}/attention_maps.csv</a>.</figcaption></figure>",
            escape(&g.name()),
            r.file.meta.seed
        );
    }
    if !maps.is_empty() {
        let _ = writeln!(html, "<h2>{}. Attention maps</h2>\n{maps}", sections.len() + 4);
    }
    html.push_str("</body></html>\n");
    Ok(write_atomic(&dir.join("report.html"), html.as_bytes())?)
}

/// `to` as a path relative to the folder `from` (both resolved), for links in `report.html`;
/// `to` as given when either cannot be resolved.
fn relative(from: &Path, to: &Path) -> String {
    let (Ok(from), Ok(to_abs)) = (from.canonicalize(), to.canonicalize()) else { return to.display().to_string() };
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to_abs.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); a.len() - common];
    parts.extend(b[common..].iter().map(|c| c.as_os_str().to_string_lossy().to_string()));
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_relative_to_the_report() {
        let root = std::env::temp_dir().join(format!("gatelab-rel-{}", std::process::id()));
        let (out, run) = (root.join("reports/core"), root.join("results/core/baseline-0"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        assert_eq!(super::relative(&out, &run), "../../results/core/baseline-0");
        assert_eq!(super::relative(&root.join("results/core"), &run), "baseline-0");
        let _ = std::fs::remove_dir_all(&root);
    }
}
