//! The merged tree of the layers applied so far, and the changes of the
//! layer being read.
//!
//! A layer is not applied entry by entry. Its entries are first gathered
//! in a [`Changes`] tree, and only when its tar has been read to the end is
//! that tree merged into the [`Dir`] of the lower layers. This is what
//! makes whiteouts apply to the lower layers only, whatever the order of
//! the entries in the tar: a whiteout is recorded beside the entries of its
//! directory, not applied to them, and the merge removes what it names from
//! the lower tree before it adds the layer's own entries.
//!
//! Both trees are nested maps from a name to a child, so a directory's
//! subtree is hidden or replaced by removing one map entry, and paths are
//! never stored whole.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The position of a layer in the order applied, bottom first: an index
/// into the overlay's list of layer digests.
pub(super) type LayerId = usize;

/// A directory of the merged tree.
#[derive(Debug, Clone, Default)]
pub(super) struct Dir {
    /// The layer that last wrote this directory: by an entry of its own,
    /// or by creating it for an entry below it. `None` only for the root
    /// until an entry names it (`./`).
    pub(super) layer: Option<LayerId>,
    /// The children by name. Invariant: holds only what the overlay keeps
    /// (directories, symlinks, and other nodes at wanted paths).
    pub(super) children: BTreeMap<String, Node>,
}

/// A child of a directory of the merged tree.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Dir(Dir),
    Leaf {
        leaf: Leaf,
        /// The layer that last wrote it.
        layer: LayerId,
    },
}

/// Anything that is not a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Leaf {
    /// A regular file (or a hard link to one).
    File(Content),
    /// A symlink and its target, exactly as the tar gives it.
    Symlink(String),
    /// A device or a fifo.
    Other,
}

/// What is known of a regular file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Content {
    /// The whole contents.
    Kept(Vec<u8>),
    /// The file is there but its contents were not kept; the reason, in
    /// words, to put in an error.
    NotKept(String),
}

impl Dir {
    /// The node at `components`, walking directories only: a symlink on
    /// the way is not followed and ends the walk, as does anything missing.
    pub(super) fn get(&self, components: &[&str]) -> Option<&Node> {
        let (last, parents) = components.split_last()?;
        let mut dir = self;
        for name in parents {
            match dir.children.get(*name)? {
                Node::Dir(child) => dir = child,
                Node::Leaf { .. } => return None,
            }
        }
        dir.children.get(*last)
    }

    /// Merges the changes of layer `layer` into this directory, which holds
    /// the lower layers: opaque markers and whiteouts remove lower
    /// children, then the layer's entries replace or join what is left.
    pub(super) fn apply(&mut self, changes: Changes, layer: LayerId) {
        if changes.explicit {
            self.layer = Some(layer);
        }
        if changes.opaque {
            self.children.clear();
        }
        for name in &changes.whiteouts {
            self.children.remove(name);
        }

        for (name, change) in changes.children {
            match change {
                Change::Hide => {
                    self.children.remove(&name);
                }
                Change::Put(leaf) => {
                    self.children.insert(name, Node::Leaf { leaf, layer });
                }
                // Resolved before the changes are applied; one left over
                // is a file whose contents are unknown.
                Change::Link(target) => {
                    let leaf = not_kept_link(&target.join("/"));
                    self.children.insert(name, Node::Leaf { leaf, layer });
                }
                Change::Dir(sub) => match self.children.get_mut(&name) {
                    Some(Node::Dir(lower)) => lower.apply(sub, layer),
                    // A directory replaces a lower non-directory, or is new.
                    _ => {
                        self.children.insert(name, Node::Dir(sub.into_dir(layer)));
                    }
                },
            }
        }
    }
}

/// A directory as one layer changes it, whatever the layers below: so
/// that the changes of a layer read once can be kept and applied again on
/// top of other layers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Changes {
    /// Whether a directory entry of the layer names this directory (rather
    /// than only entries below it).
    explicit: bool,
    /// Whether the layer holds `.wh..wh..opq` here: every lower child is
    /// hidden.
    opaque: bool,
    /// Names of lower children deleted by `.wh.NAME` markers. They never
    /// affect `children`, which are this layer's own.
    whiteouts: BTreeSet<String>,
    /// The layer's own entries in this directory, the last one for each
    /// name. Invariant: holds no whiteout marker.
    children: BTreeMap<String, Change>,
}

/// What one layer does to one name of a directory.
#[derive(Debug, Serialize, Deserialize)]
enum Change {
    /// A directory, merged with a lower directory of the same name.
    Dir(Changes),
    /// A kept non-directory, which replaces whatever was below.
    Put(Leaf),
    /// A non-directory that is not kept: it removes what was below and
    /// leaves nothing.
    Hide,
    /// A hard link at a kept path to a target that is not in this layer:
    /// a copy of what the lower layers have at the target (its components,
    /// as the link names it), known only when the layer is applied.
    Link(Vec<String>),
}

/// What the layer being read has at a path, for a hard link's target.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup<'a> {
    /// A non-directory that is kept.
    Leaf(&'a Leaf),
    /// A directory.
    Dir,
    /// Something that is not kept.
    NotKept,
    /// A hard link to a lower layer's file, by its components.
    Link(&'a [String]),
    /// Nothing: the lower layers decide.
    Absent,
}

impl Changes {
    /// Marks the directory at `components` as named by an entry of the
    /// layer.
    pub(super) fn add_dir(&mut self, components: &[&str]) {
        self.dir_mut(components).explicit = true;
    }

    /// Records a kept non-directory at `components`.
    pub(super) fn put(&mut self, components: &[&str], leaf: Leaf) {
        if let Some((name, parent)) = components.split_last() {
            let parent = self.dir_mut(parent);
            parent.children.insert(name.to_string(), Change::Put(leaf));
        }
    }

    /// Records a non-directory at `components` that is not kept: it
    /// removes whatever the lower layers, or earlier entries of this
    /// layer, have there.
    pub(super) fn hide(&mut self, components: &[&str]) {
        if let Some((name, parents)) = components.split_last() {
            let parent = self.dir_mut(parents);
            parent.children.insert(name.to_string(), Change::Hide);
        }
    }

    /// Records a hard link at `components` to `target`, which this layer
    /// does not have: resolved against the lower layers when applied.
    pub(super) fn link_below(&mut self, components: &[&str], target: &[&str]) {
        if let Some((name, parent)) = components.split_last() {
            let target = target.iter().map(|c| c.to_string()).collect();
            let parent = self.dir_mut(parent);
            parent
                .children
                .insert(name.to_string(), Change::Link(target));
        }
    }

    /// Replaces every hard link to a lower target by a copy of what `lower`
    /// has there (or a file whose contents are unknown, when it has
    /// nothing); a link to a directory is dropped, and `warn` is told its
    /// path and target. `path` is where these changes are, from the root.
    pub(super) fn resolve_links(
        &mut self,
        lower: &Dir,
        path: &mut Vec<String>,
        warn: &mut dyn FnMut(&str, &str),
    ) {
        self.children.retain(|name, change| {
            path.push(name.clone());
            let keep = match change {
                Change::Dir(sub) => {
                    sub.resolve_links(lower, path, warn);
                    true
                }
                Change::Link(target) => {
                    let components: Vec<&str> = target.iter().map(String::as_str).collect();
                    let shown = target.join("/");
                    match lower.get(&components) {
                        Some(Node::Leaf { leaf, .. }) => {
                            *change = Change::Put(leaf.clone());
                            true
                        }
                        Some(Node::Dir(_)) => {
                            warn(
                                &path.join("/"),
                                &format!("a hard link to the directory {shown}; ignored"),
                            );
                            false
                        }
                        None => {
                            *change = Change::Put(not_kept_link(&shown));
                            true
                        }
                    }
                }
                Change::Put(_) | Change::Hide => true,
            };
            path.pop();
            keep
        });
    }

    /// Records `.wh.NAME` in the directory at `parent`.
    pub(super) fn whiteout(&mut self, parent: &[&str], name: &str) {
        self.dir_mut(parent).whiteouts.insert(name.to_string());
    }

    /// Records `.wh..wh..opq` in the directory at `dir`.
    pub(super) fn make_opaque(&mut self, dir: &[&str]) {
        self.dir_mut(dir).opaque = true;
    }

    /// What the layer has written at `components` so far.
    pub(super) fn lookup(&self, components: &[&str]) -> Lookup<'_> {
        let mut dir = self;
        for (i, name) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            match (dir.children.get(*name), last) {
                (None, _) => return Lookup::Absent,
                (Some(Change::Dir(child)), false) => dir = child,
                (Some(Change::Dir(_)), true) => return Lookup::Dir,
                (Some(Change::Put(leaf)), true) => return Lookup::Leaf(leaf),
                (Some(Change::Link(target)), true) => return Lookup::Link(target),
                // Nothing of a lower layer shows under a non-directory.
                (Some(Change::Put(_) | Change::Hide | Change::Link(_)), _) => {
                    return Lookup::NotKept;
                }
            }
        }
        Lookup::Dir
    }

    /// The directory at `components`, made a directory of this layer where
    /// it is not one yet: an earlier entry of the layer at that name is
    /// replaced, as a later tar entry replaces an earlier one.
    fn dir_mut(&mut self, components: &[&str]) -> &mut Changes {
        let mut dir = self;
        for name in components {
            if !matches!(dir.children.get(*name), Some(Change::Dir(_))) {
                let fresh = Change::Dir(Changes::default());
                dir.children.insert(name.to_string(), fresh);
            }
            let Some(Change::Dir(child)) = dir.children.get_mut(*name) else {
                unreachable!("a directory was inserted just above");
            };
            dir = child;
        }
        dir
    }

    /// The directory these changes make where nothing lower is a
    /// directory: markers have nothing to act on, and what is not kept
    /// leaves nothing.
    fn into_dir(self, layer: LayerId) -> Dir {
        let children = self
            .children
            .into_iter()
            .filter_map(|(name, change)| {
                let node = match change {
                    Change::Dir(sub) => Node::Dir(sub.into_dir(layer)),
                    Change::Put(leaf) => Node::Leaf { leaf, layer },
                    Change::Link(target) => Node::Leaf {
                        leaf: not_kept_link(&target.join("/")),
                        layer,
                    },
                    Change::Hide => return None,
                };
                Some((name, node))
            })
            .collect();
        Dir {
            layer: Some(layer),
            children,
        }
    }
}

/// A hard link whose target's contents are not known: it was not kept (its
/// path is not wanted) or is not in the image.
pub(super) fn not_kept_link(target: &str) -> Leaf {
    Leaf::File(Content::NotKept(format!(
        "it is a hard link to {target}, whose contents were not kept"
    )))
}
