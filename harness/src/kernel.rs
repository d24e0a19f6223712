// SPDX-License-Identifier: GPL-2.0-only
//! Building the kmemtrace kernel for an architecture: source, patches, Kconfig fragments on
//! `tinyconfig`, a check that every requested symbol survived, an out-of-tree build, all cached
//! by content.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::arch::Arch;
use crate::cache::{Cache, CacheError, KeyBuilder};
use crate::kernels::{Allocator, KernelVersion};
use crate::proc::{Cmd, CommandFailed};

/// Bumped whenever the recipe below changes in a way that changes the output.
const RECIPE: &str = "kmt-kernel-recipe-1";

/// Kernel build failures.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel source is missing.
    #[error("the kernel source {} is missing (pass --kernel-src DIR with a kernel tree)", .path.display())]
    NoSource { path: PathBuf },
    /// The tree given with --kernel-src is not a kernel tree.
    #[error("--kernel-src {}: not a kernel source tree (it has no Makefile)", .0.display())]
    NotATree(PathBuf),
    /// A file of the repository's kernel/ directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The patch series does not name a file that exists, or is empty.
    #[error("bad patch series {}: {what}", path.display())]
    Series { path: PathBuf, what: String },
    /// A source kmt fetches itself is not in its cache (and this command does not fetch).
    #[error("{package} is not in kmt's cache yet: `kmt setup` or a build of it fetches it from Debian's {suite} (or pass --kernel-src DIR)")]
    NotFetched {
        package: &'static str,
        suite: &'static str,
    },
    /// A source kmt fetches itself could not be fetched.
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// A command of the build failed.
    #[error(transparent)]
    Command(#[from] CommandFailed),
    /// Kconfig symbols that were asked for did not survive `olddefconfig`.
    #[error("Kconfig symbols requested by the fragments did not survive olddefconfig (missing dependency?):\n{}\nresulting config: {}", list.join("\n"), config.display())]
    Config { list: Vec<String>, config: PathBuf },
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn read(path: &Path) -> Result<Vec<u8>, KernelError> {
    fs::read(path).map_err(|source| KernelError::Read {
        path: path.into(),
        source,
    })
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct KernelRequest {
    pub arch: &'static Arch,
    /// The kernel version: its source package and patch series.
    pub kernel: &'static KernelVersion,
    /// The slab allocator, a Kconfig fragment merged after the architecture's.
    pub allocator: &'static Allocator,
    /// The kmt repository (for kernel/patches and kernel/config).
    pub repo: PathBuf,
    /// A user's own kernel tree instead of Debian's tarball.
    pub kernel_src: Option<PathBuf>,
    /// Extra Kconfig fragments, merged last.
    pub extra_fragments: Vec<PathBuf>,
}

/// A built kernel in the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelBuild {
    /// The kernel version (`6.12`, `6.1`) and slab allocator built.
    pub version: &'static str,
    pub allocator: &'static str,
    pub dir: PathBuf,
    pub image: PathBuf,
    pub system_map: PathBuf,
    pub config: PathBuf,
    pub key: String,
    /// Whether this call built it (false: it came from the cache).
    pub built: bool,
    pub seconds: f64,
    pub source_identity: String,
    pub compiler: String,
    /// SHA-256 (short) of the final .config.
    pub config_hash: String,
}

impl KernelRequest {
    /// A request for the default kernel (6.12) and allocator (SLUB) on `arch`.
    pub fn new(arch: &'static Arch, repo: PathBuf) -> KernelRequest {
        let kernel = crate::kernels::default_kernel();
        KernelRequest {
            arch,
            kernel,
            allocator: kernel.default_allocator(),
            repo,
            kernel_src: None,
            extra_fragments: Vec::new(),
        }
    }

    /// The tarball of the chosen version's Debian source package and its Debian version, as kmt
    /// fetched it into `cache` (looked up without the network).
    fn tarball(&self, cache: &Cache) -> Result<(PathBuf, String), KernelError> {
        crate::fetch::find(cache, self.kernel)
            .map(|f| (f.tarball, f.version))
            .ok_or(KernelError::NotFetched {
                package: self.kernel.package,
                suite: self.kernel.suite,
            })
    }

    fn no_source(&self, path: &Path) -> KernelError {
        KernelError::NoSource { path: path.into() }
    }
}

/// The patch files named by the `series` of `kernel`'s series directory, in order.
pub fn series(repo: &Path, kernel: &KernelVersion) -> Result<Vec<PathBuf>, KernelError> {
    let dir = repo.join(kernel.patches);
    let path = dir.join("series");
    let text = String::from_utf8_lossy(&read(&path)?).into_owned();
    let names = parse_series(&text);
    if names.is_empty() {
        return Err(KernelError::Series {
            path,
            what: "it names no patch".into(),
        });
    }
    let mut out = Vec::new();
    for n in names {
        let p = dir.join(&n);
        if !p.is_file() {
            return Err(KernelError::Series {
                path,
                what: format!("{n} does not exist"),
            });
        }
        out.push(p);
    }
    Ok(out)
}

/// Quilt's series format: one patch per line, `#` comments, options after the name ignored.
pub fn parse_series(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

pub use crate::kernels::parse_source;

/// Compares the installed Debian source with the one the series was made against: None when
/// they match, else what differs.
fn source_mismatch(req: &KernelRequest, version: &str, sha256: Option<&str>) -> Option<String> {
    let text = fs::read_to_string(req.repo.join(req.kernel.patches).join("SOURCE")).ok()?;
    let want = parse_source(&text);
    let mut why = Vec::new();
    if let Some(v) = want.get("version").filter(|v| *v != version) {
        why.push(format!(
            "the series was made against {} {v}, kmt has {version}",
            req.kernel.package
        ));
    }
    if let (Some(w), Some(h)) = (want.get("sha256"), sha256) {
        if w != h {
            why.push(format!(
                "the tarball's sha256 is {h}, the series expects {w}"
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The Kconfig fragments of a request, in merge order: every kernel's, the version's, the
/// architecture's, the allocator's, then the user's.
pub fn fragments(req: &KernelRequest) -> Vec<PathBuf> {
    let mut v = vec![req.repo.join("kernel/config/common.config")];
    v.extend(req.kernel.fragment.map(|f| req.repo.join(f)));
    v.extend([
        req.repo.join(req.arch.fragment),
        req.repo.join(req.allocator.fragment),
    ]);
    v.extend(req.extra_fragments.iter().cloned());
    v
}

/// A symbol a fragment sets: `CONFIG_X=v` gives `Some(v)`, `# CONFIG_X is not set` gives None.
pub fn requested_symbols(fragment: &str) -> BTreeMap<String, Option<String>> {
    let mut m = BTreeMap::new();
    for line in fragment.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                m.insert(format!("CONFIG_{name}"), None);
            }
        } else if line.starts_with("CONFIG_") {
            // A value may be followed by a comment only after whitespace: `CONFIG_X=y  # why`.
            let assignment = line.split(" #").next().unwrap_or(line).trim();
            if let Some((k, v)) = assignment.split_once('=') {
                m.insert(k.to_string(), Some(v.trim().to_string()));
            }
        }
    }
    m
}

/// Requested symbols whose value in the final config differs, as readable lines.
pub fn missing_symbols(requested: &BTreeMap<String, Option<String>>, config: &str) -> Vec<String> {
    let got = requested_symbols(config);
    requested
        .iter()
        .filter_map(|(k, want)| {
            let have = got.get(k).cloned().flatten();
            let unset_ok = want.as_deref().is_none_or(|w| w == "n") && have.is_none();
            if unset_ok || have == *want {
                return None;
            }
            Some(format!(
                "  {k}: wanted {}, got {}",
                want.as_deref().unwrap_or("not set"),
                have.as_deref().unwrap_or("not set")
            ))
        })
        .collect()
}

/// Checks what a request names before anything is built: the user's kernel tree has a
/// Makefile, every extra fragment is a readable file. Cheap; creates nothing.
pub fn check_request(req: &KernelRequest) -> Result<(), KernelError> {
    if let Some(dir) = &req.kernel_src {
        if !dir.join("Makefile").is_file() {
            return Err(KernelError::NotATree(dir.clone()));
        }
    }
    for f in &req.extra_fragments {
        if !f.is_file() {
            return Err(KernelError::Read {
                path: f.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a readable Kconfig fragment file",
                ),
            });
        }
        fs::File::open(f).map_err(|source| KernelError::Read {
            path: f.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Where the source comes from, and a string that identifies its content.
fn source_identity(req: &KernelRequest, cache: &Cache) -> Result<String, KernelError> {
    match &req.kernel_src {
        Some(dir) => {
            if !dir.join("Makefile").is_file() {
                return Err(req.no_source(dir));
            }
            let git = |args: &[&str]| Cmd::new("git").arg("-C").arg(dir).args(args).read();
            match git(&["rev-parse", "HEAD"]) {
                Ok(head) => {
                    let diff = git(&["diff", "HEAD"]).unwrap_or_default();
                    let mut k = KeyBuilder::default();
                    k.text("diff", &diff);
                    Ok(format!(
                        "tree {} git {} dirty {}",
                        dir.display(),
                        head.trim(),
                        k.key()
                    ))
                }
                Err(_) => Ok(format!(
                    "tree {} (not git: identified by path)",
                    dir.display()
                )),
            }
        }
        None => {
            let (tarball, version) = req.tarball(cache)?;
            let meta = fs::metadata(&tarball).map_err(|_| req.no_source(&tarball))?;
            let package = req.kernel.package;
            Ok(format!("debian {package} {version} size {}", meta.len()))
        }
    }
}

/// The first line of `CC --version`.
pub fn compiler_version(arch: &Arch) -> Result<String, CommandFailed> {
    let out = Cmd::new(&arch.cc()).arg("--version").read()?;
    Ok(out.lines().next().unwrap_or("").to_string())
}

/// The cache key of a kernel build and the ingredients behind it.
fn kernel_key(
    req: &KernelRequest,
    identity: &str,
    compiler: &str,
) -> Result<KeyBuilder, KernelError> {
    let mut k = KeyBuilder::default();
    k.text("recipe", RECIPE)
        .text("arch", req.arch.name)
        .text("source", identity);
    k.text("compiler", compiler);
    for p in series(&req.repo, req.kernel)? {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        k.bytes(&format!("patch {name}"), &read(&p)?);
    }
    key_fragments(&mut k, req)?;
    Ok(k)
}

/// Adds `req`'s Kconfig fragments to a key, by name and content, never by path: another clone
/// of the repository must hit the same entry.
fn key_fragments(k: &mut KeyBuilder, req: &KernelRequest) -> Result<(), KernelError> {
    for f in fragments(req) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        k.bytes(&format!("fragment {name}"), &read(&f)?);
    }
    Ok(())
}

/// The cache key of the patched source tree (shared by every architecture).
fn source_key(req: &KernelRequest, identity: &str) -> Result<String, KernelError> {
    let mut k = KeyBuilder::default();
    k.text("recipe", RECIPE).text("source", identity);
    for p in series(&req.repo, req.kernel)? {
        k.bytes("patch", &read(&p)?);
    }
    Ok(k.key())
}

/// The cache entries (`source/KEY`, `kernels/KEY`) a build of `req` uses now, without building.
pub fn current_entries(req: &KernelRequest, cache: &Cache) -> Result<[String; 2], KernelError> {
    let identity = source_identity(req, cache)?;
    let compiler = compiler_version(req.arch)?;
    let kernel = format!(
        "{}-{}",
        req.arch.name,
        kernel_key(req, &identity, &compiler)?.key()
    );
    Ok([
        format!("source/{}", source_key(req, &identity)?),
        format!("kernels/{kernel}"),
    ])
}

/// Unpacks Debian's tarball and applies the series, as a cache entry of its own (shared by all
/// architectures).
fn prepared_source(
    req: &KernelRequest,
    cache: &Cache,
    identity: &str,
) -> Result<PathBuf, KernelError> {
    let patches = series(&req.repo, req.kernel)?;
    let key = source_key(req, identity)?;
    let log = cache.root.join("logs").join(format!("source-{key}.log"));
    fs::create_dir_all(log.parent().unwrap()).map_err(|source| KernelError::Read {
        path: log.clone(),
        source,
    })?;
    let (dir, _) = cache.get_or_build::<KernelError>("source", &key, |staging| {
        let tree = staging.join("linux");
        match &req.kernel_src {
            None => {
                Cmd::new("tar")
                    .arg("xf")
                    .arg(&req.tarball(cache)?.0)
                    .arg("-C")
                    .arg(staging)
                    .run_logged("unpacking kernel source", &log)?;
                let top = fs::read_dir(staging)
                    .map_err(|source| KernelError::Read {
                        path: staging.into(),
                        source,
                    })?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.is_dir())
                    .ok_or_else(|| req.no_source(staging))?;
                fs::rename(&top, &tree)
                    .map_err(|source| KernelError::Read { path: top, source })?;
            }
            Some(src) => {
                // Never touch the user's tree: patch a copy.
                Cmd::new("cp")
                    .args(["-a", "--reflink=auto"])
                    .arg(src)
                    .arg(&tree)
                    .run_logged("copying kernel tree", &log)?;
            }
        }
        let mismatch = match &req.kernel_src {
            None => {
                let sha = Cmd::new("sha256sum")
                    .arg(&req.tarball(cache)?.0)
                    .read()
                    .ok();
                let sha = sha.as_deref().and_then(|s| s.split_whitespace().next());
                let version = identity.split_whitespace().nth(2).unwrap_or("unknown");
                source_mismatch(req, version, sha)
            }
            Some(_) => None,
        };
        if let Some(m) = &mismatch {
            tracing::warn!("{m}; applying the series anyway");
        }
        for p in &patches {
            let already = Cmd::new("patch")
                .args(["-p1", "-R", "--dry-run", "-s", "-f", "-i"])
                .arg(p)
                .dir(&tree)
                .read()
                .is_ok();
            if req.kernel_src.is_some() && already {
                tracing::info!("{} is already in the tree", p.display());
                continue;
            }
            let applied = Cmd::new("patch")
                .args(["-p1", "-N", "-s", "-i"])
                .arg(p)
                .dir(&tree)
                .run_logged("applying patches", &log);
            if let Err(mut e) = applied {
                if let Some(m) = &mismatch {
                    e.status = format!(
                        "{} (note: {m}; the series does not apply to it: pass --kernel-src DIR \
                         with a tree it applies to)",
                        e.status
                    );
                }
                return Err(e.into());
            }
        }
        Ok(())
    })?;
    Ok(dir.join("linux"))
}

/// Builds (or finds in the cache) the kernel `req` asks for.
pub fn build(req: &KernelRequest, cache: &Cache) -> Result<KernelBuild, KernelError> {
    let started = Instant::now();
    if req.kernel_src.is_none() {
        let log = cache
            .root
            .join("logs")
            .join(format!("fetch-{}.log", req.kernel.package));
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir).map_err(|source| KernelError::Read {
                path: dir.into(),
                source,
            })?;
        }
        crate::fetch::fetch(cache, req.kernel, &log)?;
    }
    let identity = source_identity(req, cache)?;
    let compiler = compiler_version(req.arch)?;
    let keyb = kernel_key(req, &identity, &compiler)?;
    let key = format!("{}-{}", req.arch.name, keyb.key());
    let log = cache.root.join("logs").join(format!("kernel-{key}.log"));
    // Verified on use: a damaged entry is reported, removed and rebuilt below.
    let (dir, built) = if let Some(dir) = cache.lookup("kernels", &key)? {
        (dir, false)
    } else {
        let src = prepared_source(req, cache, &identity)?;
        cache.get_or_build::<KernelError>("kernels", &key, |staging| {
            let _ = fs::remove_file(&log);
            build_into(req, &src, staging, &log)?;
            write_ingredients(staging, &keyb)
        })?
    };
    finished(req, dir, key, built, started, identity, compiler)
}

/// `ingredients.txt` of a kernel entry: what its key was made of, one line each.
fn write_ingredients(staging: &Path, keyb: &KeyBuilder) -> Result<(), KernelError> {
    let ingredients = keyb.ingredients.join("\n") + "\n";
    fs::write(staging.join("ingredients.txt"), ingredients).map_err(|source| KernelError::Read {
        path: staging.into(),
        source,
    })
}

/// The [`KernelBuild`] of the cache entry `dir`.
fn finished(
    req: &KernelRequest,
    dir: PathBuf,
    key: String,
    built: bool,
    started: Instant,
    source_identity: String,
    compiler: String,
) -> Result<KernelBuild, KernelError> {
    let config = dir.join("config");
    let config_hash = {
        let mut k = KeyBuilder::default();
        k.bytes("config", &read(&config)?);
        k.key()
    };
    Ok(KernelBuild {
        version: req.kernel.name,
        allocator: req.allocator.name,
        image: dir.join("image"),
        system_map: dir.join("System.map"),
        config,
        dir,
        key,
        built,
        seconds: started.elapsed().as_secs_f64(),
        source_identity,
        compiler,
        config_hash,
    })
}

/// `make -C SRC O=BUILD ARCH=… CROSS_COMPILE=… -jN TARGETS`.
fn make(req: &KernelRequest, src: &Path, build: &Path, targets: &[&str]) -> Cmd {
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Cmd::new("make")
        .arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg(format!("ARCH={}", req.arch.make_arch))
        .arg(format!("CROSS_COMPILE={}", req.arch.cross_compile()))
        .arg(format!("-j{jobs}"))
        .args(targets.iter().copied())
}

/// tinyconfig + fragments + olddefconfig in `build`, and the check that every requested symbol
/// survived (a rejected config is kept beside `keep_rejected`).
fn configure(
    req: &KernelRequest,
    src: &Path,
    build: &Path,
    log: &Path,
    keep_rejected: &Path,
) -> Result<(), KernelError> {
    let label = format!("kernel {}", req.arch.name);
    make(req, src, build, &["tinyconfig"]).run_logged(&label, log)?;
    let dot_config = build.join(".config");
    let mut merged = read(&dot_config)?;
    let mut requested = BTreeMap::new();
    for f in fragments(req) {
        let text = read(&f)?;
        requested.extend(requested_symbols(&String::from_utf8_lossy(&text)));
        merged.push(b'\n');
        merged.extend_from_slice(&text);
    }
    fs::write(&dot_config, merged).map_err(|source| KernelError::Read {
        path: dot_config.clone(),
        source,
    })?;
    make(req, src, build, &["olddefconfig"]).run_logged(&label, log)?;
    let final_config = String::from_utf8_lossy(&read(&dot_config)?).into_owned();
    let missing = missing_symbols(&requested, &final_config);
    if !missing.is_empty() {
        let kept = keep_rejected.with_extension("rejected.config");
        let _ = fs::copy(&dot_config, &kept);
        return Err(KernelError::Config {
            list: missing,
            config: kept,
        });
    }
    Ok(())
}

/// Builds the image in `build` (configured) and copies image, System.map and config into `staging`.
fn make_image(
    req: &KernelRequest,
    src: &Path,
    build: &Path,
    staging: &Path,
    log: &Path,
) -> Result<(), KernelError> {
    let label = format!("kernel {}", req.arch.name);
    make(req, src, build, &[req.arch.image_target]).run_logged(&label, log)?;
    let copy = |from: &Path, to: &str| {
        fs::copy(from, staging.join(to))
            .map(|_| ())
            .map_err(|source| KernelError::Read {
                path: from.into(),
                source,
            })
    };
    copy(&build.join(req.arch.image), "image")?;
    copy(&build.join("System.map"), "System.map")?;
    copy(&build.join(".config"), "config")
}

/// tinyconfig + fragments + olddefconfig, the symbol check, and the image build, in a build
/// directory of its own that is removed afterwards.
fn build_into(
    req: &KernelRequest,
    src: &Path,
    staging: &Path,
    log: &Path,
) -> Result<(), KernelError> {
    let build = staging.join("build");
    fs::create_dir_all(&build).map_err(|source| KernelError::Read {
        path: build.clone(),
        source,
    })?;
    configure(req, src, &build, log, staging)?;
    make_image(req, src, &build, staging, log)?;
    fs::remove_dir_all(&build).map_err(|source| KernelError::Read {
        path: build,
        source,
    })?;
    Ok(())
}

/// Where [`build_incremental`] builds.
#[derive(Debug, Clone)]
pub struct Incremental<'a> {
    /// The patched source tree, as checked out for this build.
    pub src: &'a Path,
    /// What identifies the source's content (e.g. `git tree HASH`): the cache key's source.
    pub identity: String,
    /// A build directory kept from one build to the next (created when missing).
    pub build_dir: &'a Path,
    /// The build's log.
    pub log: &'a Path,
}

/// The key of the build directory [`build_incremental`] uses for `req`: one directory per
/// architecture, kernel version, allocator, set of fragments and compiler.
pub fn build_dir_key(req: &KernelRequest) -> Result<String, KernelError> {
    let mut k = KeyBuilder::default();
    k.text("recipe", RECIPE)
        .text("arch", req.arch.name)
        .text("version", req.kernel.name)
        .text("compiler", &compiler_version(req.arch)?);
    key_fragments(&mut k, req)?;
    Ok(format!("{}-{}", req.arch.name, k.key()))
}

/// Builds `req` from an already patched source tree in a build directory kept between builds,
/// so that a build after a small change of the source rebuilds only what changed (Kbuild's own
/// dependency tracking), and stores the result in the cache under the same kind of key as
/// [`build`] (by `inc.identity`, never by path): a source seen before is not built again.
pub fn build_incremental(
    req: &KernelRequest,
    inc: &Incremental<'_>,
    cache: &Cache,
) -> Result<KernelBuild, KernelError> {
    let started = Instant::now();
    let compiler = compiler_version(req.arch)?;
    let keyb = kernel_key(req, &inc.identity, &compiler)?;
    let key = format!("{}-{}", req.arch.name, keyb.key());
    let (dir, built) = cache.get_or_build::<KernelError>("kernels", &key, |staging| {
        fs::create_dir_all(inc.build_dir).map_err(|source| KernelError::Read {
            path: inc.build_dir.into(),
            source,
        })?;
        // The configuration is made afresh for every source, as a cold build makes it (a
        // commit may change Kconfig); Kbuild rebuilds only what a changed symbol reaches.
        configure(req, inc.src, inc.build_dir, inc.log, staging)?;
        make_image(req, inc.src, inc.build_dir, staging, inc.log)?;
        write_ingredients(staging, &keyb)
    })?;
    finished(
        req,
        dir,
        key,
        built,
        started,
        inc.identity.clone(),
        compiler,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_source_file_names_its_version_and_checksum() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for k in crate::kernels::KERNELS {
            let text = fs::read_to_string(repo.join(k.patches).join("SOURCE")).unwrap();
            let s = parse_source(&text);
            assert_eq!(s["package"], k.package);
            assert_eq!(s["tarball"], k.tarball);
            assert!(
                s["version"].starts_with(&format!("{}.", k.name)),
                "{}",
                s["version"]
            );
            assert_eq!(s["sha256"].len(), 64);
            let req = KernelRequest {
                kernel: k,
                ..KernelRequest::new(crate::arch::lookup("x86_64").unwrap(), repo.clone())
            };
            assert_eq!(
                source_mismatch(&req, &s["version"], Some(&s["sha256"])),
                None
            );
            let m = source_mismatch(&req, "6.0.1-1", Some("00")).unwrap();
            assert!(m.contains("6.0.1-1") && m.contains("sha256"), "{m}");
            assert!(series(&repo, k).unwrap().len() >= 4);
        }
    }

    /// Regression: the key once held the fragments' absolute paths, so a fresh clone (CI's)
    /// missed the cache and rebuilt every kernel.
    #[test]
    fn the_kernel_key_does_not_depend_on_where_the_repository_is() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let copy = tempfile::tempdir().unwrap();
        for d in [
            "kernel/patches/6.12",
            "kernel/config",
            "kernel/config/extra",
            "kernel/config/allocator",
        ] {
            fs::create_dir_all(copy.path().join(d)).unwrap();
            for e in fs::read_dir(here.join(d)).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    fs::copy(e.path(), copy.path().join(d).join(e.file_name())).unwrap();
                }
            }
        }
        let req = |repo: &Path| {
            KernelRequest::new(crate::arch::lookup("arm64").unwrap(), repo.to_path_buf())
        };
        let key = |repo: &Path| kernel_key(&req(repo), "src", "gcc").unwrap().key();
        assert_eq!(key(&here), key(copy.path()));
        let tiny = KernelRequest {
            allocator: &crate::kernels::SLUB_TINY,
            ..req(&here)
        };
        assert_ne!(kernel_key(&tiny, "src", "gcc").unwrap().key(), key(&here));
        fs::write(
            copy.path().join("kernel/config/arm64.config"),
            "CONFIG_SMP=y\n",
        )
        .unwrap();
        assert_ne!(key(&here), key(copy.path()));
    }

    #[test]
    fn series_skips_comments_and_options() {
        let s = "# kmemtrace\n0001-a.patch\n\n0002-b.patch -p1 # why\n";
        assert_eq!(parse_series(s), ["0001-a.patch", "0002-b.patch"]);
    }

    #[test]
    fn fragments_are_read_with_comments() {
        let f = "CONFIG_SMP=y  # two CPUs\n# CONFIG_INPUT is not set\n# plain comment\nCONFIG_NR_CPUS=4\n";
        let r = requested_symbols(f);
        assert_eq!(r["CONFIG_SMP"], Some("y".into()));
        assert_eq!(r["CONFIG_NR_CPUS"], Some("4".into()));
        assert_eq!(r["CONFIG_INPUT"], None);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn symbols_that_did_not_survive_are_listed() {
        let req = requested_symbols("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=n\n");
        let cfg = "CONFIG_A=y\n# CONFIG_B is not set\n";
        assert_eq!(
            missing_symbols(&req, cfg),
            ["  CONFIG_B: wanted y, got not set"]
        );
        let cfg2 = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n";
        assert_eq!(
            missing_symbols(&req, cfg2),
            ["  CONFIG_C: wanted not set, got y"]
        );
    }
}
