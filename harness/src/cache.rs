// SPDX-License-Identifier: GPL-2.0-only
//! A content-addressed build cache: an entry is a directory named by the hash of everything that
//! went into it. Entries appear atomically (built in a staging directory, then renamed) and
//! builders of the same key wait for one another (an exclusive lock per key).
//!
//! Every entry records the size and SHA-256 of each of its files (`kmt-sums`, written before
//! the entry is renamed into place) and is verified on every use: a truncated kernel image
//! would otherwise boot into a silent timeout. A damaged entry is reported by name, removed and
//! rebuilt. Kernel and image entries are hashed in full on use (milliseconds); the unpacked
//! source tree (tens of thousands of files, used only to build a kernel) has its sizes checked.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Cache failures.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem operation on the cache failed.
    #[error("cache: cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io { what, path, source }
}

/// The cache's root directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

/// Accumulates what an entry depends on; the key is its SHA-256.
#[derive(Default, Clone)]
pub struct KeyBuilder {
    hasher: Sha256,
    /// A readable account of the ingredients, stored beside the entry.
    pub ingredients: Vec<String>,
}

impl KeyBuilder {
    /// Adds a named value.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.hasher.update((name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value.as_bytes());
        self.ingredients
            .push(format!("{name}: {}", value.lines().next().unwrap_or("")));
        self
    }

    /// Adds a named byte string (a file's contents) by its own hash.
    pub fn bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let h = hex(&Sha256::digest(value));
        self.text(name, &h)
    }

    /// The key: 24 hex digits of the SHA-256 (96 bits: collisions are not a concern here).
    pub fn key(&self) -> String {
        hex(&self.hasher.clone().finalize())[..24].to_string()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// `$KMT_CACHE_DIR`, else `$XDG_CACHE_HOME/kmt`, else `~/.cache/kmt`.
    pub fn from_env() -> Cache {
        let root = std::env::var_os("KMT_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("kmt")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kmt")))
            .unwrap_or_else(|| PathBuf::from(".kmt-cache"));
        Cache { root }
    }

    /// The entry's final path (whether or not it exists yet).
    pub fn path(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// The entry `kind/key` if it is there and verifies; a damaged one is reported and removed
    /// (so that the caller rebuilds it).
    pub fn lookup(&self, kind: &str, key: &str) -> Result<Option<PathBuf>, CacheError> {
        let entry = self.path(kind, key);
        if !entry.is_dir() {
            return Ok(None);
        }
        if !entry.join(SUMS).exists() {
            // Made by a kmt from before entries recorded their sums (built in staging and
            // renamed, so whole unless damaged since): record them now.
            let lock_path = self.root.join(kind).join(format!("{key}.lock"));
            let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
            lock.lock().map_err(io("lock", &lock_path))?;
            if !entry.join(SUMS).exists() {
                tracing::info!("cache entry {kind}/{key} predates recorded sums: recording them");
                record_sums(&entry)?;
            }
        }
        match verify(&entry, depth(kind)) {
            Ok(()) => Ok(Some(entry)),
            Err(why) => {
                let dir = self.root.join(kind);
                let lock_path = dir.join(format!("{key}.lock"));
                let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
                lock.lock().map_err(io("lock", &lock_path))?;
                // Another kmt may have rebuilt it while we waited for the lock.
                if entry.is_dir() && verify(&entry, depth(kind)).is_err() {
                    tracing::warn!(
                        "cache entry {kind}/{key} is damaged ({why}): removing it to rebuild it"
                    );
                    let aside = dir.join(format!(".{key}.damaged"));
                    let _ = fs::remove_dir_all(&aside);
                    fs::rename(&entry, &aside).map_err(io("move aside", &entry))?;
                    fs::remove_dir_all(&aside).map_err(io("remove", &aside))?;
                    return Ok(None);
                }
                Ok(entry.is_dir().then_some(entry))
            }
        }
    }

    /// Returns the entry `kind/key`, building it with `build` (given an empty staging directory)
    /// if it is not there or is damaged. `build`'s error type must absorb cache errors.
    pub fn get_or_build<E: From<CacheError>>(
        &self,
        kind: &str,
        key: &str,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(PathBuf, bool), E> {
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        if let Some(entry) = self.lookup(kind, key)? {
            return Ok((entry, false));
        }
        let entry = dir.join(key);
        let lock_path = dir.join(format!("{key}.lock"));
        let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
        // Blocks while another kmt builds the same key; the lock goes with the file handle.
        lock.lock().map_err(io("lock", &lock_path))?;
        if entry.is_dir() {
            return Ok((entry, false));
        }
        let staging = dir.join(format!(".{key}.staging"));
        // Holding the lock, any staging directory is what an interrupted build left: discard it.
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
        }
        fs::create_dir_all(&staging).map_err(io("create", &staging))?;
        // A failed or interrupted build leaves nothing behind: no half-made entry to find.
        if let Err(e) = build(&staging) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        record_sums(&staging)?;
        fs::rename(&staging, &entry).map_err(io("rename into place", &entry))?;
        Ok((entry, true))
    }
}

/// The file in each entry that lists its files' sizes and SHA-256s.
pub const SUMS: &str = "kmt-sums";

/// How much of an entry is checked on use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every file's size and SHA-256.
    Full,
    /// Every file's size (for large trees).
    Sizes,
}

/// The check each kind of entry gets on use.
pub fn depth(kind: &str) -> Depth {
    match kind {
        // A fetched source is one 150 MB tarball whose sha256 apt's signed indices vouched
        // for and `kmt-source` records; hashing it again on every lookup (twice per run) is
        // seconds on the path of every warm run.
        "source" | "debs" => Depth::Sizes,
        _ => Depth::Full,
    }
}

/// Every regular file under `dir` but the sums file, relative, sorted. Links are not followed.
fn files(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io("read", &d))? {
            let e = e.map_err(io("read", &d))?;
            let ft = e.file_type().map_err(io("stat", &e.path()))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap_or(&e.path())
                    .to_path_buf();
                if rel != Path::new(SUMS) {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    std::io::copy(&mut File::open(path)?, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// Writes `dir/kmt-sums`: one `SHA256 SIZE PATH` line per file.
pub fn record_sums(dir: &Path) -> Result<(), CacheError> {
    let mut text = String::new();
    for rel in files(dir)? {
        let p = dir.join(&rel);
        let size = fs::metadata(&p).map_err(io("stat", &p))?.len();
        let sum = sha256_file(&p).map_err(io("read", &p))?;
        text.push_str(&format!("{sum} {size} {}\n", rel.display()));
    }
    let path = dir.join(SUMS);
    fs::write(&path, text).map_err(io("write", &path))
}

/// Checks `dir` against its sums: Err says what is wrong (the first few problems).
pub fn verify(dir: &Path, depth: Depth) -> Result<(), String> {
    let sums =
        fs::read_to_string(dir.join(SUMS)).map_err(|e| format!("{SUMS} cannot be read: {e}"))?;
    let mut problems = Vec::new();
    let mut listed = 0;
    for line in sums.lines() {
        let mut it = line.splitn(3, ' ');
        let (Some(sum), Some(size), Some(rel)) = (it.next(), it.next(), it.next()) else {
            problems.push(format!("{SUMS} has a malformed line {line:?}"));
            continue;
        };
        listed += 1;
        let p = dir.join(rel);
        let want: u64 = size.parse().unwrap_or(u64::MAX);
        match fs::metadata(&p) {
            Err(_) => problems.push(format!("{rel} is missing")),
            Ok(m) if m.len() != want => {
                problems.push(format!("{rel} has {} bytes, {want} recorded", m.len()))
            }
            Ok(_) if depth == Depth::Full => match sha256_file(&p) {
                Ok(s) if s == sum => {}
                Ok(_) => problems.push(format!("{rel} does not match its SHA-256")),
                Err(e) => problems.push(format!("{rel} cannot be read: {e}")),
            },
            Ok(_) => {}
        }
        if problems.len() >= 3 {
            break;
        }
    }
    if listed == 0 && problems.is_empty() {
        problems.push(format!("{SUMS} lists no file"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

impl Cache {
    /// Removes every entry of `kinds` whose `kind/key` is not in `keep`, with its lock and log,
    /// skipping any entry another kmt holds the lock of (a build in progress). Returns the
    /// removed paths.
    pub fn prune(&self, kinds: &[&str], keep: &[String]) -> Result<Vec<PathBuf>, CacheError> {
        let mut removed = Vec::new();
        for kind in kinds {
            let dir = self.root.join(kind);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".lock") || !e.path().is_dir() {
                    continue;
                }
                let key = name
                    .trim_start_matches('.')
                    .trim_end_matches(".staging")
                    .to_string();
                if keep.contains(&format!("{kind}/{key}")) {
                    continue;
                }
                let lock_path = dir.join(format!("{key}.lock"));
                let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
                if lock.try_lock().is_err() {
                    continue;
                }
                fs::remove_dir_all(e.path()).map_err(io("remove", &e.path()))?;
                let _ = fs::remove_file(&lock_path);
                removed.push(e.path());
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_names_values_and_order() {
        let k = |pairs: &[(&str, &str)]| {
            let mut b = KeyBuilder::default();
            for (n, v) in pairs {
                b.text(n, v);
            }
            b.key()
        };
        assert_eq!(k(&[("a", "1")]), k(&[("a", "1")]));
        assert_ne!(k(&[("a", "1")]), k(&[("a", "2")]));
        assert_ne!(k(&[("a", "1"), ("b", "2")]), k(&[("b", "2"), ("a", "1")]));
        // No ambiguity from concatenation.
        assert_ne!(k(&[("ab", "c")]), k(&[("a", "bc")]));
    }

    #[test]
    fn an_entry_is_built_once() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: root.path().into(),
        };
        let mut calls = 0;
        for _ in 0..2 {
            let (p, _) = cache
                .get_or_build::<CacheError>("k", "abc", |s| {
                    calls += 1;
                    fs::write(s.join("out"), "x").unwrap();
                    Ok(())
                })
                .unwrap();
            assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "x");
        }
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_failed_build_leaves_no_entry_and_is_retried() {
        #[derive(Debug)]
        struct Boom;
        impl From<CacheError> for Boom {
            fn from(_: CacheError) -> Boom {
                Boom
            }
        }
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: root.path().into(),
        };
        let r = cache.get_or_build("k", "abc", |s| {
            fs::write(s.join("half"), "x").unwrap();
            Err(Boom)
        });
        assert!(r.is_err());
        assert!(!cache.path("k", "abc").exists());
        assert!(
            !root.path().join("k/.abc.staging").exists(),
            "a failed build leaves no staging directory behind"
        );
        let (p, built) = cache.get_or_build::<Boom>("k", "abc", |_| Ok(())).unwrap();
        assert!(built);
        assert!(
            !p.join("half").exists(),
            "the interrupted build's files were discarded"
        );
    }

    /// Regression: with the cached kernel image truncated, `kmt run` booted it and waited the
    /// whole timeout for an empty console. A damaged entry is now found on use and rebuilt.
    #[test]
    fn a_damaged_entry_is_noticed_and_rebuilt() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: root.path().into(),
        };
        let build = |s: &Path| -> Result<(), CacheError> {
            fs::write(s.join("image"), vec![7u8; 4096]).unwrap();
            fs::create_dir(s.join("sub")).unwrap();
            fs::write(s.join("sub/config"), "CONFIG_X=y\n").unwrap();
            Ok(())
        };
        let (p, built) = cache.get_or_build("kernels", "k1", build).unwrap();
        assert!(built);
        assert_eq!(cache.lookup("kernels", "k1").unwrap(), Some(p.clone()));
        // Truncated.
        fs::write(p.join("image"), vec![7u8; 100]).unwrap();
        assert!(verify(&p, Depth::Full)
            .unwrap_err()
            .contains("image has 100 bytes"));
        let (p, built) = cache.get_or_build("kernels", "k1", build).unwrap();
        assert!(built, "rebuilt");
        assert_eq!(fs::metadata(p.join("image")).unwrap().len(), 4096);
        // Same size, other bytes: only the full check sees it.
        fs::write(p.join("image"), vec![8u8; 4096]).unwrap();
        assert!(verify(&p, Depth::Sizes).is_ok());
        assert!(verify(&p, Depth::Full).unwrap_err().contains("SHA-256"));
        assert_eq!(cache.lookup("kernels", "k1").unwrap(), None);
        assert!(!p.exists(), "the damaged entry was removed");
        // A missing file, and an entry without sums.
        let (p, _) = cache.get_or_build("kernels", "k1", build).unwrap();
        fs::remove_file(p.join("sub/config")).unwrap();
        assert!(verify(&p, Depth::Sizes)
            .unwrap_err()
            .contains("sub/config is missing"));
        fs::remove_file(p.join(SUMS)).unwrap();
        assert!(verify(&p, Depth::Sizes).is_err());
    }

    /// An entry made before entries recorded their sums is adopted, not rebuilt: CI's warm cache
    /// survives the upgrade.
    #[test]
    fn an_entry_from_before_sums_is_adopted() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: root.path().into(),
        };
        let p = cache.path("kernels", "old");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("image"), "x").unwrap();
        assert_eq!(cache.lookup("kernels", "old").unwrap(), Some(p.clone()));
        assert!(p.join(SUMS).is_file());
        fs::write(p.join("image"), "").unwrap();
        assert_eq!(cache.lookup("kernels", "old").unwrap(), None);
    }

    #[test]
    fn prune_keeps_what_is_asked_and_what_is_locked() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: root.path().into(),
        };
        for key in ["old", "new", "busy"] {
            cache
                .get_or_build::<CacheError>("k", key, |_| Ok(()))
                .unwrap();
        }
        let busy = File::create(root.path().join("k/busy.lock")).unwrap();
        busy.lock().unwrap();
        let removed = cache.prune(&["k"], &["k/new".to_string()]).unwrap();
        assert_eq!(removed, [root.path().join("k/old")]);
        assert!(cache.path("k", "new").is_dir());
        assert!(cache.path("k", "busy").is_dir());
    }

    #[test]
    fn concurrent_builders_of_one_key_build_once() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: root.path().into(),
        };
        let built = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    cache
                        .get_or_build::<CacheError>("k", "same", |st| {
                            built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            fs::write(st.join("f"), "1").unwrap();
                            Ok(())
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
