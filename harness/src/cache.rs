//! A content-addressed build cache: an entry is a directory named by the hash of everything that
//! went into it. Entries appear atomically (built in a staging directory, then renamed) and
//! builders of the same key wait for one another (an exclusive lock per key).

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

    /// Returns the entry `kind/key`, building it with `build` (given an empty staging directory)
    /// if it is not there. `build`'s error type must absorb cache errors.
    pub fn get_or_build<E: From<CacheError>>(
        &self,
        kind: &str,
        key: &str,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(PathBuf, bool), E> {
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let entry = dir.join(key);
        if entry.is_dir() {
            return Ok((entry, false));
        }
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
        build(&staging)?;
        fs::rename(&staging, &entry).map_err(io("rename into place", &entry))?;
        Ok((entry, true))
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
        let (p, built) = cache.get_or_build::<Boom>("k", "abc", |_| Ok(())).unwrap();
        assert!(built);
        assert!(
            !p.join("half").exists(),
            "the interrupted build's files were discarded"
        );
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
