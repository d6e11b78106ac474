//! OCI image archive export: one layer built from the manifest (owners and modes as built,
//! contents from the unpacked root), gzip-compressed, with its real digests, plus the image
//! configuration, manifest and index (`oci-spec` types) in an OCI layout packed as a tar —
//! what `podman load` and Apple's `container image load` read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;

use flate2::write::GzEncoder;
use flate2::Compression;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};

use crate::manifest::HashWriter;

use crate::error::ImageError;
use crate::manifest::{self, hex, Kind};
use crate::store::{Image, MANIFEST};

/// The name `podman load` gives the image.
pub fn reference(image: &Image) -> String {
    format!(
        "localhost/wrapix-{}:{}",
        image.meta.spec.profile, image.meta.hash
    )
}

fn oci_err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Build {
        message: format!("cannot describe the OCI image: {e}"),
        fix: String::new(),
    }
}

fn digest(hex: &str) -> Result<Digest, ImageError> {
    Digest::from_str(&format!("sha256:{hex}")).map_err(oci_err)
}

/// Writes the OCI archive of `image` to `out` (via a temporary file next to it, then rename).
pub fn export(image: &Image, out: &Path) -> Result<String, ImageError> {
    let entries = manifest::read(&image.dir.join(MANIFEST), &image.meta.manifest_sha256).map_err(
        |detail| ImageError::Corrupted {
            hash: image.meta.hash.clone(),
            detail,
        },
    )?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".wrapix-export-")
        .tempdir_in(parent)
        .map_err(|e| ImageError::io("create a folder in", parent, e))?;
    let layer_path = work.path().join("layer.tar.gz");
    let io = |what: &'static str| move |e: std::io::Error| ImageError::io(what, out, e);

    // The layer: tar → (sha256 = diff_id) → gzip → (sha256 = blob digest) → file.
    let file = File::create(&layer_path).map_err(|e| ImageError::io("create", &layer_path, e))?;
    let gz_out = HashWriter {
        inner: BufWriter::new(file),
        hasher: Sha256::new(),
        n: 0,
    };
    let gz = GzEncoder::new(gz_out, Compression::fast());
    let tar_out = HashWriter {
        inner: gz,
        hasher: Sha256::new(),
        n: 0,
    };
    let mut tar = tar::Builder::new(tar_out);
    tar.follow_symlinks(false);
    let root = image.rootfs();
    for e in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(0);
        let res = match e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                tar.append_data(&mut h, format!("{}/", e.path), std::io::empty())
            }
            Kind::Symlink | Kind::Hardlink => {
                h.set_entry_type(if e.kind == Kind::Symlink {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                tar.append_link(&mut h, &e.path, e.link.as_deref().unwrap_or(""))
            }
            Kind::File => {
                let p = root.join(&e.path);
                // Never through a link (the folders above were made real by the unpacking),
                // and only the regular file of the size the manifest recorded.
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                    .open(&p)
                    .map_err(|x| ImageError::io("read", &p, x))?;
                let meta = f.metadata().map_err(|x| ImageError::io("read", &p, x))?;
                if !meta.is_file() || meta.len() != e.size {
                    return Err(ImageError::Corrupted {
                        hash: image.meta.hash.clone(),
                        detail: format!(
                            "{} is no longer the regular file of {} bytes that was built",
                            e.path, e.size
                        ),
                    });
                }
                let f = f.take(e.size);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(e.size);
                tar.append_data(&mut h, &e.path, f)
            }
        };
        res.map_err(io("write the layer for"))?;
    }
    let tar_out = tar.into_inner().map_err(io("write the layer for"))?;
    let diff_id = hex(&tar_out.hasher.finalize());
    let mut gz_out = tar_out
        .inner
        .finish()
        .map_err(io("compress the layer for"))?;
    gz_out.flush().map_err(io("write the layer for"))?;
    let layer_digest = hex(&gz_out.hasher.finalize());
    let layer_size = gz_out.n;

    let env: Vec<String> = std::iter::once(
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    )
    .chain(image.meta.spec.env.iter().map(|(k, v)| format!("{k}={v}")))
    .collect();
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .env(env)
                .cmd(vec!["/bin/bash".to_owned()])
                .working_dir("/workspace".to_owned())
                .build()
                .map_err(oci_err)?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers".to_owned())
                .diff_ids(vec![format!("sha256:{diff_id}")])
                .build()
                .map_err(oci_err)?,
        )
        .build()
        .map_err(oci_err)?;
    let config_json = config.to_string().map_err(oci_err)?.into_bytes();
    let config_digest = hex(&Sha256::digest(&config_json));
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_json.len() as u64,
            digest(&config_digest)?,
        ))
        .layers(vec![Descriptor::new(
            MediaType::ImageLayerGzip,
            layer_size,
            digest(&layer_digest)?,
        )])
        .build()
        .map_err(oci_err)?;
    let manifest_json = manifest.to_string().map_err(oci_err)?.into_bytes();
    let manifest_digest = hex(&Sha256::digest(&manifest_json));
    let reference = reference(image);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .size(manifest_json.len() as u64)
            .digest(digest(&manifest_digest)?)
            .annotations(HashMap::from([(
                "org.opencontainers.image.ref.name".to_owned(),
                reference.clone(),
            )]))
            .build()
            .map_err(oci_err)?])
        .build()
        .map_err(oci_err)?;
    let index_json = index.to_string().map_err(oci_err)?.into_bytes();

    // The archive: an OCI layout as a tar.
    let tmp_out = work.path().join("archive.tar");
    let f = File::create(&tmp_out).map_err(|e| ImageError::io("create", &tmp_out, e))?;
    let mut ar = tar::Builder::new(BufWriter::new(f));
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        ar.append_data(&mut h, name, data)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io("write"))?;
    add("index.json", &index_json).map_err(io("write"))?;
    add(&format!("blobs/sha256/{config_digest}"), &config_json).map_err(io("write"))?;
    add(&format!("blobs/sha256/{manifest_digest}"), &manifest_json).map_err(io("write"))?;
    ar.append_path_with_name(&layer_path, format!("blobs/sha256/{layer_digest}"))
        .map_err(io("write"))?;
    let mut w = ar.into_inner().map_err(io("write"))?;
    w.flush().map_err(io("write"))?;
    w.get_ref().sync_all().map_err(io("write"))?;
    drop(w);
    std::fs::rename(&tmp_out, out).map_err(io("rename into"))?;
    Ok(reference)
}
