//! Frame sequences on disk: a directory or a glob of per-frame splat files, in natural
//! frame-number order (`frame_2` before `frame_10`).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::formats::SplatFormat;

/// Why a sequence could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// The directory could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Nothing matched.
    #[error("{0}: no splat files (.ply, .splat, .sog, .spz) found")]
    Empty(PathBuf),
}

/// Lists the frames of `input`: a single file, a directory (every splat file in it) or a glob
/// whose last component has `*`/`?` wildcards (`frames/wave_*.sog`).
pub fn list_frames(input: &Path) -> Result<Vec<PathBuf>, SequenceError> {
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let (dir, pattern) = if name.contains(['*', '?']) {
        let parent = input.parent().filter(|p| !p.as_os_str().is_empty());
        (
            parent.unwrap_or(Path::new(".")).to_owned(),
            Some(name.to_owned()),
        )
    } else if input.is_dir() {
        (input.to_owned(), None)
    } else {
        return Ok(vec![input.to_owned()]);
    };
    let io = |error| SequenceError::Io {
        path: dir.clone(),
        error,
    };
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let wanted = match &pattern {
            Some(p) => glob_match(p, file),
            None => SplatFormat::has_known_extension(&path) && !file.ends_with(".decoded.ply"),
        };
        if wanted && path.is_file() {
            frames.push(path);
        }
    }
    if frames.is_empty() {
        return Err(SequenceError::Empty(input.to_owned()));
    }
    frames.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(frames)
}

/// `*` matches any run of characters, `?` exactly one.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Compares strings treating digit runs as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then(na.cmp(nb)).then(da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_and_globs() {
        let mut v = vec!["f10.ply", "f2.ply", "f1.ply", "f02.ply"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["f1.ply", "f2.ply", "f02.ply", "f10.ply"]);
        assert!(glob_match("wave_*.sog", "wave_0001.sog"));
        assert!(!glob_match("wave_*.sog", "wave_0001.ply"));
        assert!(glob_match("f?.ply", "f1.ply"));
        assert!(!glob_match("f?.ply", "f10.ply"));
    }

    #[test]
    fn directory_listing_is_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["frame_10.ply", "frame_9.ply", "notes.txt", "frame_1.ply"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let names: Vec<String> = list_frames(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["frame_1.ply", "frame_9.ply", "frame_10.ply"]);
        let glob = list_frames(&dir.path().join("frame_?.ply")).unwrap();
        assert_eq!(glob.len(), 2);
        assert!(list_frames(&dir.path().join("*.sog")).is_err());
    }
}
