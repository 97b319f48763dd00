//! The export file: its layout (described in [`crate::plumbing::transfer`]), its manifest, the
//! length-prefixed chunks its rows travel in, and the check of a whole file against its
//! manifest before anything is imported.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::tenant::{Placement, TenantId};

pub(super) const MAGIC: &[u8] = b"TENANCY-EXPORT 1\n";
pub(super) const END: &[u8] = b"TENANCY-END\n";
/// The version of the file layout (not of the tenant tables).
pub const FORMAT: u32 = 1;

/// One table of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableManifest {
    /// The table's name.
    pub name: String,
    /// The columns exported, in order (every column but `tenant_id`).
    pub columns: Vec<String>,
    /// How many rows were exported.
    pub rows: u64,
    /// How many `COPY` bytes they took.
    pub bytes: u64,
    /// SHA-256 of the table's `COPY` bytes, lowercase hex.
    pub sha256: String,
}

/// What an export holds: checked by an import before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The file format's version (1).
    pub format: u32,
    /// The tenant exported (an import may give the rows another slug and id).
    pub tenant_id: TenantId,
    /// The exported tenant's slug.
    pub slug: String,
    /// The exported tenant's name.
    pub name: String,
    /// Where the rows came from.
    pub placement: Placement,
    /// How many tenant migrations the tables had: an import needs the same.
    pub schema_version: i32,
    /// When the export was taken.
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// Parents before children.
    pub tables: Vec<TableManifest>,
}

impl Manifest {
    /// Rows over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

pub(super) fn io(err: std::io::Error) -> Error {
    Error::Unavailable(format!("export file: {err}"))
}

pub(super) fn truncated(err: std::io::Error) -> Error {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::BadExport("the file is truncated".into())
    } else {
        io(err)
    }
}

pub(super) async fn write_chunk<W: AsyncWrite + Unpin + ?Sized>(
    out: &mut W,
    chunk: &[u8],
) -> Result<()> {
    let len =
        u32::try_from(chunk.len()).map_err(|_| Error::invalid("export", "a chunk over 4 GiB"))?;
    out.write_all(&len.to_be_bytes()).await.map_err(io)?;
    out.write_all(chunk).await.map_err(io)?;
    Ok(())
}

pub(super) async fn read_u32<R: AsyncRead + Unpin + ?Sized>(input: &mut R) -> Result<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b).await.map_err(truncated)?;
    Ok(u32::from_be_bytes(b))
}

// ANCHOR: check_file
/// Reads a whole export file and checks it: the layout, the manifest at its end, and each
/// table's byte count and SHA-256 against the manifest. Returns the manifest; writes nothing.
pub async fn check_file<R: AsyncRead + AsyncSeek + Unpin + Send + ?Sized>(
    input: &mut R,
) -> Result<Manifest> {
    let bad = |m: &str| Error::BadExport(m.to_owned());
    let len = input.seek(std::io::SeekFrom::End(0)).await.map_err(io)?;
    let tail = (END.len() + 8) as u64;
    if len < (MAGIC.len() as u64) + tail {
        return Err(bad("the file is truncated (too short to be an export)"));
    }
    input.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic).await.map_err(truncated)?;
    if magic != MAGIC {
        return Err(bad("not a tenancy export (its first line is wrong)"));
    }
    input
        .seek(std::io::SeekFrom::End(-(tail as i64)))
        .await
        .map_err(io)?;
    let mut trailer = vec![0u8; tail as usize];
    input.read_exact(&mut trailer).await.map_err(truncated)?;
    if &trailer[8..] != END {
        return Err(bad("the file is truncated (its last line is missing)"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&trailer[..8]);
    let manifest_len = u64::from_be_bytes(n);
    let Some(manifest_at) = len
        .checked_sub(tail + manifest_len)
        .filter(|&at| at >= MAGIC.len() as u64)
    else {
        return Err(bad("the file is truncated (its manifest is cut)"));
    };
    input
        .seek(std::io::SeekFrom::Start(manifest_at))
        .await
        .map_err(io)?;
    let mut json = vec![0u8; usize::try_from(manifest_len).map_err(|_| bad("manifest too large"))?];
    input.read_exact(&mut json).await.map_err(truncated)?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| Error::BadExport(format!("its manifest cannot be read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::BadExport(format!(
            "file format {} (this build reads {FORMAT})",
            manifest.format
        )));
    }
    input
        .seek(std::io::SeekFrom::Start(MAGIC.len() as u64))
        .await
        .map_err(io)?;
    let mut at = MAGIC.len() as u64;
    for t in &manifest.tables {
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        loop {
            if at + 4 > manifest_at {
                return Err(Error::BadExport(format!("table {} is cut short", t.name)));
            }
            let chunk = u64::from(read_u32(input).await?);
            at += 4;
            if chunk == 0 {
                break;
            }
            if at + chunk > manifest_at {
                return Err(Error::BadExport(format!("table {} is cut short", t.name)));
            }
            let mut buf = vec![0u8; chunk as usize];
            input.read_exact(&mut buf).await.map_err(truncated)?;
            at += chunk;
            bytes += chunk;
            hasher.update(&buf);
        }
        let sha = format!("{:x}", hasher.finalize());
        if bytes != t.bytes || sha != t.sha256 {
            return Err(Error::BadExport(format!(
                "table {}: its rows do not match their checksum (the file is corrupt)",
                t.name
            )));
        }
    }
    if at != manifest_at {
        return Err(bad("the file holds more than its manifest lists"));
    }
    Ok(manifest)
}
// ANCHOR_END: check_file

/// What an import reads: an export file, or anything that can be read and rewound like one.
pub trait ExportFile: AsyncRead + AsyncSeek + Unpin + Send {}
impl<T: AsyncRead + AsyncSeek + Unpin + Send> ExportFile for T {}
