//! Unit tests of path templates: parsing, rendering, and refusing paths that leave the root.

use super::*;
use chrono::TimeZone;

/// 2024-03-05 07:08:09 UTC, unix 1709622489.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).single().unwrap()
}

fn ctx(relpath: &str) -> TemplateContext {
    TemplateContext::new(now(), relpath, "partner-sftp")
}

fn render(template: &str, relpath: &str) -> Result<String> {
    PathTemplate::parse(template)?.render(&ctx(relpath))
}

fn ok(template: &str, relpath: &str) -> String {
    match render(template, relpath) {
        Ok(path) => path,
        Err(e) => panic!("{template:?} with {relpath:?} failed: {e}"),
    }
}

fn parse_err(template: &str) -> Error {
    match PathTemplate::parse(template) {
        Ok(t) => panic!("{template:?} parsed as {t:?}"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(!e.retryable);
            e
        }
    }
}

fn render_err(template: &str, relpath: &str) -> Error {
    match render(template, relpath) {
        Ok(path) => panic!("{template:?} with {relpath:?} rendered {path:?}"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(
                e.context.contains(&format!("{template:?}")),
                "context {:?} should name the template",
                e.context
            );
            e
        }
    }
}

#[test]
fn date_and_time_variables_are_zero_padded() {
    assert_eq!(
        ok("{year}/{month}/{day}/{hour}-{minute}-{second}", "f"),
        "2024/03/05/07-08-09"
    );
    assert_eq!(ok("{timestamp}", "f"), "1709622489");
}

#[test]
fn file_variables() {
    let rel = "in/2024/report.final.csv";
    assert_eq!(ok("{relpath}", rel), "in/2024/report.final.csv");
    assert_eq!(ok("{reldir}", rel), "in/2024");
    assert_eq!(ok("{filename}", rel), "report.final.csv");
    assert_eq!(ok("{stem}", rel), "report.final");
    assert_eq!(ok("{ext}", rel), "csv");
    assert_eq!(ok("{source}", rel), "partner-sftp");
    assert_eq!(
        ok("out/{source}/{reldir}/{stem}-{timestamp}.{ext}", rel),
        "out/partner-sftp/in/2024/report.final-1709622489.csv"
    );
}

#[test]
fn stem_and_ext_edge_cases() {
    assert_eq!(ok("{stem}|{ext}", ".bashrc"), ".bashrc|");
    assert_eq!(ok("x/{stem}|{ext}", "dir/.bashrc"), "x/.bashrc|");
    assert_eq!(ok("{stem}|{ext}", "README"), "README|");
    assert_eq!(ok("{stem}|{ext}", "a.tar.gz"), "a.tar|gz");
    assert_eq!(ok("{stem}|{ext}", ".config.yml"), ".config|yml");
    assert_eq!(ok("{stem}|{ext}", "trailing."), "trailing|");
}

#[test]
fn reldir_is_empty_at_top_level() {
    assert_eq!(ok("a{reldir}b", "top.txt"), "ab");
    // The '/' after an empty {reldir} is a separator, not an absolute path.
    assert_eq!(ok("{reldir}/{filename}", "top.txt"), "top.txt");
    assert_eq!(ok("{reldir}/{filename}", "d/e/top.txt"), "d/e/top.txt");
    assert_eq!(ok("out/{reldir}/{filename}", "top.txt"), "out/top.txt");
}

#[test]
fn missing_file_name_is_an_error() {
    for relpath in ["", "dir/", "dir/."] {
        let e = render_err("out/{filename}", relpath);
        assert!(e.message.contains("{filename}"), "{}", e.message);
        assert!(e.message.contains(&format!("{relpath:?}")), "{}", e.message);
    }
}

#[test]
fn date_format() {
    assert_eq!(
        ok("{date:%Y-%m-%d}/{filename}", "f.txt"),
        "2024-03-05/f.txt"
    );
    assert_eq!(ok("{date:%Y/%j}", "f"), "2024/065");
    assert_eq!(ok("{date:%H%M%S}", "f"), "070809");
    assert_eq!(ok("{date:%b %e}", "f"), "Mar  5");
}

#[test]
fn escaped_braces() {
    assert_eq!(ok("{{year}}/{year}", "f"), "{year}/2024");
    assert_eq!(ok("a{{b}}c", "f"), "a{b}c");
    assert_eq!(ok("{{{filename}}}", "f.txt"), "{f.txt}");
    assert_eq!(PathTemplate::parse("{{x}}").unwrap().as_str(), "{{x}}");
}

#[test]
fn unknown_variable() {
    let e = parse_err("out/{nope}/x");
    assert!(e.message.contains("{nope}"), "{}", e.message);
    assert!(e.message.contains("byte 4"), "{}", e.message);
    assert!(e.context.contains("out/{nope}/x"), "{}", e.context);
    let e = parse_err("{uuid}");
    assert!(
        e.message.contains("unknown variable {uuid} at byte 0"),
        "{}",
        e.message
    );
}

#[test]
fn unclosed_brace() {
    let e = parse_err("out/{year");
    assert!(
        e.message.contains("unclosed '{' at byte 4"),
        "{}",
        e.message
    );
    let e = parse_err("a/{year/{month}");
    assert!(
        e.message.contains("unclosed '{' at byte 2"),
        "{}",
        e.message
    );
}

#[test]
fn stray_brace() {
    let e = parse_err("out/year}/x");
    assert!(e.message.contains("stray '}' at byte 8"), "{}", e.message);
}

#[test]
fn empty_variable() {
    let e = parse_err("ab{}");
    assert!(
        e.message.contains("empty variable '{}' at byte 2"),
        "{}",
        e.message
    );
}

#[test]
fn bad_date_formats() {
    let e = parse_err("{date:%Y-%Q}");
    assert!(e.message.contains("\"%Y-%Q\""), "{}", e.message);
    assert!(
        e.message.contains("{date:%Y-%Q} at byte 0"),
        "{}",
        e.message
    );
    let e = parse_err("x{date:%}");
    assert!(e.message.contains("\"%\""), "{}", e.message);
    let e = parse_err("{date}");
    assert!(
        e.message.contains("{date} at byte 0 needs a format"),
        "{}",
        e.message
    );
    let e = parse_err("{date:}");
    assert!(e.message.contains("empty date format"), "{}", e.message);
    let e = parse_err("{year:%Y}");
    assert!(
        e.message.contains("{year} takes no format"),
        "{}",
        e.message
    );
}

#[test]
fn empty_and_dot_name_the_root() {
    for template in ["", ".", "./", "{reldir}"] {
        assert_eq!(ok(template, "f"), "", "{template:?}");
    }
}

#[test]
fn normalisation() {
    assert_eq!(ok("a//b/./c", "f"), "a/b/c");
    assert_eq!(ok("./a/b/", "f"), "a/b");
    assert_eq!(ok("out/{relpath}", "x//y/./z.txt"), "out/x/y/z.txt");
}

#[test]
fn literal_traversal_is_refused() {
    let cases = [
        ("..", "'..' segment"),
        ("../x", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/..", "'..' segment"),
        ("/etc/passwd", "is absolute"),
        ("a\0b", "U+0000"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("C:/x", "drive prefix \"C:\""),
        ("c:x", "drive prefix \"c:\""),
        ("a/\nb", "U+000A"),
        ("a\tb", "U+0009"),
        ("a\x7fb", "U+007F"),
        ("a\x1bb", "U+001B"),
        ("/", "is absolute"),
    ];
    for (template, expected) in cases {
        let e = render_err(template, "f");
        assert!(e.message.contains(expected), "{template:?}: {}", e.message);
        assert!(
            e.message.contains(&format!("{template:?}")),
            "{template:?}: message should name the rendered value: {}",
            e.message
        );
    }
}

#[test]
fn traversal_is_event_data_is_refused() {
    let cases = [
        ("{relpath}", "..", "'..' segment"),
        ("{relpath}", "../x", "'..' segment"),
        ("{relpath}", "a/../../b", "'..' segment"),
        ("out/{relpath}", "x/../../etc/passwd", "'..' segment"),
        (
            "{relpath}",
            "/etc/passwd",
            "{relpath} is the absolute path \"/etc/passwd\"",
        ),
        (
            "out/{relpath}",
            "/etc/passwd",
            "{relpath} is the absolute path \"/etc/passwd\"",
        ),
        ("out/{relpath}", "a\0b", "U+0000"),
        ("out/{relpath}", "a\\b", "backslash"),
        ("out/{relpath}", "..\\x", "backslash"),
        ("{relpath}", "C:/x", "drive prefix \"C:\""),
        ("out/{relpath}", "d:x", "drive prefix \"d:\""),
        ("out/{relpath}", "a\nb", "U+000A"),
        ("out/{filename}", "..", "'..' segment"),
        ("out/{filename}", "a/..", "'..' segment"),
        ("out/{filename}", "..\\x", "backslash"),
        ("out/{filename}", "dir/..\\..\\x", "backslash"),
        ("out/{filename}", "C:x", "drive prefix"),
        ("out/{filename}", "a\0b", "U+0000"),
        ("out/{filename}", "dir/x\x1b[2J", "U+001B"),
        ("out/{filename}", "dir/x\r", "U+000D"),
        ("{reldir}/f", "../f.txt", "'..' segment"),
        (
            "{reldir}/f",
            "/etc/passwd",
            "{reldir} is the absolute path \"/etc\"",
        ),
        ("{reldir}/f", "a/../../b/f", "'..' segment"),
        ("out/{stem}", "..\\evil.txt", "backslash"),
        ("out/{ext}", "x.\0", "U+0000"),
    ];
    for (template, relpath, expected) in cases {
        let e = render_err(template, relpath);
        assert!(
            e.message.contains(expected),
            "{template:?} with {relpath:?}: {}",
            e.message
        );
        assert!(
            !e.message.chars().any(|c| c.is_ascii_control()),
            "{template:?} with {relpath:?}: message must escape control characters: {:?}",
            e.message
        );
    }

    let mut context = ctx("f.txt");
    context.source = "../other".to_string();
    let template = PathTemplate::parse("{source}/{filename}").unwrap();
    let e = template.render(&context).unwrap_err();
    assert!(e.message.contains("\"../other/f.txt\""), "{}", e.message);
    context.source = "/root".to_string();
    let template = PathTemplate::parse("in/{source}").unwrap();
    let e = template.render(&context).unwrap_err();
    assert!(
        e.message
            .contains("{source} is the absolute path \"/root\""),
        "{}",
        e.message
    );
}

#[test]
fn filename_keeps_only_the_last_segment() {
    // {filename} of an absolute key is just its last segment, which is harmless.
    assert_eq!(ok("out/{filename}", "../../etc/passwd"), "out/passwd");
}

#[test]
fn absolute_date_format_at_start_is_refused() {
    let e = render_err("{date:/%Y}", "f");
    assert!(
        e.message.contains("{date} is the absolute path \"/2024\""),
        "{}",
        e.message
    );
    assert_eq!(ok("x{date:/%Y}", "f"), "x/2024");
}

#[test]
fn unusual_names_are_kept() {
    assert_eq!(
        ok("out/{filename}", "Grüße, 報告 #1 100% & more.txt"),
        "out/Grüße, 報告 #1 100% & more.txt"
    );
    assert_eq!(ok("ça va/ {stem} /{ext}", "a b.é"), "ça va/ a b /é");
    assert_eq!(ok("...", "f"), "...");
}

#[test]
fn display_from_str_and_as_str() {
    let text = "out/{{x}}/{date:%Y}/{filename}";
    let template: PathTemplate = text.parse().unwrap();
    assert_eq!(template.to_string(), text);
    assert_eq!(template.as_str(), text);
    assert_eq!(template, PathTemplate::parse(text).unwrap());
    assert!("out/{bad}".parse::<PathTemplate>().is_err());
}

#[test]
fn serde_round_trip() {
    let template = PathTemplate::parse("out/{source}/{date:%Y-%m}/{filename}").unwrap();
    let json = serde_json::to_string(&template).unwrap();
    assert_eq!(json, r#""out/{source}/{date:%Y-%m}/{filename}""#);
    let back: PathTemplate = serde_json::from_str(&json).unwrap();
    assert_eq!(back, template);
    assert_eq!(
        back.render(&ctx("a/b.txt")).unwrap(),
        "out/partner-sftp/2024-03/b.txt"
    );
}

#[test]
fn serde_rejects_a_bad_template() {
    let e = serde_json::from_str::<PathTemplate>(r#""out/{nope}""#).unwrap_err();
    assert!(
        e.to_string().contains("unknown variable {nope} at byte 4"),
        "{e}"
    );
    let e = serde_json::from_str::<PathTemplate>(r#""{date:%Q}""#).unwrap_err();
    assert!(e.to_string().contains("invalid date format"), "{e}");
    assert!(serde_json::from_str::<PathTemplate>("42").is_err());
}
