//! Device model files (host only): a safetensors file whose `u8` tensor
//! [`DEVICE_IMAGE_TENSOR`] holds the model image the firmware compiles into flash, with
//! string metadata (architecture, quantization scheme, threshold, source checkpoint,
//! quantization report). A bare image starting with `TVAE` is accepted too.
//!
//! It lives beside the image format because every side reads these files: the
//! exporter writes them, the firmware's build script embeds them, the device link
//! checks a board against them. [`write_atomic`] is the one way tinyvae writes a file
//! that must never be seen half-written (models, checkpoints, reports).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{Model, DEVICE_IMAGE_TENSOR, MAGIC};

/// Value of the `format` metadata key of exported device models.
pub const FORMAT: &str = "tinyvae-device-1";

/// Errors reading or writing a device model file, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DeviceModelError {
    /// Reading failed.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a usable device model.
    #[error("{}: not a usable tinyvae device model: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing failed.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A device model read from disk.
#[derive(Debug, Clone)]
pub struct DeviceModelFile {
    /// The validated model image.
    pub image: Vec<u8>,
    /// The file's metadata (empty for a bare image).
    pub metadata: HashMap<String, String>,
}

impl DeviceModelFile {
    /// The parsed model (cannot fail: [`load`] validated the image).
    pub fn model(&self) -> Result<Model<'_>, crate::model::ModelError> {
        Model::parse(&self.image)
    }
}

/// Reads and validates the model image in `path`.
pub fn load(path: &Path) -> Result<DeviceModelFile, DeviceModelError> {
    let bytes = std::fs::read(path).map_err(|source| DeviceModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_bytes(path, bytes)
}

/// Validates the bytes of a device model file (a safetensors file or a bare image);
/// `path` only names the file in errors. Every input gives a validated model or a
/// [`DeviceModelError::Bad`], never a panic.
pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<DeviceModelFile, DeviceModelError> {
    let bad = |reason: String| DeviceModelError::Bad {
        path: path.to_owned(),
        reason,
    };
    let (image, metadata) = if bytes.starts_with(&MAGIC) {
        (bytes, HashMap::new())
    } else {
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let view = tensors
            .tensor(DEVICE_IMAGE_TENSOR)
            .map_err(|e| bad(format!("no `{DEVICE_IMAGE_TENSOR}` tensor: {e}")))?;
        if view.dtype() != safetensors::Dtype::U8 {
            return Err(bad(format!(
                "`{DEVICE_IMAGE_TENSOR}` is {:?}, expected U8",
                view.dtype()
            )));
        }
        (view.data().to_vec(), metadata)
    };
    Model::parse(&image).map_err(|e| bad(e.to_string()))?;
    Ok(DeviceModelFile { image, metadata })
}

/// The bytes of a device model file holding `image` with `metadata` (what [`save`]
/// writes and [`from_bytes`] reads back).
pub fn to_bytes(
    image: &[u8],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![image.len()], image)?;
    let mut bytes = safetensors::serialize([(DEVICE_IMAGE_TENSOR, view)], Some(metadata))?;
    sort_header_keys(&mut bytes);
    Ok(bytes)
}

/// Rewrites a safetensors file's JSON header with its keys sorted, in place. Why: the
/// metadata is a `HashMap`, whose order changes from run to run, so the same export
/// (or checkpoint) would write different bytes each time; sorted, the same content
/// gives the same file (and the same SHA-256). The sorted header is no longer than the
/// original (same keys and values, compact either way) and is padded to its length;
/// bytes that are not a safetensors file are left as they were.
pub fn sort_header_keys(bytes: &mut [u8]) {
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return;
    };
    let Some(header) = bytes.get(8..8 + len) else {
        return;
    };
    // serde_json's objects are ordered maps (its `preserve_order` feature is off).
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return;
    };
    let Ok(mut sorted) = serde_json::to_vec(&value) else {
        return;
    };
    if sorted.len() > len {
        return;
    }
    // safetensors pads the header with spaces to a multiple of 8 bytes.
    sorted.resize(len, b' ');
    bytes[8..8 + len].copy_from_slice(&sorted);
}

/// Writes `image` with `metadata` to `path` atomically.
pub fn save(
    path: &Path,
    image: &[u8],
    metadata: HashMap<String, String>,
) -> Result<(), DeviceModelError> {
    let bytes = to_bytes(image, metadata).map_err(|e| DeviceModelError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(|(path, source)| DeviceModelError::Write { path, source })
}

/// Removes from `dir` the temporary files that [`write_atomic`] left behind when its
/// process was killed mid-write (`<name>.<pid>-<n>.tmp` of a process that no longer
/// runs): they hold no data anyone reads, only disk space. Files of a live process
/// (another writer at work) and every other file stay. Where this cannot tell whether
/// a process runs (no `/proc`), it removes nothing. Returns the paths removed.
pub fn remove_stale_temp_files(dir: &Path) -> Vec<PathBuf> {
    let proc_root = Path::new("/proc/self");
    if !proc_root.exists() {
        return Vec::new();
    }
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let pid = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(temp_file_pid);
            pid.is_some_and(|pid| pid != own && !Path::new(&format!("/proc/{pid}")).exists())
        })
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}

/// The writer's process id in a temporary file name of [`write_atomic`]
/// (`<name>.<pid>-<n>.tmp`), or `None` for any other name.
fn temp_file_pid(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".tmp")?;
    let (rest, counter) = stem.rsplit_once('-')?;
    let (_, pid) = rest.rsplit_once('.')?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Distinguishes the temporary files of writers in one process.
static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `bytes` to `path` so that `path` holds either its old content or all of the
/// new one, whatever happens meanwhile: a sibling temporary file unique to this writer
/// (process id and a counter, so two writers never share one), fsync, rename over
/// `path`, fsync of the folder (so the rename itself survives a power cut). A failed
/// write removes its temporary file. Creates the folder when missing. The error names
/// the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    let n = TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err((tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err((path.to_path_buf(), e));
    }
    // Make the rename durable. Opening a folder for sync is not possible everywhere
    // (Windows): there the rename stands as the file system left it.
    if let Ok(d) = std::fs::File::open(dir.unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_writers_temporary_files_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let own = std::process::id();
        // Above Linux's largest pid (2^22): never a running process.
        let dead = dir.path().join("last.safetensors.9999999-3.tmp");
        let live = dir.path().join(format!("last.safetensors.{own}-0.tmp"));
        let others = ["notes.tmp", "last.safetensors", "a.b-c.tmp", "x.12-y.tmp"];
        for p in others
            .iter()
            .map(|n| dir.path().join(n))
            .chain([&dead, &live].map(|p| p.clone()))
        {
            std::fs::write(&p, b"x").expect("writing a file");
        }
        let removed = remove_stale_temp_files(dir.path());
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, vec![dead.clone()]);
            assert!(!dead.exists());
        } else {
            assert!(removed.is_empty());
        }
        assert!(live.exists());
        for n in others {
            assert!(dir.path().join(n).exists(), "{n} was removed");
        }
    }

    #[test]
    fn the_same_image_and_metadata_give_the_same_bytes() {
        let image: Vec<u8> = (0..=255).collect();
        let metadata = || -> HashMap<String, String> {
            (0..24)
                .map(|i| (format!("key{i}"), format!("value \"{i}\" é")))
                .collect()
        };
        let first = to_bytes(&image, metadata()).expect("bytes");
        for _ in 0..8 {
            // Each map has its own random iteration order.
            assert_eq!(to_bytes(&image, metadata()).expect("bytes"), first);
        }
        let (n, loaded) =
            safetensors::SafeTensors::read_metadata(&first).expect("a safetensors file");
        let kept = loaded.metadata().as_ref().expect("metadata");
        assert_eq!(kept, &metadata());
        assert_eq!(n % 8, 0);
        let tensors = safetensors::SafeTensors::deserialize(&first).expect("readable");
        assert_eq!(
            tensors
                .tensor(DEVICE_IMAGE_TENSOR)
                .expect("the image")
                .data(),
            &image[..]
        );
    }

    #[test]
    fn a_temporary_file_name_gives_its_writers_pid() {
        assert_eq!(temp_file_pid("last.safetensors.4242-17.tmp"), Some(4242));
        assert_eq!(temp_file_pid("metrics.jsonl.1-0.tmp"), Some(1));
        assert_eq!(temp_file_pid("last.safetensors.tmp"), None);
        assert_eq!(temp_file_pid("a.b-c.tmp"), None);
        assert_eq!(temp_file_pid("x.12-y.tmp"), None);
        assert_eq!(temp_file_pid("x.12-3"), None);
    }
}
