//! An in-memory [`Root`] for unit tests.
//!
//! It behaves like the image scanner's view of merged layers: a map from
//! root-relative paths to files, directories and symlinks, answering only
//! for exact paths. Parent directories are created with their children.
//! Like [`crate::DirRoot`], it refuses to look through a symlink on the way,
//! so tests notice a caller that forgot to resolve a path.

use std::collections::BTreeMap;
use std::io;

use crate::root::{FileKind, Root};

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir,
    Link(String),
}

/// A tree of files, directories and symlinks. Invariant: the parent of
/// every entry is present as a directory, and `""` is the root directory.
#[derive(Debug, Clone)]
pub(crate) struct MemoryRoot {
    nodes: BTreeMap<String, Node>,
}

impl MemoryRoot {
    pub(crate) fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(String::new(), Node::Dir);
        MemoryRoot { nodes }
    }

    pub(crate) fn file(self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.insert(path, Node::File(contents.as_ref().to_vec()))
    }

    pub(crate) fn link(self, path: &str, target: &str) -> Self {
        self.insert(path, Node::Link(target.to_string()))
    }

    pub(crate) fn dir(self, path: &str) -> Self {
        self.insert(path, Node::Dir)
    }

    fn insert(mut self, path: &str, node: Node) -> Self {
        let mut parent = String::new();
        for name in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(name);
            self.nodes.insert(parent.clone(), Node::Dir);
        }
        self.nodes.insert(path.to_string(), node);
        self
    }

    /// The node at `path`, after checking every directory on the way.
    fn node(&self, path: &str) -> io::Result<&Node> {
        let mut prefix = String::new();
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        for name in names.iter().take(names.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(name);
            match self.nodes.get(&prefix) {
                None => return Err(io::ErrorKind::NotFound.into()),
                Some(Node::Dir) => {}
                Some(Node::Link(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{path}: {prefix} is a symlink"),
                    ));
                }
                Some(Node::File(_)) => return Err(io::ErrorKind::NotADirectory.into()),
            }
        }
        self.nodes
            .get(&names.join("/"))
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

impl Root for MemoryRoot {
    fn lstat(&self, path: &str) -> io::Result<FileKind> {
        Ok(match self.node(path)? {
            Node::File(_) => FileKind::File,
            Node::Dir => FileKind::Dir,
            Node::Link(_) => FileKind::Symlink,
        })
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        match self.node(path)? {
            Node::Link(target) => Ok(target.clone()),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        match self.node(path)? {
            Node::File(bytes) => Ok(bytes.clone()),
            Node::Dir => Err(io::ErrorKind::IsADirectory.into()),
            Node::Link(_) => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<String>> {
        match self.node(path)? {
            Node::Dir => {}
            Node::File(_) => return Err(io::ErrorKind::NotADirectory.into()),
            Node::Link(_) => return Err(io::ErrorKind::InvalidInput.into()),
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        Ok(self
            .nodes
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(String::from)
            .collect())
    }
}
