// SPDX-License-Identifier: GPL-2.0-only
//! A user's kernel git tree, built commit by commit (for `kmt bisect`) without ever touching it.
//!
//! kmt clones the tree into the cache with `git clone --shared` (the clone borrows the user's
//! objects, so nothing is copied and any commit of theirs can be checked out by hash). For each
//! commit the patched tree is made in a private index (`git read-tree` + `git apply --cached`,
//! the working tree untouched) and then checked out, so git rewrites only the files that differ
//! from the previous step: the persistent build directory next to the clone then rebuilds only
//! what those files reach. The user's repository is only read (`rev-parse`, `rev-list`, `show`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::cache::{Cache, KeyBuilder};
use crate::proc::{Cmd, CommandFailed};

/// What went wrong with the user's tree or kmt's clone of it.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// DIR is not a git work tree.
    #[error("--kernel-src {}: not a git work tree ({why})", .dir.display())]
    NotGit { dir: PathBuf, why: String },
    /// A revision does not name a commit.
    #[error("--kernel-src {}: {rev:?} is not a commit", .dir.display())]
    BadRevision { dir: PathBuf, rev: String },
    /// GOOD is not an ancestor of BAD.
    #[error("--good {good} is not an ancestor of --bad {bad}: nothing to bisect between them")]
    NotAncestor { good: String, bad: String },
    /// No commit between GOOD and BAD.
    #[error("--bad {bad} is --good {good} or its parent's only child on the first-parent line: there is no commit in between to test")]
    Empty { good: String, bad: String },
    /// A git command of kmt's own failed.
    #[error(transparent)]
    Command(#[from] CommandFailed),
    /// A file of kmt's own could not be made.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One commit of the user's tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Commit {
    /// The full hash.
    pub hash: String,
    /// The first line of its message.
    pub subject: String,
}

impl Commit {
    /// The hash's first 12 digits, as the kernel's `Fixes:` tags quote it.
    pub fn short(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }
}

/// The user's tree and kmt's clone of it.
#[derive(Debug)]
pub struct Tree {
    /// The user's work tree (only read).
    pub user: PathBuf,
    /// kmt's directory for it in the cache: `clone/`, `build-*/`, `logs/`, `lock`.
    pub root: PathBuf,
    /// The clone kmt checks commits out in.
    pub clone: PathBuf,
    /// Held while kmt uses the clone: one bisect per tree at a time.
    _lock: File,
}

fn git(dir: &Path) -> Cmd {
    Cmd::new("git")
        .arg("-C")
        .arg(dir)
        .env("GIT_AUTHOR_NAME", "kmt")
        .env("GIT_AUTHOR_EMAIL", "kmt@localhost")
        .env("GIT_COMMITTER_NAME", "kmt")
        .env("GIT_COMMITTER_EMAIL", "kmt@localhost")
        .env("GIT_AUTHOR_DATE", "@0 +0000")
        .env("GIT_COMMITTER_DATE", "@0 +0000")
}

/// The key of the user's tree in the cache: its canonical path.
fn tree_key(user: &Path) -> String {
    let mut k = KeyBuilder::default();
    k.text("tree", &user.to_string_lossy());
    k.key()
}

impl Tree {
    /// Opens (cloning on first use) kmt's clone of the git tree `user`, and takes its lock
    /// (waiting for another kmt that holds it).
    pub fn open(user: &Path, cache: &Cache) -> Result<Tree, TreeError> {
        let not_git = |why: String| TreeError::NotGit {
            dir: user.into(),
            why,
        };
        let user = fs::canonicalize(user).map_err(|e| not_git(e.to_string()))?;
        let top = git(&user)
            .args(["rev-parse", "--show-toplevel"])
            .read()
            .map_err(|e| not_git(e.status))?;
        let user = PathBuf::from(top.trim());
        let root = cache.root.join("trees").join(tree_key(&user));
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| TreeError::Io { what, path, source }
        };
        fs::create_dir_all(root.join("logs")).map_err(io("create", &root))?;
        let lock_path = root.join("lock");
        let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
        lock.lock().map_err(io("lock", &lock_path))?;
        fs::write(root.join("user-tree"), user.to_string_lossy().as_bytes())
            .map_err(io("write", &root))?;
        let clone = root.join("clone");
        if !clone.join(".git").is_dir() {
            let _ = fs::remove_dir_all(&clone);
            Cmd::new("git")
                .args(["clone", "--quiet", "--shared", "--no-checkout"])
                .arg(&user)
                .arg(&clone)
                .run_logged("cloning the tree", &root.join("logs/clone.log"))?;
        }
        Ok(Tree {
            user,
            root,
            clone,
            _lock: lock,
        })
    }

    /// The commit `rev` names in the user's tree.
    pub fn resolve(&self, rev: &str) -> Result<Commit, TreeError> {
        let bad = || TreeError::BadRevision {
            dir: self.user.clone(),
            rev: rev.into(),
        };
        let hash = git(&self.user)
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{rev}^{{commit}}"))
            .read()
            .map_err(|_| bad())?;
        let hash = hash.trim().to_string();
        let subject = git(&self.user)
            .args(["log", "-1", "--format=%s", &hash])
            .read()
            .map_err(|_| bad())?;
        Ok(Commit {
            hash,
            subject: subject.trim().to_string(),
        })
    }

    /// The commits after `good` up to and including `bad` on `bad`'s first-parent line, oldest
    /// first (as `git bisect --first-parent` sees them).
    pub fn range(&self, good: &Commit, bad: &Commit) -> Result<Vec<Commit>, TreeError> {
        let ancestor = git(&self.user)
            .args(["merge-base", "--is-ancestor", &good.hash, &bad.hash])
            .read()
            .is_ok();
        if !ancestor {
            return Err(TreeError::NotAncestor {
                good: good.short().into(),
                bad: bad.short().into(),
            });
        }
        let out = git(&self.user)
            .args(["rev-list", "--reverse", "--first-parent", "--format=%H %s"])
            .arg(format!("{}..{}", good.hash, bad.hash))
            .read()?;
        let commits = parse_rev_list(&out);
        if commits.is_empty() {
            return Err(TreeError::Empty {
                good: good.short().into(),
                bad: bad.short().into(),
            });
        }
        Ok(commits)
    }

    /// The top Makefile of `commit`, read from the user's objects.
    pub fn makefile(&self, commit: &Commit) -> Result<String, TreeError> {
        Ok(git(&self.user)
            .arg("show")
            .arg(format!("{}:Makefile", commit.hash))
            .read()?)
    }

    /// Checks `commit` with `patches` applied out in the clone, rewriting only the files that
    /// differ from what is checked out now. Returns the patched tree's hash. A patch that does
    /// not apply is an `Err` naming it (the working tree is then left as it was).
    pub fn checkout(&self, commit: &Commit, patches: &[PathBuf]) -> Result<String, TreeError> {
        let log = self.root.join("logs/checkout.log");
        let index = self.clone.join(".git/kmt-index");
        let staged = |c: Cmd| c.env("GIT_INDEX_FILE", &index.to_string_lossy());
        staged(git(&self.clone).args(["read-tree", &commit.hash]))
            .run_logged("reading the commit's tree", &log)?;
        for p in patches {
            // A tree that already has the patch (a user's kmemtrace branch) is built as it is.
            let already =
                staged(git(&self.clone).args(["apply", "--cached", "--reverse", "--check"]))
                    .arg(p)
                    .read()
                    .is_ok();
            if !already {
                staged(git(&self.clone).args(["apply", "--cached"]))
                    .arg(p)
                    .run_logged("applying the kmemtrace series", &log)?;
            }
        }
        let tree = staged(git(&self.clone).arg("write-tree")).read()?;
        let tree = tree.trim().to_string();
        let patched = git(&self.clone)
            .args(["commit-tree", &tree, "-p", &commit.hash, "-m"])
            .arg(format!("kmt: {} with the kmemtrace series", commit.short()))
            .read()?;
        // read-tree, not checkout: it needs neither the tree checked out before (the user may
        // have removed its commits since) nor a clean state, and like checkout it rewrites
        // only the files whose content differs from the index.
        git(&self.clone)
            .args(["read-tree", "--reset", "-u", &tree])
            .run_logged("checking the patched commit out", &log)?;
        git(&self.clone)
            .args(["update-ref", "--no-deref", "HEAD", patched.trim()])
            .run_logged("checking the patched commit out", &log)?;
        Ok(tree)
    }

    /// The build directory for builds whose [`crate::kernel::build_dir_key`] is `key`.
    pub fn build_dir(&self, key: &str) -> PathBuf {
        self.root.join(format!("build-{key}"))
    }
}

/// `git rev-list --format=%H %s` output: a `commit HASH` line, then `HASH SUBJECT`, per commit.
pub fn parse_rev_list(out: &str) -> Vec<Commit> {
    out.lines()
        .filter(|l| !l.starts_with("commit "))
        .filter_map(|l| {
            let (hash, subject) = l.split_once(' ').unwrap_or((l, ""));
            (hash.len() >= 40 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Commit {
                hash: hash.to_string(),
                subject: subject.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    }

    #[test]
    fn rev_list_output_is_read_per_commit() {
        let h = "a".repeat(40);
        let out = format!("commit {h}\n{h} fs/pipe: grow the default\ncommit {h}\n{h} \n");
        let c = parse_rev_list(&out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].subject, "fs/pipe: grow the default");
        assert_eq!(c[0].short(), "aaaaaaaaaaaa");
    }

    /// The user's tree is only read: after a range, a checkout with a patch and another
    /// checkout, its HEAD, index and files are what they were, and the clone rewrote only the
    /// files that changed.
    #[test]
    fn checkouts_patch_the_clone_and_leave_the_user_tree_alone() {
        let d = tempfile::tempdir().unwrap();
        let user = d.path().join("linux");
        fs::create_dir(&user).unwrap();
        sh(
            &user,
            "git init -q; printf 'VERSION = 6\\nPATCHLEVEL = 12\\n' > Makefile; echo a > a.c; echo b > b.c; echo c > c.c; \
             git add .; git commit -q -m base; echo a2 > a.c; git commit -q -am 'change a'; \
             echo b2 > b.c; git rm -q c.c; git commit -q -am 'change b'",
        );
        let patch = d.path().join("p.patch");
        fs::write(
            &patch,
            "--- a/b.c\n+++ b/b.c\n@@ -1 +1,2 @@\n b2\n+traced\n",
        )
        .unwrap();
        let cache = Cache {
            root: d.path().join("cache"),
        };
        let t = Tree::open(&user, &cache).unwrap();
        let base = t.resolve("HEAD~2").unwrap();
        let head = t.resolve("HEAD").unwrap();
        let r = t.range(&base, &head).unwrap();
        assert_eq!(
            r.iter().map(|c| c.subject.as_str()).collect::<Vec<_>>(),
            ["change a", "change b"]
        );
        assert!(t.makefile(&head).unwrap().contains("PATCHLEVEL = 12"));
        // The patch needs b2: on the first commit it does not apply.
        assert!(t.checkout(&r[0], std::slice::from_ref(&patch)).is_err());
        t.checkout(&r[0], &[]).unwrap();
        assert_eq!(fs::read_to_string(t.clone.join("a.c")).unwrap(), "a2\n");
        let a_mtime = fs::metadata(t.clone.join("a.c"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        t.checkout(&r[1], std::slice::from_ref(&patch)).unwrap();
        assert_eq!(
            fs::read_to_string(t.clone.join("b.c")).unwrap(),
            "b2\ntraced\n"
        );
        assert!(
            !t.clone.join("c.c").exists(),
            "a file the commit removes is removed"
        );
        assert_eq!(
            fs::metadata(t.clone.join("a.c"))
                .unwrap()
                .modified()
                .unwrap(),
            a_mtime,
            "a file the step does not change is not rewritten"
        );
        // Already applied: skipped, not applied twice.
        t.checkout(&r[1], &[patch.clone(), patch]).unwrap();
        let status = Cmd::new("git")
            .args(["-C"])
            .arg(&user)
            .args(["status", "--porcelain"])
            .read()
            .unwrap();
        assert_eq!(status, "");
        assert_eq!(t.resolve("HEAD").unwrap(), head);
        assert!(t.range(&head, &base).is_err());
        assert!(matches!(
            t.range(&head, &head),
            Err(TreeError::NotAncestor { .. }) | Err(TreeError::Empty { .. })
        ));
        assert!(matches!(
            t.resolve("nosuch"),
            Err(TreeError::BadRevision { .. })
        ));
    }
}
