//! The `.env` file reader: `KEY=VALUE` lines, `#` comments, an optional
//! `export ` prefix, and single- or double-quoted values (double quotes
//! decode `\n`, `\"` and `\\` and keep any other backslash as written;
//! single quotes are literal).

use std::collections::BTreeMap;
use std::path::Path;

/// A line of a `.env` file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {reason}", if *.line == 0 { String::new() } else { format!(":{}", .line) })]
pub struct EnvFileError {
    /// The file.
    pub path: String,
    /// 1-based line number (0 when the file itself could not be read).
    pub line: usize,
    /// What is wrong, without the value (it may be a secret).
    pub reason: String,
}

/// Read a `.env` file into a map. Later lines override earlier ones.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, EnvFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| EnvFileError {
        path: path.display().to_string(),
        line: 0,
        reason: format!("cannot read the env file: {e}"),
    })?;
    parse_env_text(&text).map_err(|(line, reason)| EnvFileError {
        path: path.display().to_string(),
        line,
        reason,
    })
}

/// Parse the text of a `.env` file. Errors carry the 1-based line number.
pub fn parse_env_text(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut vars = BTreeMap::new();
    for (idx, raw_line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((line_no, "expected KEY=VALUE".to_string()));
        };
        let key = key.trim();
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err((
                line_no,
                format!("{key:?} is not a variable name (letters, digits and _)"),
            ));
        }
        let value =
            parse_value(value.trim()).map_err(|reason| (line_no, format!("{key}: {reason}")))?;
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

fn parse_value(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('"') {
        let (value, after) = decode_double_quoted(rest)?;
        check_trailing(after)?;
        Ok(value)
    } else if let Some(rest) = v.strip_prefix('\'') {
        let Some(end) = rest.find('\'') else {
            return Err("unterminated single quote".to_string());
        };
        check_trailing(&rest[end + 1..])?;
        Ok(rest[..end].to_string())
    } else {
        // Unquoted: an inline comment starts at " #".
        let value = match v.find(" #") {
            Some(i) => &v[..i],
            None => v,
        };
        Ok(value.trim_end().to_string())
    }
}

/// Decode the text after an opening double quote in one pass: `\n` is a
/// newline, `\"` a quote, `\\` a backslash; any other backslash is kept as
/// it is, with the character after it (`\t` stays the two characters `\`
/// and `t`). Returns the value and the text after the closing quote, the
/// first `"` not escaped.
fn decode_double_quoted(rest: &str) -> Result<(String, &str), String> {
    let mut value = String::with_capacity(rest.len());
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &rest[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            other => value.push(other),
        }
    }
    Err("unterminated double quote".to_string())
}

fn check_trailing(rest: &str) -> Result<(), String> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_shapes() {
        let text = "# cluster A\n\nexport CACHE_DEFAULT_STORE=redis\nCACHE_REDIS_URL=\"redis://:p@h:6379/0\"\nAPP_KEY='a b#c'\nQUEUE_ADAPTER=redis # cluster mode\nEMPTY=\n";
        let vars = parse_env_text(text).unwrap();
        assert_eq!(vars["CACHE_DEFAULT_STORE"], "redis");
        assert_eq!(vars["CACHE_REDIS_URL"], "redis://:p@h:6379/0");
        assert_eq!(vars["APP_KEY"], "a b#c");
        assert_eq!(vars["QUEUE_ADAPTER"], "redis");
        assert_eq!(vars["EMPTY"], "");
    }

    #[test]
    fn bad_lines_name_their_line_number() {
        assert_eq!(parse_env_text("A=1\nnonsense\n").unwrap_err().0, 2);
        assert_eq!(parse_env_text("A=\"open\n").unwrap_err().0, 1);
        assert_eq!(parse_env_text("1A=x").unwrap_err().0, 1);
        assert_eq!(parse_env_text("A='x' y").unwrap_err().0, 1);
    }

    #[test]
    fn double_quotes_decode_each_escape_once() {
        let text = concat!(
            "APP_KEY=\"pa\\\"ss\"\n",
            "STORAGE_PATH=\"/tmp/a\\\\nb\"\n",
            "TWO=\"a\\nb\"\n",
            "ENDS=\"c:\\\\\"\n",
            "UNKNOWN=\"a\\tb\\x\\$\" # kept\n",
        );
        let vars = parse_env_text(text).unwrap();
        assert_eq!(vars["APP_KEY"], "pa\"ss");
        assert_eq!(vars["STORAGE_PATH"], "/tmp/a\\nb");
        assert_eq!(vars["TWO"], "a\nb");
        assert_eq!(vars["ENDS"], "c:\\");
        assert_eq!(vars["UNKNOWN"], "a\\tb\\x\\$");
    }

    #[test]
    fn an_escaped_quote_does_not_close_the_value() {
        let err = parse_env_text("APP_KEY=\"open\\\"\n").unwrap_err();
        assert_eq!(err, (1, "APP_KEY: unterminated double quote".to_string()));
        let err = parse_env_text("APP_KEY=\"a\" b\n").unwrap_err();
        assert!(
            err.1.ends_with("unexpected text after the closing quote"),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = read_env_file(Path::new("/nonexistent/clusterops.env")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/clusterops.env"));
        assert!(!err.to_string().contains(":0:"), "{err}");
    }
}
