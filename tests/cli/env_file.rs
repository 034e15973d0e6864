//! The `.env` reader reads back any value written with the quoting
//! docs/configuration.md documents: double quotes with `\n`, `\"` and `\\`
//! escapes, single quotes taken literally, and plain values unquoted.
//! The writers here follow the documentation, not the reader's code.

use clusterops::config::parse_env_text;
use proptest::prelude::*;

/// Double quotes: a backslash, a quote and a newline are escaped; every
/// other character is written as it is.
fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the documentation lets `value` go unquoted: not starting with a
/// quote, no newline, no ` #` (an inline comment), no blank at either end.
fn plain_is_enough(value: &str) -> bool {
    !value.starts_with(['"', '\''])
        && !value.contains('\n')
        && !value.contains(" #")
        && !value.starts_with('#')
        && value.trim() == value
}

fn key() -> impl Strategy<Value = String> {
    "[A-Z_][A-Z0-9_]{0,12}"
}

/// Text with the characters that matter to the reader well represented.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_map(String::from),
            2 => prop::sample::select(vec![
                "\\", "\"", "'", "\n", "#", " #", " ", "\t", "\r", "=", "\\n", "\\\"", "\\\\",
                "\\t", "\\x", "$", "${A}",
            ])
            .prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn a_double_quoted_value_reads_back_the_same(k in key(), v in value(), export in any::<bool>(), comment in any::<bool>()) {
        let line = format!(
            "{}{k}={}{}\n",
            if export { "export " } else { "" },
            double_quoted(&v),
            if comment { " # a comment" } else { "" }
        );
        let vars = parse_env_text(&line).map_err(|e| TestCaseError::fail(format!("{line:?}: {e:?}")))?;
        prop_assert_eq!(vars.get(&k), Some(&v), "line {:?}", line);
    }

    #[test]
    fn a_single_quoted_value_reads_back_literally(k in key(), v in value()) {
        prop_assume!(!v.contains('\'') && !v.contains('\n'));
        let line = format!("{k}='{v}'\n");
        let vars = parse_env_text(&line).map_err(|e| TestCaseError::fail(format!("{line:?}: {e:?}")))?;
        prop_assert_eq!(vars.get(&k), Some(&v), "line {:?}", line);
    }

    #[test]
    fn a_plain_value_reads_back_the_same(k in key(), v in value()) {
        prop_assume!(plain_is_enough(&v));
        let line = format!("{k}={v}\n");
        let vars = parse_env_text(&line).map_err(|e| TestCaseError::fail(format!("{line:?}: {e:?}")))?;
        prop_assert_eq!(vars.get(&k), Some(&v), "line {:?}", line);
    }

    #[test]
    fn many_values_in_one_file_each_read_back(entries in prop::collection::btree_map(key(), value(), 1..8)) {
        let text: String = entries
            .iter()
            .map(|(k, v)| format!("# {k}\n{k}={}\n\n", double_quoted(v)))
            .collect();
        let vars = parse_env_text(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e:?}")))?;
        prop_assert_eq!(vars, entries);
    }
}

/// The two values of issue #15, and escapes the documentation does not
/// list, which stay as written.
#[test]
fn the_escapes_of_the_issue_and_unknown_ones() {
    let vars = parse_env_text(
        "APP_KEY=\"pa\\\"ss\"\nSTORAGE_PATH=\"/tmp/a\\\\nb\"\nTAB=\"a\\tb\"\nHEX=\"\\x41\"\n",
    )
    .unwrap();
    assert_eq!(vars["APP_KEY"], "pa\"ss");
    assert_eq!(vars["STORAGE_PATH"], "/tmp/a\\nb");
    assert_eq!(vars["TAB"], "a\\tb");
    assert_eq!(vars["HEX"], "\\x41");
}
