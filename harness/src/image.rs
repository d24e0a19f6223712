// SPDX-License-Identifier: GPL-2.0-only
//! The guest's initramfs: guest-tools built for the architecture, packed as `images/` says.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::arch::Arch;
use crate::cache::{Cache, CacheError, KeyBuilder};
use crate::cpio::{self, Entry, ManifestError};
use crate::proc::{Cmd, CommandFailed};

/// The manifest of what every architecture's initramfs holds.
pub const MANIFEST: &str = "images/initramfs.manifest";

const RECIPE: &str = "kmt-image-recipe-1";

/// Image build failures.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// `make -C guest-tools` (or the compiler query) failed.
    #[error(transparent)]
    Command(#[from] CommandFailed),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io { path, source }
}

/// A built initramfs in the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageBuild {
    pub initramfs: PathBuf,
    pub key: String,
    pub built: bool,
    pub seconds: f64,
    pub compiler: String,
}

/// Every file under `dir` (sorted, relative), for hashing.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io(&d))? {
            let p = e.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Builds (or finds in the cache) the initramfs for `arch`.
pub fn build(arch: &'static Arch, repo: &Path, cache: &Cache) -> Result<ImageBuild, ImageError> {
    let started = Instant::now();
    let compiler = crate::kernel::compiler_version(arch)?;
    let mut k = KeyBuilder::default();
    k.text("recipe", RECIPE)
        .text("arch", arch.name)
        .text("compiler", &compiler);
    for sub in ["guest-tools", "images"] {
        for f in files_under(&repo.join(sub))? {
            let rel = f.strip_prefix(repo).unwrap_or(&f).display().to_string();
            k.bytes(&rel, &fs::read(&f).map_err(io(&f))?);
        }
    }
    let key = format!("{}-{}", arch.name, k.key());
    let log = cache.root.join("logs").join(format!("image-{key}.log"));
    fs::create_dir_all(cache.root.join("logs")).map_err(io(&cache.root))?;
    let (dir, built) = cache.get_or_build::<ImageError>("images", &key, |staging| {
        let tools = staging.join("tools");
        fs::create_dir_all(&tools).map_err(io(&tools))?;
        let _ = fs::remove_file(&log);
        Cmd::new("make")
            .arg("-C")
            .arg(repo.join("guest-tools"))
            .arg(format!("ARCH={}", arch.name))
            .arg(format!("O={}", tools.display()))
            .run_logged(&format!("guest tools {}", arch.name), &log)?;
        let manifest = repo.join(MANIFEST);
        let text = fs::read_to_string(&manifest).map_err(io(&manifest))?;
        let entries = cpio::parse_manifest(&manifest, &text)?;
        let mut contents = Vec::new();
        for e in &entries {
            if let Entry::File { source, .. } = e {
                let p = tools.join(source);
                contents.push(fs::read(&p).map_err(io(&p))?);
            }
        }
        let mut files = contents.into_iter();
        let archive = cpio::write_newc(&entries, |_| files.next().unwrap_or_default());
        let out = staging.join("initramfs.cpio");
        fs::write(&out, archive).map_err(io(&out))?;
        fs::write(
            staging.join("ingredients.txt"),
            k.ingredients.join("\n") + "\n",
        )
        .map_err(io(staging))?;
        Ok(())
    })?;
    Ok(ImageBuild {
        initramfs: dir.join("initramfs.cpio"),
        key,
        built,
        seconds: started.elapsed().as_secs_f64(),
        compiler,
    })
}
