use std::path::PathBuf;

/// Errors of the image store and builder; each names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the image build failed: {message}")]
    Build { message: String, fix: String },
    #[error("image {hash} is corrupted ({detail})")]
    Corrupted { hash: String, detail: String },
    #[error("no image {what}")]
    NotFound { what: String },
    #[error("{tool} is not installed: {fix}")]
    MissingTool {
        tool: &'static str,
        fix: &'static str,
    },
}

impl ImageError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// How to fix it, when there is something to say.
    pub fn fix(&self) -> Option<&str> {
        match self {
            ImageError::Build { fix, .. } => Some(fix),
            ImageError::MissingTool { fix, .. } => Some(fix),
            ImageError::Corrupted { .. } => Some("run `wrapix image build` to rebuild it"),
            _ => None,
        }
    }
}
